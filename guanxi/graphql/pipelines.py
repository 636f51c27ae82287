"""Pipelines and stages in the API (admins): create a pipeline with its arrival rule, change it,
add, rename, reorder, archive (or restore) and delete stages. Reading is ``pipelines`` and
``funnel(pipeline:)``; moving a customer is ``moveCustomerStage(pipeline:)``."""

from __future__ import annotations

from typing import Any

import msgspec
import strawberry
from strawberry.types import Info

from guanxi.core.services import stages as svc
from guanxi.core.services.pipelines import StageSpec
from guanxi.graphql.enums import StageCategory
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.types import Pipeline, Stage


@strawberry.input(description="A stage of a new pipeline.")
class StageInput:
    key: str = strawberry.field(description="lower_snake_case, unique in the pipeline; never changes")
    name: str
    category: StageCategory = StageCategory.OPEN


@strawberry.input
class CreatePipelineInput:
    key: str = strawberry.field(description="lower_snake_case, unique in the tenant")
    name: str
    sources: list[str] = strawberry.field(
        default_factory=list, description="the arrival rule: new customers with one of these sources (a channel's name for its customers)"
    )
    stages: list[StageInput] = strawberry.field(default_factory=list, description="in order; empty: a copy of the default lifecycle")
    is_default: bool = strawberry.field(default=False, description="new customers no rule places start here")


@strawberry.input(description="Only the fields given change.")
class UpdatePipelineInput:
    name: str | None = None
    sources: list[str] | None = None
    is_default: bool | None = strawberry.field(default=None, description="true makes this the default pipeline")


@strawberry.type
class PipelinePayload:
    pipeline: Pipeline | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class StagePayload:
    stage: Stage | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="What removing (or archiving) a stage did.")
class StageRemoval:
    stage: str
    moved: int = strawberry.field(description="customers moved to `movedTo`, each move on their history")
    moved_to: str | None
    deleted: bool = strawberry.field(description="the stage is gone")
    archived: bool = strawberry.field(description="the stage is archived (a deleted stage that history names is archived instead)")


@strawberry.type
class StageRemovalPayload:
    result: StageRemoval | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _pipeline(info: Info, key: str) -> Pipeline:
    from guanxi.graphql.query import _pipelines

    return next(p for p in await _pipelines(info) if p.key == key)


def _removal(r: svc.StageRemoval) -> StageRemovalPayload:
    return StageRemovalPayload(
        result=StageRemoval(stage=r.stage, moved=r.moved, moved_to=r.moved_to, deleted=r.deleted, archived=r.archived)
    )


@strawberry.type
class PipelinesMutation:
    @strawberry.mutation(description="Create a pipeline with its stages and arrival rule (admins).")
    async def create_pipeline(self, info: Info, input: CreatePipelineInput) -> PipelinePayload:
        async def run() -> PipelinePayload:
            data = svc.PipelineInput(
                key=input.key,
                name=input.name,
                sources=list(input.sources),
                stages=[StageSpec(s.key, s.name, s.category.value) for s in input.stages],
                is_default=input.is_default,
            )
            async with info.context.transaction() as tx:
                created = await svc.create_pipeline(tx, data)
            return PipelinePayload(pipeline=await _pipeline(info, created.key))

        return await as_payload(run, PipelinePayload)

    @strawberry.mutation(description="Rename a pipeline, change its arrival rule or make it the default (admins).")
    async def update_pipeline(self, info: Info, key: str, input: UpdatePipelineInput) -> PipelinePayload:
        async def run() -> PipelinePayload:
            def given(v: Any) -> Any:
                return msgspec.UNSET if v is None else v

            patch = svc.PipelinePatch(
                name=given(input.name),
                sources=given(list(input.sources) if input.sources is not None else None),
                is_default=given(input.is_default),
            )
            async with info.context.transaction() as tx:
                await svc.update_pipeline(tx, key, patch)
            return PipelinePayload(pipeline=await _pipeline(info, key))

        return await as_payload(run, PipelinePayload)

    @strawberry.mutation(description="Add a stage to a pipeline at `position` among its live stages (default: last) (admins).")
    async def create_stage(self, info: Info, pipeline: str, input: StageInput, position: int | None = None) -> StagePayload:
        async def run() -> StagePayload:
            async with info.context.transaction() as tx:
                stage = await svc.add_stage(tx, pipeline, StageSpec(input.key, input.name, input.category.value), position)
            return StagePayload(stage=Stage.from_model(stage))

        return await as_payload(run, StagePayload)

    @strawberry.mutation(description="Rename a stage or change its category; its key, id and history stay (admins).")
    async def update_stage(
        self, info: Info, pipeline: str, stage: str, name: str | None = None, category: StageCategory | None = None
    ) -> StagePayload:
        async def run() -> StagePayload:
            async with info.context.transaction() as tx:
                row = await svc.update_stage(tx, pipeline, stage, name=name, category=category.value if category else None)
            return StagePayload(stage=Stage.from_model(row))

        return await as_payload(run, StagePayload)

    @strawberry.mutation(description="Put a pipeline's live stages in this order; name each once (admins).")
    async def reorder_stages(self, info: Info, pipeline: str, keys: list[str]) -> PipelinePayload:
        async def run() -> PipelinePayload:
            async with info.context.transaction() as tx:
                await svc.reorder_stages(tx, pipeline, list(keys))
            return PipelinePayload(pipeline=await _pipeline(info, pipeline))

        return await as_payload(run, PipelinePayload)

    @strawberry.mutation(
        description="Archive a stage: it takes no more customers and leaves the funnel; its history stays. A stage holding "
        "customers is refused (CONFLICT, with their count) unless `moveTo` names a stage to move them to. "
        "`restore: true` brings an archived stage back, last (admins)."
    )
    async def archive_stage(
        self, info: Info, pipeline: str, stage: str, move_to: str | None = None, restore: bool = False
    ) -> StageRemovalPayload:
        async def run() -> StageRemovalPayload:
            async with info.context.transaction() as tx:
                done = await svc.archive_stage(tx, pipeline, stage, move_to=move_to, restore=restore)
            return _removal(done)

        return await as_payload(run, StageRemovalPayload)

    @strawberry.mutation(
        description="Delete a stage. A stage holding customers is refused (CONFLICT, with their count) unless `moveTo` "
        "names a stage to move them to; a stage that history names is archived instead (admins)."
    )
    async def delete_stage(self, info: Info, pipeline: str, stage: str, move_to: str | None = None) -> StageRemovalPayload:
        async def run() -> StageRemovalPayload:
            async with info.context.transaction() as tx:
                done = await svc.delete_stage(tx, pipeline, stage, move_to=move_to)
            return _removal(done)

        return await as_payload(run, StageRemovalPayload)
