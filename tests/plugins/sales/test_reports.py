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
