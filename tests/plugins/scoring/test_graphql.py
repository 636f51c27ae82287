"""The scoring plugin through GraphQL: Customer.score with explanations and history, filters and
ordering by score on customers, and the salesperson's priority queue."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.tasks import TaskInput, create_task
from guanxi.core.services.users import create_user
from guanxi.graphql.context import GraphQLContext
from guanxi.graphql.ids import to_global_id
from guanxi.graphql.schema import build_schema
from guanxi.testing import GraphQL
from guanxi.testing.sql import count_statements
from tests.plugins.scoring.conftest import NOW, Shop

pytestmark = pytest.mark.plugins("scoring")
DAY = dt.timedelta(days=1)

SCORE = """query($id: ID!) {
  customer(id: $id) { score {
    total updatedAt history { total previous cause }
    components { name value reasons items { item count overCap value firstAt lastAt } } } } }"""


async def test_customer_score_lists_components_with_reasons_that_name_the_events(shop: Shop, graphql: GraphQL) -> None:
    cid = await shop.customer(company="ACME")
    await shop.interact(cid, "message_in", at=NOW - 30 * DAY)
    await shop.interact(cid, "purchase", channel="shop", at=NOW, amount=99)
    score = (await graphql(SCORE, {"id": to_global_id("Customer", cid)}))["data"]["customer"]["score"]
    names = [c["name"] for c in score["components"]]
    assert names == ["engagement", "profile", "purchase"]
    assert score["total"] == pytest.approx(sum(c["value"] for c in score["components"]), abs=1e-3)
    engagement = score["components"][0]
    assert engagement["value"] == 2.5
    assert engagement["reasons"] == ["1 × message_in on any channel × 5 points, decayed with a 30-day half-life: +2.50, on 2026-10-21"]
    assert engagement["items"] == [
        {
            "item": "message_in@*",
            "count": 1,
            "overCap": 0,
            "value": 2.5,
            "firstAt": "2026-10-21T12:00:00+00:00",
            "lastAt": "2026-10-21T12:00:00+00:00",
        }
    ]
    purchase = {r for c in score["components"] if c["name"] == "purchase" for r in c["reasons"]}
    assert "99.00 spent in 1 purchases (log-scaled): +20.00" in purchase
    assert [h["cause"] for h in score["history"]] == ["interaction:purchase@shop", "interaction:message_in@wecom", "created"]
    assert score["updatedAt"].startswith("2026-11-20T12:00:00")


async def test_an_unscored_customer_has_a_null_score(runtime: Runtime, ctx: RequestContext, graphql: GraphQL) -> None:
    from guanxi.core.services.customers import CustomerInput, create_customer

    async with runtime.write_session(ctx.tenant_id) as s:  # no transaction events: no hook ran
        from guanxi.core.runtime import Tx

        customer = await create_customer(Tx(runtime, s, ctx), CustomerInput(display_name="Quiet"))
    data = (await graphql(SCORE, {"id": to_global_id("Customer", customer.id)}))["data"]
    assert data["customer"]["score"] is None


LIST = """query($f: CustomerFilter, $o: CustomerOrder, $after: String) {
  customers(filter: $f, orderBy: $o, first: 2, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { displayName score { total } } } } }"""


async def _scored(shop: Shop, points: dict[str, int]) -> None:
    for name, visits in points.items():
        cid = await shop.customer(name)
        for k in range(visits):
            await shop.interact(cid, "visit", at=NOW - k * dt.timedelta(minutes=1) * 60 * 24)


async def test_customers_filter_by_score_range_and_page_by_score_through_the_core_extension_point(shop: Shop, graphql: GraphQL) -> None:
    await _scored(shop, {"A": 1, "B": 3, "C": 0, "D": 2, "E": 3})
    seen: list[tuple[str, float]] = []
    after = None
    while True:
        page = (await graphql(LIST, {"o": "SCORE_DESC", "after": after}))["data"]["customers"]
        seen += [(e["node"]["displayName"], e["node"]["score"]["total"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    totals = [t for _, t in seen]
    assert totals == sorted(totals, reverse=True) and len(seen) == 5
    assert [n for n, _ in seen][-1] == "C"
    ranged = (await graphql(LIST, {"f": {"scoreGte": 15, "scoreLte": 25}, "o": "SCORE_ASC"}))["data"]["customers"]
    assert ranged["totalCount"] == 1 and ranged["edges"][0]["node"]["displayName"] == "D"


async def test_a_page_of_customers_with_scores_costs_a_fixed_number_of_statements(shop: Shop, graphql: GraphQL, runtime: Runtime) -> None:
    """The page, then the scores with their parts: two statements, whatever the page size (no
    statement per customer)."""
    await _scored(shop, {f"C{n}": n % 3 for n in range(12)})
    query = "{ customers(first: 12, orderBy: SCORE_DESC) { edges { node { score { total components { name reasons } } } } } }"
    first = None
    for _ in range(2):  # the second run goes through the compiled plan of guanxi.graphql.compiled
        with count_statements(runtime.engine) as seen:
            data = (await graphql(query))["data"]["customers"]["edges"]
        assert len(data) == 12 and all(e["node"]["score"] is not None for e in data)
        assert first is None or data == first
        first = data
        # the page, the scores (authenticating the caller is the app's, not counted here)
        selects = [s for s in seen if s.lstrip().upper().startswith("SELECT") and "FROM tenants" not in s and "FROM api_keys" not in s]
        assert len(selects) == 2, selects


async def _as_user(runtime: Runtime, user_id: uuid.UUID, tenant_id: uuid.UUID, query: str) -> dict[str, Any]:
    """Execute as a signed-in salesperson: the request context's actor is that user."""
    schema = build_schema(runtime)
    actor = Actor(kind="user", user_id=user_id, name="sales", roles=("sales",))
    context = GraphQLContext(runtime=runtime, request_context=RequestContext(tenant_id=tenant_id, actor=actor))
    result = await schema.execute(query, context_value=context)
    await context.close()
    assert not result.errors, result.errors
    assert result.data is not None
    return result.data


async def test_priority_queue_ranks_a_salespersons_customers_and_says_why(shop: Shop, runtime: Runtime, ctx: RequestContext) -> None:
    async with runtime.transaction(ctx) as tx:
        me = (await create_user(tx, email="me@x.cn", name="Me")).id
        other = (await create_user(tx, email="o@x.cn", name="Other")).id
    hot = await shop.customer("Hot", owner_id=me)
    due = await shop.customer("Due", owner_id=me)
    cold = await shop.customer("Cold", owner_id=me)
    await shop.customer("Not mine", owner_id=other)
    await shop.interact(hot, "visit", at=NOW - dt.timedelta(hours=1))
    async with runtime.transaction(ctx) as tx:
        await create_task(tx, TaskInput(customer_id=due, title="Call back", due_at=NOW - DAY))
        await create_task(tx, TaskInput(customer_id=cold, title="Later", due_at=NOW + 3 * DAY))
    query = "{ myPriorityQueue(first: 10) { rank score reasons customer { displayName } } }"
    with count_statements(runtime.engine) as seen:
        queue = (await _as_user(runtime, me, ctx.tenant_id, query))["myPriorityQueue"]
    assert [q["customer"]["displayName"] for q in queue] == ["Hot", "Due", "Cold"], queue
    assert queue[0]["reasons"][:2] == ["score 10.0", "last inbound touch 1 h ago: +29.6"]
    assert "1 task due or overdue: +20.0" in queue[1]["reasons"]
    assert queue[2]["reasons"][1] == "no inbound touch yet"
    assert len(seen) == 1  # one ranked statement for the whole queue


async def test_priority_queue_needs_a_signed_in_user(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """An API key (no user) has no queue of its own."""
    from guanxi.graphql.extensions import shape_error

    actor = Actor(kind="apikey", user_id=None, name="integration", roles=("admin",))
    context = GraphQLContext(runtime=runtime, request_context=RequestContext(tenant_id=tenant_id, actor=actor))
    result = await build_schema(runtime).execute("{ myPriorityQueue { rank } }", context_value=context)
    await context.close()
    assert result.errors and shape_error(result.errors[0]).extensions["code"] == "NOT_A_USER"


async def test_schema_without_the_plugin_has_no_score_filter_or_ordering(runtime: Runtime) -> None:
    from guanxi.core.runtime import Runtime as Rt

    core_only = Rt.from_config(environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite://", "GUANXI_PLUGINS": ""})
    sdl = build_schema(core_only).as_str()
    assert "scoreGte" not in sdl and "SCORE_DESC" not in sdl and "score:" not in sdl
    with_plugin = build_schema(runtime).as_str()
    assert "scoreGte: Float" in with_plugin and "SCORE_DESC" in with_plugin and "score: Score" in with_plugin
    await core_only.engine.dispose()


def test_every_graphql_example_of_the_scoring_docs_validates_against_the_schema(runtime: Runtime) -> None:
    """docs/plugins/scoring.md shows real queries: each ```graphql block parses and validates."""
    import re
    from pathlib import Path

    from graphql import parse, validate

    doc = (Path(__file__).resolve().parents[3] / "docs" / "plugins" / "scoring.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", doc, flags=re.S)
    assert len(blocks) == 3
    schema = build_schema(runtime)._schema
    for block in blocks:
        assert validate(schema, parse(block)) == [], block
