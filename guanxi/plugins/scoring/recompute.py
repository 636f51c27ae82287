"""Computing scores: the same set-based statements for one customer (after an interaction) and
for everyone (``guanxi scoring recompute``, in customer-id ranges), so both give the same numbers.

One pass over a set of customers, all in SQL:

1. delete their parts;
2. insert the parts of each component (:mod:`guanxi.plugins.scoring.components`), then the
   components other plugins return from ``guanxi_score_components`` (one call per set);
3. insert a history row for each customer whose total changed;
4. upsert the totals (``INSERT … SELECT … ON CONFLICT DO UPDATE … RETURNING``);
5. hand the totals to ``guanxi_customers_scored`` (other plugins derive a grade from them).

Stage rules then run on the returned totals (:mod:`guanxi.plugins.scoring.stages`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Float, case, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guanxi.core.base import metrics
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import PluginError
from guanxi.core.domain.contracts import ScoreComponent
from guanxi.core.domain.models import Customer, UTCDateTime, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.scoring import components
from guanxi.plugins.scoring.components import Scope, ids_scope, range_scope
from guanxi.plugins.scoring.models import ScoringHistory, ScoringPart, ScoringScore
from guanxi.plugins.scoring.settings import ScoringSettings
from guanxi.plugins.scoring.sql import Dialect
from guanxi.plugins.scoring.stages import apply_stage_rules

NAME = "scoring"
#: the actor of stage moves and tasks made by the batch recompute
RULE_ACTOR = Actor(kind="rule", name="scoring", roles=("admin",))
#: totals closer than this are the same total (no history row)
EPSILON = 1e-9
#: runtime.state counter of history rows written (totals that changed), for reports and the bench
CHANGED_KEY = "scoring.changed"


def clock() -> dt.datetime:
    """The time scores are computed as of (decay ages are measured from it). One function, so
    that tests can fix it."""
    return utcnow()


def settings_of(runtime: Runtime, tenant_id: uuid.UUID) -> ScoringSettings:
    """The tenant's scoring settings (the deployment's, with the tenant's overrides)."""
    found: ScoringSettings = runtime.plugin_settings(NAME, tenant_id)
    return found


def _dialect_insert(runtime: Runtime) -> Any:
    return pg_insert if runtime.engine.dialect.name == "postgresql" else sqlite_insert


async def _plugin_parts(tx: Tx, ids: list[uuid.UUID], as_of: dt.datetime) -> list[dict[str, Any]]:
    """Other plugins' components for these customers, as part rows (one per customer and name)."""
    hook = (await tx.hooks()).guanxi_score_components
    if not hook.get_hookimpls():
        return []
    merged: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    wanted = set(ids)
    answers = await plugins.collect(hook, runtime=tx.runtime, session=tx.session, customer_ids=ids, as_of=as_of)
    for plugin, found in answers:
        for comp in found:
            if not isinstance(comp, ScoreComponent):
                raise PluginError(
                    f"plugin {plugin!r}: guanxi_score_components must return ScoreComponent values, not {type(comp).__name__}"
                )
            if comp.customer_id not in wanted:
                continue
            name = comp.name if "." in comp.name else f"{plugin}.{comp.name}"
            row = merged.setdefault(
                (comp.customer_id, name),
                {
                    "customer_id": comp.customer_id,
                    "component": name[:64],
                    "item": "",
                    "count": 0,
                    "skipped": 0,
                    "value": 0.0,
                    "reasons": [],
                },
            )
            row["value"] += float(comp.value)
            row["count"] += 1
            row["reasons"] = [*row["reasons"], *comp.reasons]
    return list(merged.values())


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _totals(tenant_id: uuid.UUID, scope: Scope) -> Any:
    """Each live customer of the set with the sum of its parts (0 without parts).

    A correlated sum (one primary-key range probe per customer) rather than a join with a grouped
    subquery: with the fresh statistics of a first recompute (``scoring_parts`` looked empty),
    PostgreSQL planned that join as a nested loop re-aggregating the parts for every customer,
    about a second per batch of 2,000; the probe has no such plan."""
    p, c = ScoringPart, Customer
    total = select(func.sum(p.value)).where(p.tenant_id == c.tenant_id, p.customer_id == c.id).scalar_subquery()
    return select(c.id.label("customer_id"), func.coalesce(total, literal(0.0, Float)).label("total")).where(
        c.tenant_id == tenant_id, scope(c.id), c.merged_into_id.is_(None)
    )


async def score_set(
    tx: Tx, scope: Scope, ids: list[uuid.UUID], *, as_of: dt.datetime, cause: str, history_min_change: float = EPSILON
) -> dict[uuid.UUID, float]:
    """Recompute the scores of a set of customers (``scope`` selects them in SQL, ``ids`` lists
    them for other plugins' components). Returns the new totals. A history row is written for a
    customer's first score and for a total that moved by more than ``history_min_change``."""
    runtime, session, tenant_id = tx.runtime, tx.session, tx.tenant_id
    settings = settings_of(runtime, tenant_id)
    d = Dialect(runtime.engine.dialect.name)
    await session.execute(delete(ScoringPart).where(ScoringPart.tenant_id == tenant_id, scope(ScoringPart.customer_id)))
    for stmt in (
        components.engagement(d, tenant_id, scope, as_of, settings),
        components.purchase(d, tenant_id, scope, as_of, settings),
        components.social(d, tenant_id, scope, settings),
        components.profile(d, tenant_id, scope, settings),
    ):
        if stmt is not None:
            await session.execute(stmt)
    extra = await _plugin_parts(tx, ids, as_of)
    if extra:
        await session.execute(insert(ScoringPart), [{**row, "tenant_id": tenant_id} for row in extra])
    totals = _totals(tenant_id, scope).subquery("totals")
    s = ScoringScore
    at = utcnow()
    threshold = literal(max(history_min_change, EPSILON), Float)
    changed = (
        select(
            literal(tenant_id).label("tenant_id"),
            totals.c.customer_id,
            literal(at, UTCDateTime()).label("at"),
            totals.c.total,
            s.recorded_total.label("previous"),
            literal(cause[:200]).label("cause"),
        )
        .select_from(totals)
        .outerjoin(s, (s.tenant_id == tenant_id) & (s.customer_id == totals.c.customer_id))
        .where(s.customer_id.is_(None) | (func.abs(s.recorded_total - totals.c.total) > threshold))
    )
    dialect_insert = _dialect_insert(runtime)
    history = dialect_insert(ScoringHistory).from_select(["tenant_id", "customer_id", "at", "total", "previous", "cause"], changed)
    tx.runtime.state[CHANGED_KEY] = tx.runtime.state.get(CHANGED_KEY, 0) + _rowcount(
        await session.execute(history.on_conflict_do_nothing())
    )
    upsert = dialect_insert(ScoringScore).from_select(
        ["tenant_id", "customer_id", "total", "recorded_total", "computed_at"],
        select(literal(tenant_id), totals.c.customer_id, totals.c.total, totals.c.total, literal(as_of, UTCDateTime())).where(
            literal(True)
        ),
    )
    new = upsert.excluded.total
    recorded = case((func.abs(new - s.recorded_total) > threshold, new), else_=s.recorded_total)  # as the history insert decided
    upsert = upsert.on_conflict_do_update(
        index_elements=[s.tenant_id, s.customer_id],
        set_={"total": new, "recorded_total": recorded, "computed_at": upsert.excluded.computed_at},
    ).returning(s.customer_id, s.total)
    rows = (await session.execute(upsert)).all()
    totals = {r.customer_id: float(r.total) for r in rows}
    if totals:  # what depends on the score (another plugin's grade field) follows in this transaction
        await plugins.call_all((await tx.hooks()).guanxi_customers_scored, tx=tx, totals=totals)
    return totals


#: scoring throughput: customers scored, by path (incremental after an event, or recompute)
RESCORED = metrics.counter("guanxi_scoring_customers_scored", "Customers the scoring plugin scored", ["path"])


async def score_customers(tx: Tx, ids: list[uuid.UUID], *, as_of: dt.datetime | None = None, cause: str) -> dict[uuid.UUID, float]:
    """Recompute some customers (the incremental path) and apply the stage rules to them."""
    if not ids:
        return {}
    if tx.runtime.engine.dialect.name == "postgresql":
        # two interactions of one customer committing together: the second waits for the first
        # (on SQLite the database write lock already serialises writers)
        await tx.session.execute(select(Customer.id).where(Customer.id.in_(ids)).order_by(Customer.id).with_for_update())
    totals = await score_set(tx, ids_scope(ids), ids, as_of=as_of or clock(), cause=cause)
    await apply_stage_rules(tx, totals, clock())
    RESCORED.labels("incremental").inc(len(totals))
    return totals


async def rescore(runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID, cause: str) -> dict[uuid.UUID, float]:
    """The incremental update of one customer, in its own transaction (what the event hooks run
    after an interaction, a profile change, a new identity … commits)."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=RULE_ACTOR)) as tx:
        return await score_customers(tx, [customer_id], cause=cause)


async def rescore_merge(runtime: Runtime, tenant_id: uuid.UUID, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> None:
    """After a merge: drop the tombstone's current score and parts, rescore the survivor."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=RULE_ACTOR)) as tx:
        await tx.session.execute(delete(ScoringPart).where(ScoringPart.customer_id == merged_id))
        await tx.session.execute(delete(ScoringScore).where(ScoringScore.customer_id == merged_id))
        await score_customers(tx, [survivor_id], cause="merge")


async def rescore_unmerge(runtime: Runtime, session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> dict[str, int]:
    """After a merge is undone (inside the undo's transaction, each customer holding its own
    interactions, identities and profile again): recompute both customers' scores, so the survivor
    loses what the merged timeline gave it and the restored customer gets its score back. Stage
    rules are not applied (an undo puts things back; it does not move customers on)."""
    tx = Tx(runtime, session, RequestContext(tenant_id=session.tenant_id, actor=RULE_ACTOR))
    ids = [survivor_id, merged_id]
    totals = await score_set(tx, ids_scope(ids), ids, as_of=clock(), cause="unmerge")
    RESCORED.labels("incremental").inc(len(totals))
    return {"rescored": len(totals)}


class RecomputeReport(msgspec.Struct, kw_only=True):
    tenant_id: uuid.UUID
    customers: int = 0
    batches: int = 0
    changed: int = 0
    moved: int = 0


async def recompute_tenant(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    *,
    as_of: dt.datetime | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RecomputeReport:
    """Recompute every customer of a tenant, batch by batch of customer ids (each batch one
    transaction, so the SQLite write lock is released between batches)."""
    await runtime.require_plugin(NAME, tenant_id)  # a tenant that disabled scoring gets no scores
    settings = settings_of(runtime, tenant_id)
    size = batch_size or settings.batch_size
    as_of = as_of or clock()
    report = RecomputeReport(tenant_id=tenant_id)
    async with runtime.session(tenant_id) as session:
        total = int(
            (await session.execute(select(func.count()).select_from(Customer).where(Customer.merged_into_id.is_(None)))).scalar_one()
        )
    if on_progress:
        on_progress(0, total)
    last: uuid.UUID | None = None
    ctx = RequestContext(tenant_id=tenant_id, actor=RULE_ACTOR)
    while True:
        async with runtime.transaction(ctx) as tx:
            stmt = select(Customer.id).where(Customer.merged_into_id.is_(None)).order_by(Customer.id).limit(size)
            if last is not None:
                stmt = stmt.where(Customer.id > last)
            if runtime.engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update()  # an interaction's update of one of them waits (see score_customers)
            ids = list((await tx.session.execute(stmt)).scalars())
            if not ids:
                break
            before = runtime.state.get(CHANGED_KEY, 0)
            totals = await score_set(
                tx, range_scope(last, ids[-1]), ids, as_of=as_of, cause="recompute", history_min_change=settings.history_min_change
            )
            report.changed += runtime.state.get(CHANGED_KEY, 0) - before
            report.moved += await apply_stage_rules(tx, totals, clock())
        last = ids[-1]
        RESCORED.labels("recompute").inc(len(ids))
        report.customers += len(ids)
        report.batches += 1
        if on_progress:
            on_progress(report.customers, total)
    return report
