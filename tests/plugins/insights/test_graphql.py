"""Customer.insights through GraphQL: sentiment trend, active channels and hours, last touches
with their sentiment; a page of customers costs a constant number of statements."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from guanxi.core.runtime import Runtime
from guanxi.testing import GraphQL
from guanxi.testing.sql import count_statements
from tests.plugins.insights.conftest import Inbox

pytestmark = pytest.mark.plugins("insights")
DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "insights.md"

PROFILE = """{ customers(first: 20) { edges { node { displayName insights(days: 7) {
  sentiment { texts average negative alerts trend { day average texts } }
  channels { channel inbound lastAt } activeHours { hour inbound }
  lastTouches(first: 3) { channel kind direction sentiment score } } } } } }"""


async def test_the_profile_sums_up_a_customers_texts_channels_hours_and_last_touches(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    box = Inbox(runtime, tenant_id)
    await box.say("非常满意，谢谢👍")
    await box.say("东西坏了，我要投诉")
    await box.say("Please send the invoice", channel="douyin")
    await box.say("好的，马上处理", direction="out")
    [edge] = (await graphql(PROFILE))["data"]["customers"]["edges"]
    profile = edge["node"]["insights"]
    sentiment = profile["sentiment"]
    assert (sentiment["texts"], sentiment["negative"], sentiment["alerts"]) == (3, 1, 1)
    assert sum(d["texts"] for d in sentiment["trend"]) == 3
    assert [(c["channel"], c["inbound"]) for c in profile["channels"]] == [("wecom", 2), ("douyin", 1)]
    assert sum(h["inbound"] for h in profile["activeHours"]) == 3 and all(0 <= h["hour"] <= 23 for h in profile["activeHours"])
    touches = profile["lastTouches"]
    assert [(t["direction"], t["sentiment"]) for t in touches] == [("out", None), ("in", "neu"), ("in", "neg")]


async def test_a_page_of_profiles_costs_a_fixed_number_of_statements(runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL) -> None:
    """The page, then one statement per aspect (sentiment, channels, hours, touches) for all of it."""
    box = Inbox(runtime, tenant_id)
    for n in range(3):
        await box.say("很满意", who=f"c{n}")
    counts = []
    for more in range(2):
        for n in range(3 + 6 * more, 9 + 6 * more):
            await box.say("太差了", who=f"c{n}")
        with count_statements(runtime.engine) as seen:
            edges = (await graphql(PROFILE))["data"]["customers"]["edges"]
        selects = [
            s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH")) and "FROM tenants" not in s and "FROM api_keys" not in s
        ]
        counts.append((len(edges), len(selects)))
    assert counts == [(9, 5), (15, 5)]


@pytest.mark.parametrize(("args", "field"), [("days: 0", "days"), ("days: 400", "days")])
async def test_a_window_out_of_range_is_a_client_error_naming_it(
    graphql: GraphQL, runtime: Runtime, tenant_id: uuid.UUID, args: str, field: str
) -> None:
    await Inbox(runtime, tenant_id).say("hi")
    query = "{ customers(first: 1) { edges { node { insights(ARGS) { sentiment { texts } } } } } }"
    body = await graphql(query.replace("ARGS", args), ok=False)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION" and field in error["message"]


async def test_the_documented_profile_query_runs(runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL) -> None:
    """docs/plugins/insights.md shows a real query: each ```graphql block runs without errors."""
    blocks = re.findall(r"^```graphql\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert blocks
    await Inbox(runtime, tenant_id).say("太差了")
    for block in blocks:
        if not block.lstrip().startswith("{"):
            continue  # the subscription runs over a WebSocket in test_alert_subscription.py, tag rules in test_tag_rules.py
        edges = (await graphql(block))["data"]["customers"]["edges"]
        assert edges[0]["node"]["insights"]["sentiment"]["texts"] == 1


async def test_active_hours_and_sentiment_days_are_in_the_tenants_time_zone(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """A text at 23:30 UTC is at 07:30 the next day for a tenant in Asia/Shanghai: hour 7, and
    the next day's sentiment bucket."""
    import datetime as dt

    from sqlalchemy import update

    from guanxi.core.domain.channels import InboundEvent, ProfileInput
    from guanxi.core.domain.models import Tenant
    from guanxi.core.queues import inbox

    async with runtime.write_session(None) as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(time_zone="Asia/Shanghai"))
    runtime.forget_tenant(tenant_id)
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(hour=23, minute=30, second=0, microsecond=0)
    event = InboundEvent(
        channel="wecom",
        provider_event_id="late-night",
        occurred_at=at,
        identity=ProfileInput(external_id="wm-tz", nickname="夜猫子"),
        kind="message_in",
        direction="in",
        text="很满意",
    )
    await inbox.ingest(runtime, tenant_id, event)
    await inbox.run_once(runtime, tenant_id=tenant_id)
    [edge] = (await graphql(PROFILE))["data"]["customers"]["edges"]
    profile = edge["node"]["insights"]
    assert profile["activeHours"] == [{"hour": 7, "inbound": 1}]
    assert [d["day"] for d in profile["sentiment"]["trend"]] == [(at + dt.timedelta(days=1)).date().isoformat()]
