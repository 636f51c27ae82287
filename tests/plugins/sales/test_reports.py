"""The sales reports on the demo data with deals and payments: each figure agrees with a
hand-written SQL query over the same tables (a different formulation: correlated subqueries
instead of window functions and grouped joins), a salesperson's report covers only their own
customers, a manager's their team's."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Uuid, bindparam, select, text, update

from guanxi.core.domain.models import User, UTCDateTime
from guanxi.core.runtime import Runtime
from guanxi.demo.generator import load_demo
from guanxi.graphql.ids import from_global_id
from guanxi.testing.plugin import api_key
from tests.plugins.sales.conftest import Caller

pytestmark = pytest.mark.plugins("sales")

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
START, END = NOW - dt.timedelta(days=120), NOW - dt.timedelta(days=10)
FUNNEL = """query($from: DateTime!, $to: DateTime!, $by: ReportBreakdown) { salesFunnel(from: $from, to: $to, by: $by) {
  key label won lost winRate stages { pipeline key category entered conversion avgDaysInStage } } }"""
PERFORMANCE = """query($from: DateTime!, $to: DateTime!, $by: ReportBreakdown) { salesPerformance(from: $from, to: $to, by: $by) {
  key label newLeads followUps avgResponseMinutes responses dealsWon wonAmount revenue due collected collectionRate } }"""
RANGE = {"from": START.isoformat(), "to": END.isoformat()}


class Demo:
    tenant_id: uuid.UUID
    users: dict[str, uuid.UUID]
    call: dict[str, Caller]


@pytest.fixture
async def demo(runtime: Runtime, http: httpx.AsyncClient) -> Demo:
    summary = await load_demo(runtime, slug=f"demo-{uuid.uuid4().hex[:8]}", customers=150, seed=3, now=NOW)
    assert summary.deals > 20 and summary.contracts > 5 and summary.payments > 5, summary
    d = Demo()
    d.tenant_id = summary.tenant_id
    async with runtime.write_session(d.tenant_id) as s:
        d.users = {email.split("@")[0]: uid for uid, email in (await s.execute(select(User.id, User.email))).all()}
        # the demo's manager leads 华东组 (wang.lei and liu.yang)
        await s.execute(update(User).where(User.id == d.users["david.chen"]).values(team="华东组"))
    keys = {
        "admin": await api_key(runtime, d.tenant_id, "admin"),
        "wang": await api_key(runtime, d.tenant_id, "sales", user_id=d.users["wang.lei"]),
        "david": await api_key(runtime, d.tenant_id, "manager", user_id=d.users["david.chen"]),
    }

    def caller(key: str) -> Caller:
        async def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            response = await http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"}
            )
            body: dict[str, Any] = response.json()
            assert "errors" not in body, body
            return body

        return call

    d.call = {name: caller(key) for name, key in keys.items()}
    return d


async def hand(runtime: Runtime, sql: str, **params: Any) -> list[Any]:
    """A hand-written query on a plain connection (past the ORM and its tenant scoping: the
    tenant is a parameter here), the range bound as the ORM stores datetimes."""
    binds = [bindparam("a", type_=UTCDateTime()), bindparam("b", type_=UTCDateTime())]
    binds += [bindparam(name, type_=Uuid()) for name in params]
    stmt = text(sql).bindparams(*binds)
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(stmt, {"a": START, "b": END, **params})).all())


def seconds(runtime: Runtime, later: str, earlier: str) -> str:
    if runtime.engine.dialect.name == "postgresql":
        return f"extract(epoch from ({later} - {earlier}))"
    return f"(julianday({later}) - julianday({earlier})) * 86400.0"


async def test_the_funnel_by_owner_agrees_with_hand_written_sql(runtime: Runtime, demo: Demo) -> None:
    """Entered per owner and stage, won/lost, and the average days in stage (the next move found
    by a correlated subquery, not the report's window function)."""
    groups = (await demo.call["admin"](FUNNEL, {**RANGE, "by": "OWNER"}))["data"]["salesFunnel"]
    got = {
        (str(from_global_id(g["key"], "User")) if g["key"] else None, s["key"]): (s["entered"], s["avgDaysInStage"])
        for g in groups
        for s in g["stages"]
    }
    stay = seconds(runtime, "(SELECT min(n.at) FROM sales_deal_moves n WHERE n.tenant_id = m.tenant_id AND n.deal_id = m.deal_id AND "
                   "(n.at > m.at OR (n.at = m.at AND n.id > m.id)))", "m.at")  # fmt: skip
    rows = await hand(
        runtime,
        f"""SELECT d.owner_id, s.key, count(DISTINCT d.id), avg({stay})
            FROM sales_deals d JOIN sales_deal_moves m ON m.tenant_id = d.tenant_id AND m.deal_id = d.id
            JOIN sales_deal_stages s ON s.tenant_id = d.tenant_id AND s.id = m.to_stage_id
            WHERE d.tenant_id = :t AND d.created_at >= :a AND d.created_at < :b GROUP BY d.owner_id, s.key""",
        t=demo.tenant_id,
    )
    want = {(str(uuid.UUID(str(o))) if o else None, k): (n, None if avg is None else round(float(avg) / 86400, 2)) for o, k, n, avg in rows}
    assert got == want and len(want) > 5
    for g in groups:
        closed = g["won"] + g["lost"]
        assert g["winRate"] == (round(g["won"] / closed, 4) if closed else None)
        opens = [s for s in g["stages"] if s["category"] == "open"]
        for s, nxt in itertools.pairwise(opens):
            assert s["conversion"] == (round(nxt["entered"] / s["entered"], 4) if s["entered"] else None)


async def test_salesperson_performance_agrees_with_hand_written_sql(runtime: Runtime, demo: Demo) -> None:
    rows = (await demo.call["admin"](PERFORMANCE, RANGE))["data"]["salesPerformance"]
    got = {str(from_global_id(r["key"], "User")): r for r in rows}
    want_leads = dict(
        await hand(
            runtime,
            "SELECT owner_id, count(*) FROM customers WHERE tenant_id = :t AND created_at >= :a AND created_at < :b "
            "AND merged_into_id IS NULL AND owner_id IS NOT NULL GROUP BY owner_id",
            t=demo.tenant_id,
        )
    )
    want_won = {
        o: (n, float(a))
        for o, n, a in await hand(
            runtime,
            "SELECT owner_id, count(*), sum(amount) FROM sales_deals WHERE tenant_id = :t AND status = 'won' "
            "AND closed_at >= :a AND closed_at < :b GROUP BY owner_id",
            t=demo.tenant_id,
        )
    }
    want_revenue = {
        o: float(a)
        for o, a in await hand(
            runtime,
            "SELECT c.owner_id, sum(p.amount) FROM sales_payments p "
            "JOIN sales_contracts c ON c.tenant_id = p.tenant_id AND c.id = p.contract_id "
            "WHERE p.tenant_id = :t AND p.received_at >= :a AND p.received_at < :b GROUP BY c.owner_id",
            t=demo.tenant_id,
        )
    }
    want_follow = dict(
        await hand(
            runtime,
            "SELECT c.owner_id, count(*) FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id "
            "WHERE i.tenant_id = :t AND i.direction IN ('out', 'internal') AND i.occurred_at >= :a AND i.occurred_at < :b "
            "GROUP BY c.owner_id",
            t=demo.tenant_id,
        )
    )
    norm = lambda d: {str(uuid.UUID(str(k))): v for k, v in d.items() if k is not None}  # noqa: E731
    want_leads, want_won, want_revenue, want_follow = norm(want_leads), norm(want_won), norm(want_revenue), norm(want_follow)
    assert sum(want_revenue.values()) > 0 and sum(n for n, _ in want_won.values()) > 0
    for uid, r in got.items():
        assert r["newLeads"] == want_leads.get(uid, 0), r
        assert (r["dealsWon"], r["wonAmount"]) == want_won.get(uid, (0, 0.0)), r
        assert r["revenue"] == pytest.approx(want_revenue.get(uid, 0.0)), r
        assert r["followUps"] == want_follow.get(uid, 0), r
    sellers = {demo.users[n] for n in ("wang.lei", "liu.yang", "emma.li", "tom.zhang", "david.chen")}
    assert {uuid.UUID(u) for u in got} == sellers


async def test_a_salesperson_sees_their_own_figures_and_a_manager_the_teams(runtime: Runtime, demo: Demo) -> None:
    wang, david = demo.users["wang.lei"], demo.users["david.chen"]
    mine = (await demo.call["wang"](PERFORMANCE, RANGE))["data"]["salesPerformance"]
    assert [from_global_id(r["key"], "User") for r in mine] == [wang]
    team = (await demo.call["david"](PERFORMANCE, RANGE))["data"]["salesPerformance"]
    assert {from_global_id(r["key"], "User") for r in team} == {wang, demo.users["liu.yang"], david}
    everyone = {r["key"]: r for r in (await demo.call["admin"](PERFORMANCE, RANGE))["data"]["salesPerformance"]}
    assert mine[0] == everyone[mine[0]["key"]]
    funnel = (await demo.call["wang"](FUNNEL, RANGE))["data"]["salesFunnel"]
    rows = await hand(
        runtime,
        """SELECT s.key, count(DISTINCT d.id) FROM sales_deals d
           JOIN customers c ON c.tenant_id = d.tenant_id AND c.id = d.customer_id
           JOIN sales_deal_moves m ON m.tenant_id = d.tenant_id AND m.deal_id = d.id
           JOIN sales_deal_stages s ON s.tenant_id = d.tenant_id AND s.id = m.to_stage_id
           WHERE d.tenant_id = :t AND c.owner_id = :u AND d.created_at >= :a AND d.created_at < :b GROUP BY s.key""",
        t=demo.tenant_id,
        u=wang,
    )
    assert {s["key"]: s["entered"] for g in funnel for s in g["stages"]} == dict(rows) and rows


def purchase_condition(runtime: Runtime, alias: str) -> str:
    """A purchase or payment whose amount is not negative (a refund is no purchase)."""
    if runtime.engine.dialect.name == "postgresql":
        amount = f"CASE WHEN json_typeof({alias}.payload -> 'amount') = 'number' THEN ({alias}.payload ->> 'amount')::float END"
    else:
        amount = f"json_extract({alias}.payload, '$.amount')"
    return f"{alias}.kind IN ('purchase', 'payment') AND coalesce({amount}, 0) >= 0"


def month(runtime: Runtime, col: str) -> str:
    if runtime.engine.dialect.name == "postgresql":
        return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM')"
    return f"strftime('%Y-%m', {col})"


async def test_repeat_purchase_by_source_agrees_with_hand_written_sql(runtime: Runtime, demo: Demo) -> None:
    q = """query($from: DateTime!, $to: DateTime!) { repeatPurchase(from: $from, to: $to, by: SOURCE) {
      key buyers repeatBuyers repeatRate purchases purchasesPerBuyer avgDaysBetweenPurchases } }"""
    rows = (await demo.call["admin"](q, RANGE))["data"]["repeatPurchase"]
    gap = seconds(runtime, "x.l", "x.f")
    want = await hand(
        runtime,
        f"""SELECT c.source, count(*), sum(CASE WHEN x.n >= 2 THEN 1 ELSE 0 END), sum(x.n),
                   avg(CASE WHEN x.n >= 2 THEN {gap} / (x.n - 1) END)
            FROM (SELECT i.customer_id, count(*) AS n, min(i.occurred_at) AS f, max(i.occurred_at) AS l FROM interactions i
                  WHERE i.tenant_id = :t AND {purchase_condition(runtime, "i")} AND i.occurred_at >= :a AND i.occurred_at < :b
                  GROUP BY i.customer_id) x
            JOIN customers c ON c.tenant_id = :t AND c.id = x.customer_id GROUP BY c.source""",
        t=demo.tenant_id,
    )
    got = {r["key"]: (r["buyers"], r["repeatBuyers"], r["purchases"], r["avgDaysBetweenPurchases"]) for r in rows}
    assert got == {s: (b, int(rb), int(n), None if g is None else round(float(g) / 86400, 2)) for s, b, rb, n, g in want}
    assert sum(r["repeatBuyers"] for r in rows) > 0
    for r in rows:
        assert r["repeatRate"] == round(r["repeatBuyers"] / r["buyers"], 4)


async def test_cohort_retention_agrees_with_hand_written_sql(runtime: Runtime, demo: Demo) -> None:
    q = """query($from: DateTime!, $to: DateTime!) { cohortRetention(from: $from, to: $to) {
      key cohorts { month customers retained { monthsAfter customers rate } } } }"""
    (group,) = (await demo.call["admin"](q, RANGE))["data"]["cohortRetention"]
    got = {}
    for cohort in group["cohorts"]:
        y, m = map(int, cohort["month"].split("-"))
        got[(cohort["month"], cohort["month"])] = cohort["customers"]
        for r in cohort["retained"]:
            index = y * 12 + m - 1 + r["monthsAfter"]
            got[(cohort["month"], f"{index // 12:04d}-{index % 12 + 1:02d}")] = r["customers"]
            assert r["rate"] == round(r["customers"] / cohort["customers"], 4)
    rows = await hand(
        runtime,
        f"""SELECT {month(runtime, "f.first_at")}, {month(runtime, "i.occurred_at")}, count(DISTINCT i.customer_id)
            FROM (SELECT p.customer_id, min(p.occurred_at) AS first_at FROM interactions p
                  WHERE p.tenant_id = :t AND {purchase_condition(runtime, "p")} GROUP BY p.customer_id) f
            JOIN interactions i ON i.tenant_id = :t AND i.customer_id = f.customer_id AND {purchase_condition(runtime, "i")}
            WHERE f.first_at >= :a AND f.first_at < :b GROUP BY 1, 2""",
        t=demo.tenant_id,
    )
    assert got == {(c, m): n for c, m, n in rows} and len(group["cohorts"]) >= 3
    assert any(r["customers"] for c in group["cohorts"] for r in c["retained"])


@pytest.mark.parametrize("touch", ["FIRST", "LAST"])
async def test_won_revenue_attribution_by_first_and_last_touch_agrees_with_hand_written_sql(
    runtime: Runtime, demo: Demo, touch: str
) -> None:
    q = """query($from: DateTime!, $to: DateTime!, $touch: AttributionTouch!) { wonRevenueAttribution(from: $from, to: $to, touch: $touch) {
      currency total rows { key deals amount share } } }"""
    got = (await demo.call["admin"](q, {**RANGE, "touch": touch}))["data"]["wonRevenueAttribution"]
    touched = (
        "SELECT i.customer_id, i.channel, row_number() OVER (PARTITION BY i.customer_id ORDER BY i.occurred_at, i.id) AS r "
        "FROM interactions i WHERE i.tenant_id = :t"
        if touch == "FIRST"
        else "SELECT d2.id AS deal_id, i.channel, row_number() OVER (PARTITION BY d2.id ORDER BY i.occurred_at DESC, i.id DESC) AS r "
        "FROM sales_deals d2 JOIN interactions i ON i.tenant_id = d2.tenant_id AND i.customer_id = d2.customer_id "
        "AND i.direction = 'in' AND i.occurred_at <= d2.closed_at WHERE d2.tenant_id = :t AND d2.status = 'won'"
    )
    on = "x.customer_id = d.customer_id" if touch == "FIRST" else "x.deal_id = d.id"
    rows = await hand(
        runtime,
        f"""SELECT x.channel, count(*), sum(d.amount) FROM sales_deals d LEFT JOIN ({touched}) x ON {on} AND x.r = 1
            WHERE d.tenant_id = :t AND d.status = 'won' AND d.currency = 'CNY' AND d.closed_at >= :a AND d.closed_at < :b
            GROUP BY x.channel""",
        t=demo.tenant_id,
    )
    assert {r["key"]: (r["deals"], r["amount"]) for r in got["rows"]} == {c: (n, round(float(a), 2)) for c, n, a in rows}
    assert got["currency"] == "CNY" and got["total"] == pytest.approx(sum(float(a) for _, _, a in rows)) and len(rows) >= 2
    by_source = await demo.call["admin"](q.replace("touch: $touch", "touch: $touch, by: SOURCE"), {**RANGE, "touch": touch})
    sources = {r["key"] for r in by_source["data"]["wonRevenueAttribution"]["rows"]}
    assert "referral" in sources and by_source["data"]["wonRevenueAttribution"]["total"] == got["total"]


def customer_key(by: str) -> str:
    """The hand-written group of a customer ``c``: its source, the channel of its first
    interaction, or its lifecycle pipeline's key."""
    return {
        "SOURCE": "c.source",
        "CHANNEL": "(SELECT i1.channel FROM interactions i1 WHERE i1.tenant_id = c.tenant_id AND i1.customer_id = c.id "
        "ORDER BY i1.occurred_at, i1.id LIMIT 1)",
        "PIPELINE": "(SELECT p.key FROM stages s JOIN pipelines p ON p.tenant_id = s.tenant_id AND p.id = s.pipeline_id "
        "WHERE s.tenant_id = c.tenant_id AND s.id = c.stage_id)",
    }[by]


def hand_performance_by_customer(runtime: Runtime, by: str, owners: str) -> str:
    """Performance figures per group of customers, by hand: a grouped subquery per figure over
    the customers ``owners`` (an SQL condition on ``c.owner_id``) may see, the response time by a
    correlated lookup of the next outbound message."""
    k = customer_key(by)
    gap = seconds(runtime, "r.answered", "r.at")
    visible = f"c.tenant_id = :t AND {owners}"
    return f"""SELECT g.k, l.n, f.n, rs.avg_s, rs.n, w.n, w.amount, rv.amount, co.due, co.collected
      FROM (SELECT DISTINCT {k} AS k FROM customers c WHERE {visible}) g
      LEFT JOIN (SELECT {k} AS k, count(*) AS n FROM customers c WHERE {visible} AND c.created_at >= :a AND c.created_at < :b
                 AND c.merged_into_id IS NULL GROUP BY 1) l ON l.k = g.k OR (l.k IS NULL AND g.k IS NULL)
      LEFT JOIN (SELECT {k} AS k, count(*) AS n FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
                 WHERE {visible} AND i.direction IN ('out', 'internal') AND i.occurred_at >= :a AND i.occurred_at < :b GROUP BY 1) f
                 ON f.k = g.k OR (f.k IS NULL AND g.k IS NULL)
      LEFT JOIN (SELECT r.k, avg({gap}) AS avg_s, count(r.answered) AS n FROM (
                   SELECT {k} AS k, i.occurred_at AS at, (SELECT min(o.occurred_at) FROM interactions o WHERE o.tenant_id = i.tenant_id
                     AND o.customer_id = i.customer_id AND o.kind = 'message_out' AND o.occurred_at >= i.occurred_at) AS answered
                   FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
                   WHERE {visible} AND i.kind = 'message_in' AND i.occurred_at >= :a AND i.occurred_at < :b) r GROUP BY r.k) rs
                 ON rs.k = g.k OR (rs.k IS NULL AND g.k IS NULL)
      LEFT JOIN (SELECT {k} AS k, count(*) AS n, sum(d.amount) AS amount FROM sales_deals d
                 JOIN customers c ON c.tenant_id = d.tenant_id AND c.id = d.customer_id
                 WHERE {visible} AND d.status = 'won' AND d.closed_at >= :a AND d.closed_at < :b GROUP BY 1) w
                 ON w.k = g.k OR (w.k IS NULL AND g.k IS NULL)
      LEFT JOIN (SELECT {k} AS k, sum(p.amount) AS amount FROM sales_payments p JOIN customers c ON c.tenant_id = p.tenant_id
                 AND c.id = p.customer_id WHERE {visible} AND p.received_at >= :a AND p.received_at < :b GROUP BY 1) rv
                 ON rv.k = g.k OR (rv.k IS NULL AND g.k IS NULL)
      LEFT JOIN (SELECT {k} AS k, sum(x.amount) AS due, sum(CASE WHEN x.paid > x.amount THEN x.amount ELSE x.paid END) AS collected
                 FROM sales_instalments x JOIN customers c ON c.tenant_id = x.tenant_id AND c.id = x.customer_id
                 WHERE {visible} AND x.due_on >= :da AND x.due_on < :db GROUP BY 1) co ON co.k = g.k OR (co.k IS NULL AND g.k IS NULL)"""


@pytest.mark.parametrize("by", ["SOURCE", "CHANNEL", "PIPELINE"])
@pytest.mark.parametrize("who", ["admin", "wang", "david"])
async def test_performance_by_source_channel_and_pipeline_agrees_with_hand_written_sql_within_role_limits(
    runtime: Runtime, demo: Demo, by: str, who: str
) -> None:
    """salesPerformance by a customer-level breakdown: every figure per group equals a hand-written
    query over the customers the caller may see (all for an admin, wang.lei's own for him, the
    華東 team's for its manager)."""
    rows = (await demo.call[who](PERFORMANCE, {**RANGE, "by": by}))["data"]["salesPerformance"]
    got = {
        r["key"]: (r["newLeads"], r["followUps"], r["avgResponseMinutes"], r["responses"], r["dealsWon"], r["wonAmount"], r["revenue"],
                   r["due"], r["collected"])
        for r in rows
    }  # fmt: skip
    team = [demo.users[n] for n in ("wang.lei", "liu.yang", "david.chen")]
    owners = {"admin": "1 = 1", "wang": "c.owner_id = :w", "david": "c.owner_id IN (:w, :l, :d)"}[who]
    ids = {"admin": {}, "wang": {"w": team[0]}, "david": {"w": team[0], "l": team[1], "d": team[2]}}[who]
    sql = hand_performance_by_customer(runtime, by, owners)
    binds = [bindparam("a", type_=UTCDateTime()), bindparam("b", type_=UTCDateTime())]
    binds += [bindparam(name, type_=Uuid()) for name in ("t", *ids)]
    async with runtime.engine.connect() as conn:
        params = {"a": START, "b": END, "t": demo.tenant_id, "da": START.date(), "db": END.date(), **ids}
        hand_rows = (await conn.execute(text(sql).bindparams(*binds), params)).all()
    want = {}
    for k, leads, follow, avg_s, answered, won, won_amount, revenue, due, collected in hand_rows:
        figures = (
            int(leads or 0), int(follow or 0), None if avg_s is None else round(float(avg_s) / 60, 2), int(answered or 0),
            int(won or 0), round(float(won_amount or 0), 2), round(float(revenue or 0), 2), round(float(due or 0), 2),
            round(float(collected or 0), 2),
        )  # fmt: skip
        if any(figures):
            want[None if k is None else str(k)] = figures
    assert got == want and len(want) >= (1 if by == "PIPELINE" else 2)  # the demo has one lifecycle pipeline
    assert sum(f[4] for f in want.values()) > 0 and sum(f[6] for f in want.values()) > 0
    if who == "wang":  # the groups of his customers add up to his own row
        (mine,) = (await demo.call["wang"](PERFORMANCE, RANGE))["data"]["salesPerformance"]
        assert sum(f[0] for f in got.values()) == mine["newLeads"] and sum(f[4] for f in got.values()) == mine["dealsWon"]
