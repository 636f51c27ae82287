"""The scoring plugin's own components, each a list of selects of part rows (the columns of
:data:`PART_COLUMNS`) over a set of customers (a list of ids, or an id range for the batch
recompute). :mod:`guanxi.plugins.scoring.recompute` unions them, sums them per customer and stores
them as the score's parts, in one statement.

Every select aggregates per customer in SQL: no row is fetched into Python. The parts are the
explanation of the score (see :mod:`guanxi.plugins.scoring.explain`).

``INSERT … SELECT`` is not covered by core's automatic tenant filter (it filters ORM selects,
updates and deletes), so each select here names the tenant itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import JSON, Float, Integer, String, Uuid, and_, bindparam, case, cast, column, func, literal, null, select
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from guanxi.core.domain.models import Customer, Identity, Interaction, UTCDateTime
from guanxi.plugins.scoring.settings import PERIOD_SECONDS, ScoringSettings
from guanxi.plugins.scoring.sql import Dialect, epoch_seconds

#: A condition on a customer id column: which customers this computation covers.
Scope = Callable[[Any], ColumnElement[bool]]

PART_COLUMNS = ("tenant_id", "customer_id", "component", "item", "count", "skipped", "value", "measure", "first_at", "last_at", "reasons")


def ids_scope(ids: list[uuid.UUID]) -> Scope:
    return lambda col: col.in_(ids)


def range_scope(*, first: bool) -> Scope:
    """Customers of an id range given at run time: ``after < id <= last`` (bind parameters
    ``after`` and ``last``), or ``id <= last`` for the ``first`` range."""
    last = bindparam("last", type_=Uuid)
    if first:
        return lambda col: col <= last
    after = bindparam("after", type_=Uuid)
    return lambda col: and_(col > after, col <= last)


def _row(
    tenant_id: uuid.UUID,
    customer_id: Any,
    component: str,
    item: Any,
    count: Any,
    skipped: Any,
    value: Any,
    measure: Any = None,
    first_at: Any = None,
    last_at: Any = None,
) -> list[Any]:
    """The select list of one part row, in :data:`PART_COLUMNS` order."""
    return [
        # typed: a tenant id read by asyncpg (an API key's tenant) is asyncpg's own UUID class,
        # which an untyped literal would send as text (PostgreSQL refuses text for a uuid column)
        literal(tenant_id, Uuid).label("tenant_id"),
        customer_id.label("customer_id"),
        literal(component, String).label("component"),
        (item if not isinstance(item, str) else literal(item, String)).label("item"),
        cast(count, Integer).label("count"),
        cast(skipped, Integer).label("skipped"),
        cast(value, Float).label("value"),
        (cast(measure, Float) if measure is not None else cast(null(), Float)).label("measure"),
        (first_at if first_at is not None else cast(null(), UTCDateTime())).label("first_at"),
        (last_at if last_at is not None else cast(null(), UTCDateTime())).label("last_at"),
        literal([], JSON).label("reasons"),
    ]


def plugin_document(d: Dialect, rows: list[dict[str, Any]]) -> str:
    """Other plugins' parts (computed in Python: ``customer_id``, ``component``, ``count``,
    ``value``, ``reasons``) as the JSON document :func:`plugin_rows` reads."""
    return msgspec.json.encode(
        [
            {
                # SQLite keeps a uuid as 32 hex digits, PostgreSQL as a uuid
                "customer_id": str(r["customer_id"]) if d.pg else r["customer_id"].hex,
                "component": r["component"],
                "count": int(r["count"]),
                "value": float(r["value"]),
                "reasons": list(r["reasons"]),
            }
            for r in rows
        ]
    ).decode()


def plugin_rows(d: Dialect, tenant_id: uuid.UUID, document: Any) -> list[Select[Any]]:
    """Other plugins' parts as part rows, read from one JSON document (``document``: a bind
    parameter holding :func:`plugin_document`, however many rows: ``json_to_recordset`` on
    PostgreSQL, ``json_each`` on SQLite)."""
    if d.pg:
        record = (
            func.json_to_recordset(cast(document, JSON))
            .table_valued(
                column("customer_id", Uuid),
                column("component", String),
                column("count", Integer),
                column("value", Float),
                column("reasons", JSON),
            )
            .render_derived(name="plugin_parts", with_types=True)
        )
        fields: dict[str, Any] = {k: record.c[k] for k in ("customer_id", "component", "count", "value", "reasons")}
        source: Any = record
    else:
        each = func.json_each(document).table_valued("value", name="plugin_parts")
        fields = {k: func.json_extract(each.c.value, f"$.{k}") for k in ("customer_id", "component", "count", "value", "reasons")}
        source = each
    return [
        select(
            literal(tenant_id, Uuid).label("tenant_id"),
            cast(fields["customer_id"], Uuid).label("customer_id") if d.pg else fields["customer_id"].label("customer_id"),
            cast(fields["component"], String).label("component"),
            literal("", String).label("item"),
            cast(fields["count"], Integer).label("count"),
            cast(literal(0), Integer).label("skipped"),
            cast(fields["value"], Float).label("value"),
            cast(null(), Float).label("measure"),
            cast(null(), UTCDateTime()).label("first_at"),
            cast(null(), UTCDateTime()).label("last_at"),
            fields["reasons"].label("reasons"),
        ).select_from(source)
    ]


def engagement(d: Dialect, tenant_id: uuid.UUID, scope: Scope, as_of: dt.datetime, settings: ScoringSettings) -> list[Select[Any]]:
    """Points per interaction kind (and channel), at most ``cap`` interactions per period
    bucket, each decayed by its age at ``as_of``. One part per customer and rule."""
    cfg = settings.engagement
    rules = list(enumerate(cfg.rules))
    if not rules:
        return []
    ix = Interaction
    # channel-specific rules win over any-channel rules for the same kind
    ordered = sorted(rules, key=lambda pair: pair[1].channel is None)
    rule_of = case(
        *[((and_(ix.kind == r.kind, ix.channel == r.channel) if r.channel else ix.kind == r.kind), i) for i, r in ordered],
        else_=-1,
    )
    occ = d.epoch(ix.occurred_at)
    matched = (
        select(ix.customer_id, ix.id, ix.occurred_at, rule_of.label("rule"), occ.label("occ"))
        .where(
            ix.tenant_id == tenant_id,
            scope(ix.customer_id),
            ix.kind.in_(sorted({r.kind for _, r in rules})),
            ix.occurred_at <= as_of,
        )
        .offset(0)  # the rule of each interaction worked out once (see purchase())
        .subquery("matched")
    )
    m = matched.c
    by_rule: Callable[[Callable[[Any], Any]], Any] = lambda value_of: case(  # noqa: E731
        *[(m.rule == i, value_of(r)) for i, r in rules], else_=None
    )
    period = by_rule(lambda r: literal(PERIOD_SECONDS[r.period], Float))
    ranked = (
        select(
            m.customer_id,
            m.rule,
            m.occ,
            m.occurred_at,
            func.row_number()
            .over(partition_by=(m.customer_id, m.rule, func.floor(m.occ / period)), order_by=(m.occurred_at, m.id))
            .label("rn"),
        )
        .where(m.rule >= 0)
        .subquery("ranked")
    )
    r_ = ranked.c
    by_ranked_rule: Callable[[Callable[[Any], Any]], Any] = lambda value_of: case(  # noqa: E731
        *[(r_.rule == i, value_of(r)) for i, r in rules], else_=None
    )
    cap = by_ranked_rule(lambda r: literal(r.cap if r.cap is not None else 2_000_000_000, Integer))
    points = by_ranked_rule(lambda r: literal(float(r.points), Float))
    counted = r_.rn <= cap
    age = literal(epoch_seconds(as_of), Float) - r_.occ
    value = func.sum(case((counted, points * d.decay(age, cfg.half_life_days * 86_400.0)), else_=literal(0.0, Float)))
    item = by_ranked_rule(lambda r: literal(r.key, String))
    stmt = select(
        *_row(
            tenant_id,
            r_.customer_id,
            "engagement",
            item,
            func.sum(case((counted, 1), else_=0)),
            func.sum(case((counted, 0), else_=1)),
            value,
            first_at=func.min(r_.occurred_at),
            last_at=func.max(r_.occurred_at),
        )
    ).group_by(r_.customer_id, r_.rule)
    return [stmt]


def purchase(d: Dialect, tenant_id: uuid.UUID, scope: Scope, as_of: dt.datetime, settings: ScoringSettings) -> list[Select[Any]]:
    """Recency (decayed points for the last purchase), frequency (points per purchase up to a
    cap) and monetary value (points per decade of the amount spent, net of refunds) of money
    received: interactions of ``settings.purchase.kinds`` (``purchase`` and ``payment``)."""
    cfg = settings.purchase
    if not (cfg.recency_points or cfg.frequency_points or cfg.monetary_points_per_decade):
        return []
    ix = Interaction
    amount = func.coalesce(*[d.json_number(ix.payload[k]) for k in cfg.amount_keys], literal(0.0, Float))
    # the amount of each purchase, read once: OFFSET 0 keeps both databases from merging this
    # select into the aggregate below, where the amount is used five times and each use parsed
    # the payload again (PostgreSQL's json is text: every ->> parses it)
    rows = (
        select(ix.customer_id, ix.occurred_at, d.epoch(ix.occurred_at).label("occ"), amount.label("amount"))
        .where(ix.tenant_id == tenant_id, scope(ix.customer_id), ix.kind.in_(cfg.kinds), ix.occurred_at <= as_of)
        .offset(0)
        .subquery("purchase_rows")
    )
    r = rows.c
    bought = r.amount >= 0  # a refund (negative) lowers the money spent; it is no purchase
    sub = (
        select(
            r.customer_id,
            func.count(case((bought, 1))).label("n"),
            d.greatest(func.sum(r.amount), literal(0.0, Float)).label("spent"),
            func.max(case((bought, r.occ))).label("last_occ"),
            func.min(case((bought, r.occurred_at))).label("first_at"),
            func.max(case((bought, r.occurred_at))).label("last_at"),
        )
        .group_by(r.customer_id)
        .having(func.count(case((bought, 1))) > 0)
        # a CTE: recency, frequency and monetary value read it three times; both databases
        # materialise a CTE referenced more than once, so the purchases are aggregated once
        # (as a subquery they were aggregated per part: half the time of a batch recompute)
        .cte("purchases")
    )
    s = sub.c
    selects: list[Select[Any]] = []
    if cfg.recency_points:
        age = literal(epoch_seconds(as_of), Float) - s.last_occ
        value = literal(cfg.recency_points, Float) * d.decay(age, cfg.recency_half_life_days * 86_400.0)
        selects.append(select(*_row(tenant_id, s.customer_id, "purchase", "recency", s.n, 0, value, None, s.first_at, s.last_at)))
    if cfg.frequency_points:
        cap = literal(cfg.frequency_cap, Integer)
        value = literal(cfg.frequency_points, Float) * d.least(s.n, cap)
        skipped = d.greatest(s.n - cap, literal(0, Integer))
        selects.append(select(*_row(tenant_id, s.customer_id, "purchase", "frequency", s.n, skipped, value, None, s.first_at, s.last_at)))
    if cfg.monetary_points_per_decade:
        value = literal(cfg.monetary_points_per_decade, Float) * d.log10_1p(s.spent)
        selects.append(select(*_row(tenant_id, s.customer_id, "purchase", "monetary", s.n, 0, value, s.spent, s.first_at, s.last_at)))
    return selects


def social(d: Dialect, tenant_id: uuid.UUID, scope: Scope, settings: ScoringSettings) -> list[Select[Any]]:
    """Per channel: log-scaled followers (capped) and the profile's engagement rate."""
    cfg = settings.social
    idt = Identity
    base = (idt.tenant_id == tenant_id, scope(idt.customer_id))
    selects: list[Select[Any]] = []
    if cfg.points_per_decade:
        followers = func.max(idt.follower_count)
        value = d.least(literal(cfg.points_per_decade, Float) * d.log10_1p(followers), literal(cfg.max_points_per_identity, Float))
        selects.append(
            select(
                *_row(tenant_id, idt.customer_id, "social", literal("followers@", String) + idt.channel, func.count(), 0, value, followers)
            )
            .where(*base, idt.follower_count > 0)
            .group_by(idt.customer_id, idt.channel)
        )
    if cfg.engagement_points:
        raw = idt.profile[cfg.engagement_key].as_float()
        rate = d.least(d.greatest(func.max(raw), literal(0.0, Float)), literal(1.0, Float))
        selects.append(
            select(
                *_row(
                    tenant_id,
                    idt.customer_id,
                    "social",
                    literal("engagement@", String) + idt.channel,
                    func.count(),
                    0,
                    literal(cfg.engagement_points, Float) * rate,
                    func.max(raw),
                )
            )
            .where(*base, raw > 0)
            .group_by(idt.customer_id, idt.channel)
        )
    return selects


def profile(d: Dialect, tenant_id: uuid.UUID, scope: Scope, settings: ScoringSettings) -> list[Select[Any]]:
    """Completeness (points per filled field) and attribute rules."""
    cfg = settings.profile
    c = Customer
    live = (c.tenant_id == tenant_id, scope(c.id), c.merged_into_id.is_(None))
    filled: dict[str, ColumnElement[bool]] = {
        "company": and_(c.company.is_not(None), c.company != ""),
        "source": and_(c.source.is_not(None), c.source != ""),
        "phones": func.json_array_length(c.phones) > 0,
        "emails": func.json_array_length(c.emails) > 0,
    }
    selects: list[Select[Any]] = []
    for name, points in cfg.completeness.items():
        if points:
            selects.append(select(*_row(tenant_id, c.id, "profile", name, 1, 0, literal(points, Float))).where(*live, filled[name]))
    for rule in cfg.attributes:
        text = cast(c.attributes[rule.key].as_string(), String)
        cond = text.is_not(None) if rule.equals is None else text == rule.equals
        item = f"attribute:{rule.key}" if rule.equals is None else f"attribute:{rule.key}={rule.equals}"
        selects.append(select(*_row(tenant_id, c.id, "profile", item[:100], 1, 0, literal(rule.points, Float))).where(*live, cond))
    return selects
