"""Computing scores: the same set-based statements for one customer (after an interaction) and
for everyone (``guanxi scoring recompute``, in customer-id ranges), so both give the same numbers.

One pass over a set of customers, all in SQL:

1. the part rows of each component (:mod:`guanxi.plugins.scoring.components`) and of the
   components other plugins return from ``guanxi_score_components`` (one call per set), summed
   and aggregated per customer into a total and a JSON array of parts;
2. a history row for each customer whose total changed;
3. the totals and parts upserted (``INSERT … SELECT … ON CONFLICT DO UPDATE … RETURNING``): one
   row per customer;
4. the totals handed to ``guanxi_customers_scored`` (other plugins derive a grade from them).

On PostgreSQL 1–3 are one statement (data-modifying CTEs).

Stage rules then run on the returned totals (:mod:`guanxi.plugins.scoring.stages`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import (
    JSON,
    Column,
    Float,
    MetaData,
    String,
    Table,
    Uuid,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.schema import CreateTable

from guanxi.core.base import metrics
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import PluginError
from guanxi.core.domain.contracts import ScoreComponent
from guanxi.core.domain.models import Customer, UTCDateTime, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.scoring import components
from guanxi.plugins.scoring import parts as parts_json
from guanxi.plugins.scoring.components import Scope, ids_scope, range_scope
from guanxi.plugins.scoring.models import ScoringHistory, ScoringScore
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


#: SQLite's scratch table of one batch's totals (per connection, emptied before each use; not a
#: table of the schema, so it has no migration and no tenant column: it only ever holds the rows
#: of the set being scored, computed by statements that name the tenant)
_BATCH = Table(
    "scoring_batch",
    MetaData(),
    Column("customer_id", Uuid, primary_key=True),
    Column("total", Float, nullable=False),
    Column("parts", JSON, nullable=False),
    prefixes=["TEMPORARY"],
)
_BATCH_DDL = CreateTable(_BATCH, if_not_exists=True)


def _totals(d: Dialect, tenant_id: uuid.UUID, scope: Scope, selects: list[Any]) -> Any:
    """Each live customer of the set with the sum of its parts (0 without parts) and the parts as
    one JSON array (``[]`` without parts): the part rows of every component, summed and
    aggregated per customer in the database."""
    c = Customer
    live = (c.tenant_id == tenant_id, scope(c.id), c.merged_into_id.is_(None))
    empty: Any = literal_column("CAST('[]' AS JSON)") if d.pg else literal_column("'[]'")
    if not selects:
        return select(c.id.label("customer_id"), literal(0.0, Float).label("total"), empty.label("parts")).where(*live)
    source: Any = selects[0] if len(selects) == 1 else union_all(*selects)
    rows = source.subquery("part_rows")
    per = (
        select(rows.c.customer_id, func.sum(rows.c.value).label("total"), parts_json.aggregate(d.name, rows.c).label("parts"))
        .group_by(rows.c.customer_id)
        .subquery("per_customer")
    )
    return (
        select(
            c.id.label("customer_id"),
            func.coalesce(per.c.total, literal(0.0, Float)).label("total"),
            func.coalesce(per.c.parts, empty).label("parts"),
        )
        .select_from(c)
        .outerjoin(per, per.c.customer_id == c.id)
        .where(*live)
    )


class ScorePass:
    """The statements that score a set of customers, built once and run for each set.

    Every component's part rows are summed and aggregated per customer in SQL and written with
    the total (one row per customer). On PostgreSQL, one statement computes them once and writes
    both the history and the scores (data-modifying CTEs). SQLite has no such CTEs: for a
    ``batch`` (the recompute's thousands of customers) the totals are computed once into a scratch
    table that the history insert and the upsert read; for the few customers of an incremental
    update, computing them twice is cheaper than the scratch table's three extra statements.

    What varies between the sets of one recompute is bound at run time (the bounds of the id
    range, other plugins' parts, the time of the history rows), so the batch recompute builds its
    statements once: building them, and SQLAlchemy's cache key of them, cost ~20 ms a batch."""

    def __init__(
        self,
        runtime: Runtime,
        tenant_id: uuid.UUID,
        scope: Scope,
        *,
        as_of: dt.datetime,
        cause: str,
        history_min_change: float = EPSILON,
        batch: bool = False,
        plugin_parts: bool = False,
        returned: bool | float = True,
    ) -> None:
        self.as_of = as_of
        self.plugin_parts = plugin_parts
        settings = settings_of(runtime, tenant_id)
        d = self.dialect = Dialect(runtime.engine.dialect.name)
        selects = [
            *components.engagement(d, tenant_id, scope, as_of, settings),
            *components.purchase(d, tenant_id, scope, as_of, settings),
            *components.social(d, tenant_id, scope, settings),
            *components.profile(d, tenant_id, scope, settings),
            *(components.plugin_rows(d, tenant_id, bindparam("plugin_parts", type_=String)) if plugin_parts else []),
        ]
        computed: Any = _totals(d, tenant_id, scope, selects)
        self.scratch: list[Any] = []
        if d.pg:
            totals = computed.cte("totals")
        elif not batch:
            totals = computed.subquery("totals")
        else:
            # the totals go to a scratch table of the connection first, so that the history and
            # the upsert read them without computing them twice
            self.scratch = [_BATCH_DDL, delete(_BATCH), insert(_BATCH).from_select(["customer_id", "total", "parts"], computed)]
            totals = _BATCH
        s = ScoringScore
        threshold = literal(max(history_min_change, EPSILON), Float)
        # the recorded total before this pass (NULL: no score yet), one primary-key probe per
        # customer: as a join, PostgreSQL planned a tenant's first recompute on statistics that
        # saw scoring_scores empty and hashed the whole, growing table in every batch (O(n²):
        # 38 s instead of 12 s at 200,000 customers)
        previous = select(s.recorded_total).where(s.tenant_id == tenant_id, s.customer_id == totals.c.customer_id).scalar_subquery()
        changed = (
            select(
                literal(tenant_id).label("tenant_id"),
                totals.c.customer_id,
                bindparam("at", type_=UTCDateTime()).label("at"),
                totals.c.total,
                previous.label("previous"),
                literal(cause[:200]).label("cause"),
            )
            .select_from(totals)
            .where(previous.is_(None) | (func.abs(previous - totals.c.total) > threshold))
        )
        dialect_insert = _dialect_insert(runtime)
        history = (
            dialect_insert(ScoringHistory)
            .from_select(["tenant_id", "customer_id", "at", "total", "previous", "cause"], changed)
            .on_conflict_do_nothing()
            .returning(ScoringHistory.customer_id)
        )
        upsert = dialect_insert(ScoringScore).from_select(
            ["tenant_id", "customer_id", "total", "recorded_total", "computed_at", "parts"],
            select(
                literal(tenant_id), totals.c.customer_id, totals.c.total, totals.c.total, literal(as_of, UTCDateTime()), totals.c.parts
            ).where(literal(True)),
        )
        new = upsert.excluded.total
        recorded = case((func.abs(new - s.recorded_total) > threshold, new), else_=s.recorded_total)  # as the history insert decided
        upsert = upsert.on_conflict_do_update(
            index_elements=[s.tenant_id, s.customer_id],
            set_={"total": new, "recorded_total": recorded, "computed_at": upsert.excluded.computed_at, "parts": upsert.excluded.parts},
        ).returning(s.customer_id, s.total)
        self.writes: list[Any]
        if d.pg:
            # both writes read the snapshot from before the statement: the history compares with
            # the old recorded totals, as the upsert's CASE does
            written = history.cte("history_rows")
            scored = upsert.cte("scored")
            # one row at least, for the count of history rows, joined with the totals returned
            counted = select(func.count().label("changed")).select_from(written).subquery("counted")
            if returned is True:
                wanted: Any = true()
            elif returned is False:
                wanted = false()
            else:
                wanted = scored.c.total >= literal(float(returned), Float)
            self.writes = [select(counted.c.changed, scored.c.customer_id, scored.c.total).select_from(counted.outerjoin(scored, wanted))]
        else:
            # the history's rows are counted from RETURNING: Python's sqlite3 gives no rowcount
            # for a statement that starts with WITH (the purchases' aggregate is a CTE)
            # (raw: the run's bind values are parameters of the statement, not rows of an ORM
            # bulk insert, which is what a dict passed with an insert of a mapped class means)
            self.writes = [history.execution_options(dml_strategy="raw"), upsert.execution_options(dml_strategy="raw")]

    async def run(self, tx: Tx, ids: list[uuid.UUID], bounds: dict[str, Any] | None = None) -> dict[uuid.UUID, float]:
        """Score the set (``ids``, and ``bounds``: the values of the scope's bind parameters).
        Returns the new totals: all of them, or with ``returned`` a number only those at least
        that high (what stage rules can move), or with ``returned`` False none (on PostgreSQL;
        SQLite's RETURNING has no filter, so it returns them all)."""
        session = tx.session
        params: dict[str, Any] = {**(bounds or {}), "at": utcnow()}
        if self.plugin_parts:
            params["plugin_parts"] = components.plugin_document(self.dialect, await _plugin_parts(tx, ids, self.as_of))
        for stmt in self.scratch:
            await session.execute(stmt, params if stmt is self.scratch[-1] else None)
        if self.dialect.pg:
            rows = (await session.execute(self.writes[0], params)).all()
            changed_count = int(rows[0].changed) if rows else 0
            rows = [r for r in rows if r.customer_id is not None]
        else:
            changed_count = len((await session.execute(self.writes[0], params)).all())
            rows = (await session.execute(self.writes[1], params)).all()
        tx.runtime.state[CHANGED_KEY] = tx.runtime.state.get(CHANGED_KEY, 0) + changed_count
        scores = {r.customer_id: float(r.total) for r in rows}
        if scores:  # what depends on the score (another plugin's grade field) follows in this transaction
            await plugins.call_all((await tx.hooks()).guanxi_customers_scored, tx=tx, totals=scores)
        return scores


async def _returned(tx: Tx, settings: ScoringSettings) -> bool | float:
    """Which totals a recompute's batch needs back: every one when another plugin follows the
    totals (``guanxi_customers_scored``), else those the stage rules can move (at least the lowest
    threshold), else none. Fetching 2,000 totals nobody reads cost ~8 ms a batch."""
    if (await tx.hooks()).guanxi_customers_scored.get_hookimpls():
        return True
    if settings.stage_rules:
        return min(r.min_score for r in settings.stage_rules)
    return False


async def _has_plugin_parts(tx: Tx) -> bool:
    """Whether an enabled plugin of the tenant contributes score components."""
    return bool((await tx.hooks()).guanxi_score_components.get_hookimpls())


async def score_set(
    tx: Tx, scope: Scope, ids: list[uuid.UUID], *, as_of: dt.datetime, cause: str, history_min_change: float = EPSILON
) -> dict[uuid.UUID, float]:
    """Recompute the scores of a set of customers (``scope`` selects them in SQL, ``ids`` lists
    them for other plugins' components). Returns the new totals. A history row is written for a
    customer's first score and for a total that moved by more than ``history_min_change``."""
    plan = ScorePass(
        tx.runtime,
        tx.tenant_id,
        scope,
        as_of=as_of,
        cause=cause,
        history_min_change=history_min_change,
        plugin_parts=await _has_plugin_parts(tx),
    )
    return await plan.run(tx, ids)


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
    """After a merge: drop the tombstone's current score (with its parts), rescore the survivor."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=RULE_ACTOR)) as tx:
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
    pick = select(Customer.id).where(Customer.merged_into_id.is_(None)).order_by(Customer.id).limit(size)
    if runtime.engine.dialect.name == "postgresql":
        pick = pick.with_for_update()  # an interaction's update of one of them waits (see score_customers)
    pick_after = pick.where(Customer.id > bindparam("after", type_=Uuid))
    passes: dict[bool, ScorePass] = {}  # the first range's statements, and every other range's
    while True:
        async with runtime.transaction(ctx) as tx:
            first = last is None
            ids = list((await tx.session.execute(pick if first else pick_after, {} if first else {"after": last})).scalars())
            if not ids:
                break
            if first not in passes:
                passes[first] = ScorePass(
                    runtime,
                    tenant_id,
                    range_scope(first=first),
                    as_of=as_of,
                    cause="recompute",
                    history_min_change=settings.history_min_change,
                    batch=True,
                    plugin_parts=await _has_plugin_parts(tx),
                    returned=await _returned(tx, settings),
                )
            before = runtime.state.get(CHANGED_KEY, 0)
            totals = await passes[first].run(tx, ids, {"last": ids[-1]} if first else {"after": last, "last": ids[-1]})
            report.changed += runtime.state.get(CHANGED_KEY, 0) - before
            report.moved += await apply_stage_rules(tx, totals, clock())
        last = ids[-1]
        RESCORED.labels("recompute").inc(len(ids))
        report.customers += len(ids)
        report.batches += 1
        if on_progress:
            on_progress(report.customers, total)
    return report
