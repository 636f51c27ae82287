"""Tenants, pipelines and stages, and moving customers between stages."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.events import StageChanged
from guanxi.core.domain.models import Customer, Pipeline, Stage, StageChange, Tenant, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import TenantSession, unscoped


class StageSpec(msgspec.Struct, frozen=True):
    key: str
    name: str
    category: str = "open"


#: The default lifecycle: lead → MQL → SQL → opportunity → won / lost → retained / churned.
DEFAULT_STAGES: tuple[StageSpec, ...] = (
    StageSpec("lead", "Lead"),
    StageSpec("mql", "Marketing qualified"),
    StageSpec("sql", "Sales qualified"),
    StageSpec("opportunity", "Opportunity"),
    StageSpec("won", "Won", "won"),
    StageSpec("lost", "Lost", "lost"),
    StageSpec("retained", "Retained", "retained"),
    StageSpec("churned", "Churned", "churned"),
)
CATEGORIES = frozenset({"open", "won", "lost", "retained", "churned"})


async def create_tenant(session: TenantSession, slug: str, name: str) -> uuid.UUID:
    """Create a tenant with the default pipeline. Cross-tenant: runs unscoped."""
    tenant_id = new_id()
    with unscoped(session):
        session.add(Tenant(id=tenant_id, slug=slug, name=name))
        await session.flush()
        pipeline_id = new_id()
        session.add(Pipeline(tenant_id=tenant_id, id=pipeline_id, key="default", name="Sales", is_default=True))
        await session.flush()
        for pos, spec in enumerate(DEFAULT_STAGES):
            session.add(
                Stage(
                    tenant_id=tenant_id,
                    id=new_id(),
                    pipeline_id=pipeline_id,
                    key=spec.key,
                    name=spec.name,
                    position=pos,
                    category=spec.category,
                )
            )
        await session.flush()
    return tenant_id


async def default_pipeline(session: TenantSession) -> Pipeline:
    pipeline = (await session.execute(select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.key).limit(1))).scalar_one_or_none()
    if pipeline is None:
        raise NotFoundError("this tenant has no pipeline")
    return pipeline


async def stages_of(session: TenantSession, pipeline_id: uuid.UUID) -> list[Stage]:
    """The pipeline's stages in order, archived ones left out."""
    rows = await session.execute(
        select(Stage).where(Stage.pipeline_id == pipeline_id, Stage.archived_at.is_(None)).order_by(Stage.position)
    )
    return list(rows.scalars())


async def stage_by_key(session: TenantSession, key: str, pipeline_id: uuid.UUID | None = None) -> Stage:
    if pipeline_id is None:
        pipeline_id = (await default_pipeline(session)).id
    stage = (await session.execute(select(Stage).where(Stage.pipeline_id == pipeline_id, Stage.key == key))).scalar_one_or_none()
    if stage is None:
        known = ", ".join(s.key for s in await stages_of(session, pipeline_id))
        raise ValidationError(f"unknown stage {key!r} (stages: {known})", field="stage")
    return stage


async def move_stage(
    tx: Tx,
    customer: Customer,
    stage: Stage,
    *,
    reason: str | None = None,
    rule: str | None = None,
) -> StageChange | None:
    """Move a customer to ``stage``, recording who (actor or rule) and why. Moving to the
    current stage changes nothing and returns None."""
    if customer.stage_id == stage.id:
        return None
    previous_key: str | None = None
    if customer.stage_id is not None:
        previous = await tx.session.get(Stage, (tx.tenant_id, customer.stage_id))
        previous_key = previous.key if previous else None
    from_stage_id = customer.stage_id
    customer.stage_id = stage.id
    customer.updated_at = utcnow()
    return record_stage_change(tx, customer, stage, from_stage_id, previous_key, reason=reason, rule=rule)


def record_stage_change(
    tx: Tx,
    customer: Customer,
    stage: Stage,
    from_stage_id: uuid.UUID | None,
    previous_key: str | None,
    *,
    reason: str | None = None,
    rule: str | None = None,
) -> StageChange:
    """Record that ``customer`` (already at ``stage``) came from ``from_stage_id`` (key
    ``previous_key``): the history row, the audit row and ``guanxi_stage_changed``. A new
    customer inserted at its entry stage records its entry with it (no UPDATE of the row)."""
    change = StageChange(
        id=new_id(),
        customer_id=customer.id,
        from_stage_id=from_stage_id,
        to_stage_id=stage.id,
        changed_at=utcnow(),
        actor_id=tx.ctx.actor.user_id,
        rule=rule,
        reason=reason,
    )
    tx.session.add(change)
    audit(tx, "customer.stage", "customer", customer.id, {"from": previous_key, "to": stage.key, "rule": rule, "reason": reason})
    tx.emit(
        "guanxi_stage_changed",
        StageChanged(
            tenant_id=tx.tenant_id,
            actor=tx.ctx.actor,
            customer_id=customer.id,
            from_stage=previous_key,
            to_stage=stage.key,
            rule=rule,
            reason=reason,
        ),
    )
    return change
