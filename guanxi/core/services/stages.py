"""Pipelines and stages as tenant data: create pipelines with an arrival rule, add, rename,
reorder, archive and delete stages (history intact), and choose a new customer's pipeline.

A customer stands in one pipeline at a time: the pipeline of its current stage. Stage moves
(within a pipeline or to another) are :func:`guanxi.core.services.pipelines.move_stage`, which
records each on the customer's history. A stage that has history is never removed from the
database: deleting it archives it, so every ``StageChange`` still names a stage."""

from __future__ import annotations

import re
import uuid

import msgspec
from sqlalchemy import func, select

from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Customer, Pipeline, Stage, StageChange, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.pipelines import CATEGORIES, DEFAULT_STAGES, StageSpec, default_pipeline, move_stage
from guanxi.core.storage.tenancy import TenantSession

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
UNSET = msgspec.UNSET


class PipelineInput(msgspec.Struct, kw_only=True):
    key: str
    name: str
    #: the arrival rule: sources (or channel names) whose new customers start here
    sources: list[str] = msgspec.field(default_factory=list)
    #: the stages in order; empty: a copy of the default lifecycle
    stages: list[StageSpec] = msgspec.field(default_factory=list)
    is_default: bool = False


class PipelinePatch(msgspec.Struct, kw_only=True):
    name: str | msgspec.UnsetType = UNSET
    sources: list[str] | msgspec.UnsetType = UNSET
    is_default: bool | msgspec.UnsetType = UNSET


class StageRemoval(msgspec.Struct, frozen=True, kw_only=True):
    """What removing a stage did: customers moved to ``moved_to``, and whether the stage was
    deleted or (having history) archived."""

    stage: str
    moved: int
    moved_to: str | None
    deleted: bool
    archived: bool


def _check_key(key: str, field: str) -> str:
    if not _KEY.match(key):
        raise ValidationError(f"{key!r} is not a key (lower_snake_case, a letter first, at most 64 characters)", field=field)
    return key


def _check_name(name: str, field: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > 200:
        raise ValidationError("a name must have 1 to 200 characters", field=field)
    return cleaned


def _check_category(category: str, field: str) -> str:
    if category not in CATEGORIES:
        raise ValidationError(f"unknown stage category {category!r} (one of {', '.join(sorted(CATEGORIES))})", field=field)
    return category


def _check_sources(sources: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(s.strip() for s in sources if s.strip()))
    if any(len(s) > 100 for s in cleaned):
        raise ValidationError("a source has at most 100 characters", field="sources")
    return cleaned


async def list_pipelines(session: TenantSession) -> list[Pipeline]:
    return list((await session.execute(select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.key))).scalars())


async def pipeline_by_key(session: TenantSession, key: str | None, field: str = "pipeline") -> Pipeline:
    """The pipeline with this key; None: the default pipeline."""
    if key is None:
        return await default_pipeline(session)
    found = (await session.execute(select(Pipeline).where(Pipeline.key == key))).scalar_one_or_none()
    if found is None:
        known = ", ".join(p.key for p in await list_pipelines(session))
        raise ValidationError(f"unknown pipeline {key!r} (pipelines: {known})", field=field)
    return found


async def pipeline_stages(session: TenantSession, pipeline_id: uuid.UUID, *, archived: bool = False) -> list[Stage]:
    stmt = select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position, Stage.key)
    if not archived:
        stmt = stmt.where(Stage.archived_at.is_(None))
    return list((await session.execute(stmt)).scalars())


async def _stage(session: TenantSession, pipeline: Pipeline, key: str, field: str = "stage") -> Stage:
    found = (await session.execute(select(Stage).where(Stage.pipeline_id == pipeline.id, Stage.key == key))).scalar_one_or_none()
    if found is None:
        known = ", ".join(s.key for s in await pipeline_stages(session, pipeline.id))
        raise ValidationError(f"unknown stage {key!r} in pipeline {pipeline.key!r} (stages: {known})", field=field)
    return found


async def target_stage(session: TenantSession, pipeline: Pipeline, key: str | None, field: str = "stage") -> Stage:
    """A stage customers may enter: ``key`` of ``pipeline`` (not archived), or its first stage."""
    if key is None:
        live = await pipeline_stages(session, pipeline.id)
        if not live:
            raise ValidationError(f"pipeline {pipeline.key!r} has no stage", field=field)
        return live[0]
    stage = await _stage(session, pipeline, key, field)
    if stage.archived_at is not None:
        raise ValidationError(f"stage {key!r} of pipeline {pipeline.key!r} is archived", field=field)
    return stage


async def arrival_pipeline(session: TenantSession, source: str | None) -> Pipeline:
    """The pipeline a new customer starts in: the first (by key) whose arrival rule names its
    source, else the default pipeline."""
    pipelines = await list_pipelines(session)
    if source:
        for p in sorted(pipelines, key=lambda p: p.key):
            if source in (p.sources or []):
                return p
    if not pipelines:
        return await default_pipeline(session)  # raises NotFoundError
    return pipelines[0]


async def _unset_default(session: TenantSession, keep: uuid.UUID) -> None:
    for p in await list_pipelines(session):
        if p.id != keep and p.is_default:
            p.is_default = False


async def create_pipeline(tx: Tx, data: PipelineInput) -> Pipeline:
    session = tx.session
    key = _check_key(data.key, "key")
    if (await session.execute(select(Pipeline.id).where(Pipeline.key == key))).first() is not None:
        raise ConflictError(f"a pipeline {key!r} exists already")
    specs = list(data.stages) or list(DEFAULT_STAGES)
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        _check_key(spec.key, f"stages[{i}].key")
        _check_name(spec.name, f"stages[{i}].name")
        _check_category(spec.category, f"stages[{i}].category")
        if spec.key in seen:
            raise ValidationError(f"stage {spec.key!r} is given twice", field=f"stages[{i}].key")
        seen.add(spec.key)
    if not any(s.category == "open" for s in specs):
        raise ValidationError("a pipeline needs at least one open stage", field="stages")
    pipeline = Pipeline(
        id=new_id(), key=key, name=_check_name(data.name, "name"), is_default=data.is_default, sources=_check_sources(data.sources)
    )
    session.add(pipeline)
    await session.flush()
    for pos, spec in enumerate(specs):
        session.add(Stage(id=new_id(), pipeline_id=pipeline.id, key=spec.key, name=spec.name.strip(), position=pos, category=spec.category))
    if data.is_default:
        await _unset_default(session, pipeline.id)
    await session.flush()
    audit(tx, "pipeline.create", "pipeline", pipeline.id, {"key": key, "stages": [s.key for s in specs], "sources": pipeline.sources})
    return pipeline


async def update_pipeline(tx: Tx, key: str, patch: PipelinePatch) -> Pipeline:
    pipeline = await pipeline_by_key(tx.session, key)
    changed: dict[str, object] = {}
    if patch.name is not UNSET:
        changed["name"] = pipeline.name = _check_name(patch.name, "name")
    if patch.sources is not UNSET:
        changed["sources"] = pipeline.sources = _check_sources(patch.sources)
    if patch.is_default is not UNSET:
        if not patch.is_default and pipeline.is_default:
            raise ValidationError("make another pipeline the default instead", field="isDefault")
        if patch.is_default:
            pipeline.is_default = True
            await _unset_default(tx.session, pipeline.id)
            changed["is_default"] = True
    await tx.session.flush()
    audit(tx, "pipeline.update", "pipeline", pipeline.id, {"key": key, **changed})
    return pipeline


async def add_stage(tx: Tx, pipeline_key: str, spec: StageSpec, position: int | None = None) -> Stage:
    """Add a stage at ``position`` among the pipeline's live stages (None: last)."""
    session = tx.session
    pipeline = await pipeline_by_key(session, pipeline_key)
    key = _check_key(spec.key, "key")
    if (await session.execute(select(Stage.id).where(Stage.pipeline_id == pipeline.id, Stage.key == key))).first() is not None:
        raise ConflictError(f"pipeline {pipeline.key!r} has a stage {key!r} already (perhaps archived)")
    stage = Stage(
        id=new_id(),
        pipeline_id=pipeline.id,
        key=key,
        name=_check_name(spec.name, "name"),
        position=0,
        category=_check_category(spec.category, "category"),
    )
    live = await pipeline_stages(session, pipeline.id)
    at = len(live) if position is None else max(0, min(position, len(live)))
    live.insert(at, stage)
    session.add(stage)
    await _renumber(session, pipeline.id, live)
    audit(tx, "stage.create", "stage", stage.id, {"pipeline": pipeline.key, "key": key, "position": at})
    return stage


async def _renumber(session: TenantSession, pipeline_id: uuid.UUID, live: list[Stage]) -> None:
    """Positions 0… for the live stages in this order, archived stages after them."""
    archived = [s for s in await pipeline_stages(session, pipeline_id, archived=True) if s.archived_at is not None]
    for pos, s in enumerate([*live, *archived]):
        s.position = pos
    await session.flush()


async def update_stage(tx: Tx, pipeline_key: str, stage_key: str, *, name: str | None = None, category: str | None = None) -> Stage:
    """Rename a stage or change its category; its key, id and history stay."""
    pipeline = await pipeline_by_key(tx.session, pipeline_key)
    stage = await _stage(tx.session, pipeline, stage_key)
    changed: dict[str, list[str]] = {}
    if name is not None and _check_name(name, "name") != stage.name:
        changed["name"] = [stage.name, _check_name(name, "name")]
        stage.name = changed["name"][1]
    if category is not None and _check_category(category, "category") != stage.category:
        changed["category"] = [stage.category, category]
        stage.category = category
    if changed:
        await tx.session.flush()
        audit(tx, "stage.update", "stage", stage.id, {"pipeline": pipeline.key, "key": stage.key, **changed})
    return stage


async def reorder_stages(tx: Tx, pipeline_key: str, keys: list[str]) -> list[Stage]:
    """Put the pipeline's live stages in this order; ``keys`` names each of them once."""
    pipeline = await pipeline_by_key(tx.session, pipeline_key)
    live = {s.key: s for s in await pipeline_stages(tx.session, pipeline.id)}
    if sorted(keys) != sorted(live) or len(set(keys)) != len(keys):
        raise ValidationError(f"name every stage of {pipeline.key!r} once: {', '.join(live)}", field="keys")
    ordered = [live[k] for k in keys]
    await _renumber(tx.session, pipeline.id, ordered)
    audit(tx, "stage.reorder", "pipeline", pipeline.id, {"pipeline": pipeline.key, "keys": keys})
    return ordered


async def _empty_stage(tx: Tx, pipeline: Pipeline, stage: Stage, move_to: str | None, reason: str) -> tuple[int, str | None]:
    """Move the stage's customers to ``move_to`` (a stage of the same pipeline), each move on
    the customer's history; refused with the count when there are customers and no target."""
    session = tx.session
    live = (Customer.stage_id == stage.id) & Customer.merged_into_id.is_(None)
    count = int((await session.execute(select(func.count()).select_from(Customer).where(live))).scalar_one())
    if count == 0:
        return 0, None
    if move_to is None:
        raise ConflictError(f"stage {stage.key!r} holds {count} customers; give a stage to move them to (moveTo)")
    target = await target_stage(session, pipeline, move_to, "moveTo")
    if target.id == stage.id:
        raise ValidationError("moveTo is the stage being removed", field="moveTo")
    rows = (await session.execute(select(Customer).where(live).order_by(Customer.id))).scalars().all()
    for customer in rows:
        await move_stage(tx, customer, target, reason=reason, rule=f"stage.{stage.key}.removed")
    return len(rows), target.key


async def archive_stage(tx: Tx, pipeline_key: str, stage_key: str, *, move_to: str | None = None, restore: bool = False) -> StageRemoval:
    """Archive a stage (its customers moved to ``move_to`` first), or restore an archived one
    (placed last)."""
    session = tx.session
    pipeline = await pipeline_by_key(session, pipeline_key)
    stage = await _stage(session, pipeline, stage_key)
    if restore:
        if stage.archived_at is not None:
            stage.archived_at = None
            await _renumber(session, pipeline.id, [*await pipeline_stages(session, pipeline.id), stage])
            audit(tx, "stage.restore", "stage", stage.id, {"pipeline": pipeline.key, "key": stage.key})
        return StageRemoval(stage=stage.key, moved=0, moved_to=None, deleted=False, archived=False)
    if stage.archived_at is None:
        await _check_not_last(session, pipeline, stage)
        moved, to = await _empty_stage(tx, pipeline, stage, move_to, f"stage {stage.key} archived")
        stage.archived_at = utcnow()
        await _renumber(session, pipeline.id, [s for s in await pipeline_stages(session, pipeline.id) if s.id != stage.id])
        audit(tx, "stage.archive", "stage", stage.id, {"pipeline": pipeline.key, "key": stage.key, "moved": moved, "moved_to": to})
        return StageRemoval(stage=stage.key, moved=moved, moved_to=to, deleted=False, archived=True)
    return StageRemoval(stage=stage.key, moved=0, moved_to=None, deleted=False, archived=True)


async def _check_not_last(session: TenantSession, pipeline: Pipeline, stage: Stage) -> None:
    live = await pipeline_stages(session, pipeline.id)
    if stage.category == "open" and not [s for s in live if s.category == "open" and s.id != stage.id]:
        raise ValidationError(f"{stage.key!r} is the last open stage of {pipeline.key!r}", field="stage")


async def delete_stage(tx: Tx, pipeline_key: str, stage_key: str, *, move_to: str | None = None) -> StageRemoval:
    """Delete a stage. Its customers are moved to ``move_to`` first (refused, with their count,
    without one); a stage some history names is archived instead, so the history stays whole."""
    session = tx.session
    pipeline = await pipeline_by_key(session, pipeline_key)
    stage = await _stage(session, pipeline, stage_key)
    if stage.archived_at is None:
        await _check_not_last(session, pipeline, stage)
    moved, to = await _empty_stage(tx, pipeline, stage, move_to, f"stage {stage.key} deleted")
    named = (
        await session.execute(
            select(StageChange.id).where((StageChange.to_stage_id == stage.id) | (StageChange.from_stage_id == stage.id)).limit(1)
        )
    ).first()
    # merged tombstones keep the stage they had: they name it too
    tombstone = (await session.execute(select(Customer.id).where(Customer.stage_id == stage.id).limit(1))).first()
    if named is not None or tombstone is not None:
        if stage.archived_at is None:
            stage.archived_at = utcnow()
        deleted = False
    else:
        await session.delete(stage)
        deleted = True
    await session.flush()
    await _renumber(session, pipeline.id, await pipeline_stages(session, pipeline.id))
    audit(
        tx,
        "stage.delete",
        "stage",
        stage.id,
        {"pipeline": pipeline.key, "key": stage.key, "moved": moved, "moved_to": to, "archived_instead": not deleted},
    )
    return StageRemoval(stage=stage.key, moved=moved, moved_to=to, deleted=deleted, archived=not deleted)
