"""GraphQL of editable deal pipelines and the catalogue's archive: rename a deal pipeline; add,
rename (or re-weigh), reorder, archive, restore and delete its stages; archive or restore a
product. Admins and managers (``sales.deals.configure``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry
from strawberry.types import Info

from guanxi.core.runtime import Tx
from guanxi.graphql.errors import UserError, as_payload
from guanxi.plugins.sales.deals import service as svc
from guanxi.plugins.sales.deals import stages as ssvc
from guanxi.plugins.sales.deals.graphql import DealPipeline, DealPipelinePayload, DealStageInput, Product, ProductPayload, pipeline_views
from guanxi.plugins.sales.deals.graphql import _uuid as global_uuid


@strawberry.type(description="What removing or restoring a deal stage did, and the pipeline after it.")
class DealStageRemovalPayload:
    stage: str | None = None
    moved: int = strawberry.field(default=0, description="open deals moved to movedTo (each move on the deal's history)")
    moved_to: str | None = None
    deleted: bool = strawberry.field(default=False, description="the stage is gone (nothing named it)")
    archived: bool = strawberry.field(default=False, description="the stage is archived (a deleted stage that history names is archived)")
    pipeline: DealPipeline | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _pipeline_payload(info: Info, key: str, change: Callable[[Tx], Awaitable[object]]) -> DealPipelinePayload:
    async def run() -> DealPipelinePayload:
        async with info.context.transaction() as tx:
            await change(tx)
            pipeline = await ssvc.pipeline_of(tx.session, key)
            view = (await pipeline_views(tx.session, [pipeline]))[0]
        return DealPipelinePayload(pipeline=view)

    return await as_payload(run, DealPipelinePayload)


async def _removal_payload(info: Info, key: str, change: Callable[[Tx], Awaitable[ssvc.StageRemoval]]) -> DealStageRemovalPayload:
    async def run() -> DealStageRemovalPayload:
        async with info.context.transaction() as tx:
            done = await change(tx)
            pipeline = await ssvc.pipeline_of(tx.session, key)
            view = (await pipeline_views(tx.session, [pipeline]))[0]
        return DealStageRemovalPayload(
            stage=done.stage, moved=done.moved, moved_to=done.moved_to, deleted=done.deleted, archived=done.archived, pipeline=view
        )

    return await as_payload(run, DealStageRemovalPayload)


@strawberry.type
class DealStagesMutation:
    @strawberry.mutation(description="Rename a deal pipeline (its key, stages and deals stay).")
    async def rename_deal_pipeline(self, info: Info, pipeline: str, name: str) -> DealPipelinePayload:
        return await _pipeline_payload(info, pipeline, lambda tx: ssvc.rename_pipeline(tx, pipeline, name))

    @strawberry.mutation(
        description="Add a stage (with its probability) to a deal pipeline at `position` among its live stages (default: last)."
    )
    async def add_deal_stage(self, info: Info, pipeline: str, stage: DealStageInput, position: int | None = None) -> DealPipelinePayload:
        spec = svc.StageInput(key=stage.key, name=stage.name, probability=stage.probability, category=stage.category.value)
        return await _pipeline_payload(info, pipeline, lambda tx: ssvc.add_stage(tx, pipeline, spec, position))

    @strawberry.mutation(description="Rename a deal stage or change its probability; its key, deals and history stay.")
    async def update_deal_stage(
        self, info: Info, pipeline: str, stage: str, name: str | None = None, probability: int | None = None
    ) -> DealPipelinePayload:
        return await _pipeline_payload(
            info, pipeline, lambda tx: ssvc.update_stage(tx, pipeline, stage, name=name, probability=probability)
        )

    @strawberry.mutation(description="Put a deal pipeline's live stages in this order (name each once).")
    async def reorder_deal_stages(self, info: Info, pipeline: str, keys: list[str]) -> DealPipelinePayload:
        return await _pipeline_payload(info, pipeline, lambda tx: ssvc.reorder_stages(tx, pipeline, keys))

    @strawberry.mutation(
        description="Archive a deal stage: refused (CONFLICT, with the count) while it holds open deals, unless moveTo names a live "
        "open stage to move them to first. restore: true brings an archived stage back (last)."
    )
    async def archive_deal_stage(
        self, info: Info, pipeline: str, stage: str, move_to: str | None = None, restore: bool = False
    ) -> DealStageRemovalPayload:
        return await _removal_payload(info, pipeline, lambda tx: ssvc.archive_stage(tx, pipeline, stage, move_to=move_to, restore=restore))

    @strawberry.mutation(
        description="Delete a deal stage: refused (CONFLICT, with the count) while it holds open deals, unless moveTo; a stage that "
        "some deal or its history names is archived instead."
    )
    async def delete_deal_stage(self, info: Info, pipeline: str, stage: str, move_to: str | None = None) -> DealStageRemovalPayload:
        return await _removal_payload(info, pipeline, lambda tx: ssvc.delete_stage(tx, pipeline, stage, move_to=move_to))

    @strawberry.mutation(
        description="Archive a product (archived: true, default) so new deals cannot take it, or bring it back (archived: false). "
        "Deals that have it keep it, and reports still count them."
    )
    async def archive_product(self, info: Info, product_id: strawberry.ID, archived: bool = True) -> ProductPayload:
        async def run() -> ProductPayload:
            pid = global_uuid(product_id, "Product", "productId")
            async with info.context.transaction() as tx:
                product = await svc.archive_product(tx, pid, archived)
            return ProductPayload(product=Product.from_model(product))

        return await as_payload(run, ProductPayload)
