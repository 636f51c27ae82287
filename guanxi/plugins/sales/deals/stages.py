"""Deal pipelines as editable tenant data: rename a pipeline; add, rename (and re-weigh),
reorder, archive, restore and delete its stages, history intact.

Mirrors core's customer pipelines (:mod:`guanxi.core.services.stages`): a stage some deal or
move names is never removed from the database (deleting it archives it), so every deal's history
still names its stages; removing a stage that holds open deals is refused with their count
unless a target open stage is given, and then each deal's move is recorded like any other. A
pipeline keeps at least one live open stage, one won and one lost. The open deals counted and
moved are all of the tenant's, whoever the caller may otherwise see.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import func, insert, select, update

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.domain.models import utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import ALL_OWNERS, TenantSession
from guanxi.models import new_id
from guanxi.plugins.sales.deals.models import SalesDeal, SalesDealMove, SalesDealPipeline, SalesDealStage
from guanxi.plugins.sales.deals.service import CATEGORIES, StageInput, _key, _name

EVERY_OWNER: dict[str, Any] = {ALL_OWNERS: True}


class StageRemoval(msgspec.Struct, frozen=True, kw_only=True):
    """What removing (or restoring) a stage did: open deals moved to ``moved_to``, and whether
    the stage was deleted or (named by history) archived."""

    stage: str
    moved: int
    moved_to: str | None
    deleted: bool
    archived: bool


async def pipeline_of(session: TenantSession, key: str, field: str = "pipeline") -> SalesDealPipeline:
    found = (await session.execute(select(SalesDealPipeline).where(SalesDealPipeline.key == key))).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no deal pipeline {key!r}", field=field)
    return found


async def stages(session: TenantSession, pipeline_id: uuid.UUID, *, archived: bool = False) -> list[SalesDealStage]:
    """The pipeline's stages in order (archived ones, placed last, only with ``archived``)."""
    stmt = select(SalesDealStage).where(SalesDealStage.pipeline_id == pipeline_id).order_by(SalesDealStage.position, SalesDealStage.key)
    if not archived:
        stmt = stmt.where(SalesDealStage.archived_at.is_(None))
    return list((await session.scalars(stmt)).all())


async def _stage(session: TenantSession, pipeline: SalesDealPipeline, key: str, field: str = "stage") -> SalesDealStage:
    found = (
        await session.execute(select(SalesDealStage).where(SalesDealStage.pipeline_id == pipeline.id, SalesDealStage.key == key))
    ).scalar_one_or_none()
    if found is None:
        known = ", ".join(s.key for s in await stages(session, pipeline.id))
        raise NotFoundError(f"no stage {key!r} in deal pipeline {pipeline.key!r} (stages: {known})", field=field)
    return found


def _probability(value: int, field: str = "probability") -> int:
    if not 0 <= value <= 100:
        raise ValidationError("probability must be 0 to 100", field=field)
    return value


async def _renumber(session: TenantSession, pipeline_id: uuid.UUID, live: list[SalesDealStage]) -> None:
    """Positions 0… for the live stages in this order, archived stages after them."""
    ids = {s.id for s in live}
    archived = [s for s in await stages(session, pipeline_id, archived=True) if s.archived_at is not None and s.id not in ids]
    for pos, s in enumerate([*live, *archived]):
        s.position = pos
    await session.flush()


async def rename_pipeline(tx: Tx, key: str, name: str) -> SalesDealPipeline:
    pipeline = await pipeline_of(tx.session, key)
    old, pipeline.name = pipeline.name, _name(name)
    await tx.session.flush()
    audit(tx, "sales.deal_pipeline.update", "salesDealPipeline", pipeline.id, {"key": key, "name": [old, pipeline.name]})
    return pipeline


async def add_stage(tx: Tx, pipeline_key: str, spec: StageInput, position: int | None = None) -> SalesDealStage:
    """Add a stage at ``position`` among the pipeline's live stages (None: last)."""
    session = tx.session
    pipeline = await pipeline_of(session, pipeline_key)
    key = _key(spec.key, "key")
    if spec.category not in CATEGORIES:
        raise ValidationError(f"category must be one of {list(CATEGORIES)}", field="category")
    taken = select(SalesDealStage.id).where(SalesDealStage.pipeline_id == pipeline.id, SalesDealStage.key == key)
    if (await session.execute(taken)).first() is not None:
        raise ConflictError(f"deal pipeline {pipeline.key!r} has a stage {key!r} already (perhaps archived)", field="key")
    stage = SalesDealStage(
        pipeline_id=pipeline.id,
        key=key,
        name=_name(spec.name),
        position=0,
        category=spec.category,
        probability=_probability(spec.probability),
    )
    live = await stages(session, pipeline.id)
    at = len(live) if position is None else max(0, min(position, len(live)))
    live.insert(at, stage)
    session.add(stage)
    await session.flush()
    await _renumber(session, pipeline.id, live)
    audit(tx, "sales.deal_stage.create", "salesDealStage", stage.id, {"pipeline": pipeline.key, "key": key, "position": at})
    return stage


async def update_stage(
    tx: Tx, pipeline_key: str, stage_key: str, *, name: str | None = None, probability: int | None = None
) -> SalesDealStage:
    """Rename a stage or change its probability; its key, id, deals and history stay."""
    pipeline = await pipeline_of(tx.session, pipeline_key)
    stage = await _stage(tx.session, pipeline, stage_key)
    changed: dict[str, list[Any]] = {}
    if name is not None and _name(name) != stage.name:
        changed["name"] = [stage.name, _name(name)]
        stage.name = changed["name"][1]
    if probability is not None and _probability(probability) != stage.probability:
        changed["probability"] = [stage.probability, probability]
        stage.probability = probability
    if changed:
        await tx.session.flush()
        audit(tx, "sales.deal_stage.update", "salesDealStage", stage.id, {"pipeline": pipeline.key, "key": stage.key, **changed})
    return stage


async def reorder_stages(tx: Tx, pipeline_key: str, keys: list[str]) -> list[SalesDealStage]:
    """Put the pipeline's live stages in this order; ``keys`` names each of them once."""
    pipeline = await pipeline_of(tx.session, pipeline_key)
    live = {s.key: s for s in await stages(tx.session, pipeline.id)}
    if sorted(keys) != sorted(live) or len(set(keys)) != len(keys):
        raise ValidationError(f"name every live stage of {pipeline.key!r} once: {', '.join(live)}", field="keys")
    ordered = [live[k] for k in keys]
    await _renumber(tx.session, pipeline.id, ordered)
    audit(tx, "sales.deal_stage.reorder", "salesDealPipeline", pipeline.id, {"pipeline": pipeline.key, "keys": keys})
    return ordered


async def _check_not_last(session: TenantSession, pipeline: SalesDealPipeline, stage: SalesDealStage) -> None:
    others = [s for s in await stages(session, pipeline.id) if s.category == stage.category and s.id != stage.id]
    if not others:
        raise ValidationError(f"{stage.key!r} is the last {stage.category} stage of deal pipeline {pipeline.key!r}", field="stage")


async def _empty_stage(tx: Tx, pipeline: SalesDealPipeline, stage: SalesDealStage, move_to: str | None) -> tuple[int, str | None]:
    """Move the stage's open deals (of every owner) to ``move_to``, a live open stage of the same
    pipeline, each move recorded; refused with the count when there are some and no target.
    Three statements for any number of deals."""
    session = tx.session
    holds = (SalesDeal.stage_id == stage.id) & (SalesDeal.status == "open")
    count = int(
        (await session.execute(select(func.count()).select_from(SalesDeal).where(holds).execution_options(**EVERY_OWNER))).scalar_one()
    )
    if count == 0:
        return 0, None
    if move_to is None:
        raise ConflictError(f"stage {stage.key!r} holds {count} open deals; give a stage to move them to (moveTo)", field="moveTo")
    target = await _stage(session, pipeline, move_to, "moveTo")
    if target.id == stage.id:
        raise ValidationError("moveTo is the stage being removed", field="moveTo")
    if target.archived_at is not None or target.category != "open":
        raise ValidationError(f"moveTo must be a live open stage of {pipeline.key!r}, not {move_to!r}", field="moveTo")
    deals = (await session.execute(select(SalesDeal.id, SalesDeal.customer_id).where(holds).execution_options(**EVERY_OWNER))).all()
    now, actor = utcnow(), tx.ctx.actor.user_id
    moves = [
        {"id": new_id(), "customer_id": c, "deal_id": d, "from_stage_id": stage.id, "to_stage_id": target.id, "user_id": actor, "at": now}
        for d, c in deals
    ]
    await session.execute(insert(SalesDealMove), moves, execution_options=EVERY_OWNER)
    await session.execute(
        update(SalesDeal)
        .where(holds)
        .values(stage_id=target.id, updated_at=now)
        .execution_options(synchronize_session=False, **EVERY_OWNER)
    )
    return len(deals), target.key


async def archive_stage(tx: Tx, pipeline_key: str, stage_key: str, *, move_to: str | None = None, restore: bool = False) -> StageRemoval:
    """Archive a stage (its open deals moved to ``move_to`` first), or restore an archived one
    (placed last)."""
    session = tx.session
    pipeline = await pipeline_of(session, pipeline_key)
    stage = await _stage(session, pipeline, stage_key)
    if restore:
        if stage.archived_at is not None:
            stage.archived_at = None
            await _renumber(session, pipeline.id, [*await stages(session, pipeline.id), stage])
            audit(tx, "sales.deal_stage.restore", "salesDealStage", stage.id, {"pipeline": pipeline.key, "key": stage.key})
        return StageRemoval(stage=stage.key, moved=0, moved_to=None, deleted=False, archived=False)
    if stage.archived_at is not None:
        return StageRemoval(stage=stage.key, moved=0, moved_to=None, deleted=False, archived=True)
    await _check_not_last(session, pipeline, stage)
    moved, to = await _empty_stage(tx, pipeline, stage, move_to)
    stage.archived_at = utcnow()
    await _renumber(session, pipeline.id, [s for s in await stages(session, pipeline.id) if s.id != stage.id])
    audit(
        tx,
        "sales.deal_stage.archive",
        "salesDealStage",
        stage.id,
        {"pipeline": pipeline.key, "key": stage.key, "moved": moved, "moved_to": to},
    )
    return StageRemoval(stage=stage.key, moved=moved, moved_to=to, deleted=False, archived=True)


async def delete_stage(tx: Tx, pipeline_key: str, stage_key: str, *, move_to: str | None = None) -> StageRemoval:
    """Delete a stage. Its open deals are moved to ``move_to`` first (refused, with their count,
    without one); a stage some deal or move names is archived instead, so history stays whole."""
    session = tx.session
    pipeline = await pipeline_of(session, pipeline_key)
    stage = await _stage(session, pipeline, stage_key)
    if stage.archived_at is None:
        await _check_not_last(session, pipeline, stage)
    moved, to = await _empty_stage(tx, pipeline, stage, move_to)
    named = (
        select(SalesDealMove.id)
        .where((SalesDealMove.to_stage_id == stage.id) | (SalesDealMove.from_stage_id == stage.id))
        .limit(1)
        .execution_options(**EVERY_OWNER)
    )
    in_use = select(SalesDeal.id).where(SalesDeal.stage_id == stage.id).limit(1).execution_options(**EVERY_OWNER)
    if (await session.execute(named)).first() is not None or (await session.execute(in_use)).first() is not None:
        if stage.archived_at is None:
            stage.archived_at = utcnow()
        deleted = False
    else:
        await session.delete(stage)
        deleted = True
    await session.flush()
    await _renumber(session, pipeline.id, await stages(session, pipeline.id))
    audit(
        tx,
        "sales.deal_stage.delete",
        "salesDealStage",
        stage.id,
        {"pipeline": pipeline.key, "key": stage.key, "moved": moved, "moved_to": to, "archived_instead": not deleted},
    )
    return StageRemoval(stage=stage.key, moved=moved, moved_to=to, deleted=deleted, archived=not deleted)
