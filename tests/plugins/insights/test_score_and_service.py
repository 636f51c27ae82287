"""Issue 23 item 5: scoring counts sentiment, its trend and rule tags through the insights
plugin's score components (a worsening mood lowers a lead's score for sales), and the service
team's queue ranks the same signals the other way round (unhappy customers first)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.core.services.tags import change_tags
from guanxi.graphql.ids import to_global_id
from guanxi.testing import GraphQL
from guanxi.testing.plugin import api_key
from guanxi.testing.sql import count_statements
from tests.access.conftest import make_user

pytestmark = pytest.mark.plugins("insights", "scoring")

DOC = (Path(__file__).resolve().parents[3] / "docs" / "plugins" / "insights.md").read_text(encoding="utf-8")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


async def say(runtime: Runtime, tenant_id: uuid.UUID, who: str, text: str, days_ago: float) -> None:
    """An inbound text of ``who`` through the inbox, ``days_ago`` days ago."""
    event = InboundEvent(
        channel="wecom",
        provider_event_id=f"evt-{uuid.uuid4().hex}",
        occurred_at=NOW - dt.timedelta(days=days_ago),
        identity=ProfileInput(external_id=who, nickname=f"客户 {who}", union_id=f"u-{who}"),
        kind="message_in",
        direction="in",
        text=text,
    )
    await inbox.ingest(runtime, tenant_id, event)
    await inbox.run_once(runtime, tenant_id=tenant_id)


async def parts(runtime: Runtime, tenant_id: uuid.UUID, component: str) -> dict[str, Any]:
    """The customers' parts of one component, by display name (each with its ``customer_id``)."""
    from guanxi.core.domain.models import Customer
    from guanxi.plugins.scoring.models import ScoringScore
    from guanxi.plugins.scoring.parts import decode

    async with runtime.session(tenant_id) as s:
        rows = (
            await s.execute(
                select(Customer.display_name, Customer.id, ScoringScore.parts).join(Customer, Customer.id == ScoringScore.customer_id)
            )
        ).all()
    return {
        name: SimpleNamespace(customer_id=cid, **msgspec.structs.asdict(part))
        for name, cid, stored in rows
        for part in decode(stored)
        if part.component == component
    }


async def test_a_customer_turning_unhappy_loses_points_through_the_trend_component(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Happy texts three weeks ago, angry ones this week: the trend component is negative, with
    both means in its reason; a customer steady in mood gets ~0, one without texts in both
    windows none."""
    for text in ("非常满意，谢谢", "很好用，推荐"):
        await say(runtime, tenant_id, "turning", text, days_ago=20)
        await say(runtime, tenant_id, "steady", text, days_ago=20)
    for text in ("太差了，烂透了", "垃圾，再也不买了"):
        await say(runtime, tenant_id, "turning", text, days_ago=2)
    for text in ("非常满意，谢谢", "很好用，推荐"):
        await say(runtime, tenant_id, "steady", text, days_ago=2)
    await say(runtime, tenant_id, "new", "太差了", days_ago=1)
    found = await parts(runtime, tenant_id, "insights.trend")
    turning, steady = found["客户 turning"], found["客户 steady"]
    assert turning.value < -10  # from about +0.8 to about -0.8, times 10 points
    assert "(2 texts) ->" in turning.reasons[0] and "over 2 x 14 days" in turning.reasons[0]
    assert abs(steady.value) < 0.5
    assert "客户 new" not in found


async def test_rule_tags_carry_their_points_into_the_score_until_the_tag_goes(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """A tag rule's scorePoints make the component insights.tags (reason: the tag and the rule);
    a tag removed by hand no longer counts (scoring rescores on the tag change)."""
    saved = await graphql(
        'mutation { saveInsightsTagRule(input: {key: "price", tag: "画像/价格敏感", kind: KEYWORD, keywords: ["价格"], scorePoints: -7.5})'
        " { rule { key scorePoints } errors { field code } } }"
    )
    assert saved["data"]["saveInsightsTagRule"] == {"rule": {"key": "price", "scorePoints": -7.5}, "errors": []}
    await say(runtime, tenant_id, "wm-1", "价格能便宜点吗", days_ago=0.1)
    [part] = (await parts(runtime, tenant_id, "insights.tags")).values()
    assert part.value == -7.5 and part.reasons == ["tag 画像/价格敏感 (rule price) -7.5"]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await change_tags(tx, part.customer_id, remove=["画像/价格敏感"])
    assert await parts(runtime, tenant_id, "insights.tags") == {}


@pytest.mark.parametrize("points", ["1001", "-2000"])
async def test_score_points_out_of_range_are_refused_naming_the_field(graphql: GraphQL, points: str) -> None:
    body = await graphql(
        f'mutation {{ saveInsightsTagRule(input: {{key: "p", tag: "x", kind: KEYWORD, keywords: ["价格"], scorePoints: {points}}})'
        " { rule { key } errors { field code } } }"
    )
    assert body["data"]["saveInsightsTagRule"] == {"rule": None, "errors": [{"field": "scorePoints", "code": "VALIDATION"}]}


QUEUE = "{ serviceQueue(first: 10) { customer { displayName } priority alerts average trend lastTextAt reasons } }"


async def test_the_service_queue_puts_unhappy_customers_first_with_reasons(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """Alerts, a negative mean and a worsening trend raise a customer's place; a happy customer
    has none. The ranking is one statement whatever the number of customers."""
    await say(runtime, tenant_id, "angry", "很满意", days_ago=20)
    await say(runtime, tenant_id, "angry", "我要投诉，太差了", days_ago=2)
    await say(runtime, tenant_id, "grumpy", "不太好用", days_ago=3)
    await say(runtime, tenant_id, "happy", "非常满意，谢谢", days_ago=1)
    with count_statements(runtime.engine) as seen:
        items = (await graphql(QUEUE))["data"]["serviceQueue"]
    queries = [s for s in seen if s.lstrip().upper().startswith("SELECT") and "FROM tenants" not in s and "FROM api_keys" not in s]
    assert len(queries) == 1
    names = [i["customer"]["displayName"] for i in items]
    assert names == ["客户 angry", "客户 grumpy"]
    angry = items[0]
    assert angry["alerts"] == 1 and angry["trend"] < 0 and angry["priority"] > items[1]["priority"] > 0
    assert angry["reasons"][0] == "1 alert in 30 days: +20"
    assert any(r.startswith("sentiment trend -") for r in angry["reasons"])


@pytest.mark.parametrize(("role", "sees"), [("service", ["客户 angry"]), ("manager", []), ("sales", None), ("marketing", None)])
async def test_the_service_queue_is_for_service_managers_and_admins(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, role: str, sees: list[str] | None
) -> None:
    """Service users see every customer's place; a manager only their team's customers (the
    unowned complainer is no one's); sales and marketing may not ask."""
    await say(runtime, tenant_id, "angry", "我要投诉", days_ago=1)
    user = await make_user(runtime, tenant_id, f"{role}@example.com", role)
    key = await api_key(runtime, tenant_id, role, user_id=user)
    body = (await anonymous_client.post("/graphql", json={"query": QUEUE}, headers={"Authorization": f"Bearer {key}"})).json()
    if sees is not None:
        assert [i["customer"]["displayName"] for i in body["data"]["serviceQueue"]] == sees
    else:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_another_tenant_sees_nothing_of_a_tenants_service_queue(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    from guanxi.core.services.pipelines import create_tenant

    await say(runtime, tenant_id, "angry", "我要投诉", days_ago=1)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    key = await api_key(runtime, beta, "admin")
    body = (await anonymous_client.post("/graphql", json={"query": QUEUE}, headers={"Authorization": f"Bearer {key}"})).json()
    assert body["data"]["serviceQueue"] == []


async def test_an_api_recorded_complaint_lowers_sales_score_and_raises_service_rank(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """The two sides of one signal: the same unhappy text lowers the lead score (sentiment
    component) and puts the customer at the head of the service queue."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        customer = await create_customer(tx, CustomerInput(display_name="Li Lei"))
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await record_interaction(tx, InteractionInput(customer_id=customer.id, channel="email", kind="message_in", text="太差了，我要退款"))
    body = await graphql(
        "query($id: ID!) { customer(id: $id) { score { total components { name value } } } }",
        {"id": to_global_id("Customer", customer.id)},
    )
    components = {c["name"]: c["value"] for c in body["data"]["customer"]["score"]["components"]}
    assert components["insights.sentiment"] < 0
    [item] = (await graphql(QUEUE))["data"]["serviceQueue"]
    assert item["customer"]["displayName"] == "Li Lei" and item["alerts"] == 1


async def test_the_documented_service_queue_query_runs(runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL) -> None:
    """docs/plugins/insights.md shows the ServiceQueue operation; it runs as shown."""
    import re

    [op] = re.findall(r"^(query ServiceQueue \{.*?^\})$", DOC, re.MULTILINE | re.DOTALL)
    await say(runtime, tenant_id, "angry", "我要投诉", days_ago=1)
    [item] = (await graphql(op))["data"]["serviceQueue"]
    assert item["customer"]["displayName"] == "客户 angry" and item["reasons"] == ["1 alert in 30 days: +20", item["reasons"][1]]
