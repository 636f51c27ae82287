"""Tag rules (issue 23 item 2) through GraphQL: keyword rules tag a customer as the text arrives
(segmented words, a product name from the user dictionary), behaviour rules tag set-based when
run, each tag with the rule as its reason and since when; tags go when the rule stops holding
if so configured; the profile shows reasons and interests; bad rules are refused naming the field."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer, ScheduledJob
from guanxi.core.runtime import Runtime
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.testing import GraphQL
from guanxi.testing.sql import count_statements
from tests.plugins.insights.conftest import Inbox

pytestmark = pytest.mark.plugins("insights")
DOC_TEXT = (Path(__file__).resolve().parents[3] / "docs" / "plugins" / "insights.md").read_text(encoding="utf-8")

SAVE = """mutation($input: InsightsTagRuleInput!) { saveInsightsTagRule(input: $input) {
  rule { key tag kind keywords minCount windowDays removeWhenFalse enabled customers } errors { field code message } } }"""
RUN = "mutation { runInsightsTagRules { added removed errors { code message } } }"
PROFILE = """{ customers(first: 20) { edges { node { displayName tags { label }
  insights { tags { tag rule reason since } interests { keyword hits lastAt } } } } } }"""


async def save(graphql: GraphQL, **rule: Any) -> dict[str, Any]:
    body = await graphql(SAVE, {"input": rule})
    payload: dict[str, Any] = body["data"]["saveInsightsTagRule"]
    return payload


async def profiles(graphql: GraphQL) -> dict[str, dict[str, Any]]:
    edges = (await graphql(PROFILE))["data"]["customers"]["edges"]
    return {e["node"]["displayName"]: e["node"] | {"tags": [t["label"] for t in e["node"]["tags"]]} for e in edges}


async def test_a_keyword_rule_tags_the_customer_as_the_text_arrives_with_the_keyword_as_reason(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    saved = await save(graphql, key="price", tag="画像/价格敏感", kind="KEYWORD", keywords=["价格", "优惠", "discount", "free trial"])
    assert saved["errors"] == [] and saved["rule"]["customers"] == 0
    box = Inbox(runtime, tenant_id)
    await box.say("这个价格有优惠吗？", who="a")
    await box.say("Is there a free trial or a discount?", who="b", channel="douyin")
    await box.say("发货了吗", who="c")
    await box.say("价格表发我一下", who="a")
    seen = await profiles(graphql)
    assert "画像/价格敏感" in seen["客户 a"]["tags"] and "画像/价格敏感" in seen["客户 b"]["tags"]
    assert "画像/价格敏感" not in seen["客户 c"]["tags"]
    [reason] = seen["客户 a"]["insights"]["tags"]
    assert (reason["tag"], reason["rule"], reason["reason"]) == ("画像/价格敏感", "price", "keyword 价格, 优惠 on wecom")
    assert [(i["keyword"], i["hits"]) for i in seen["客户 a"]["insights"]["interests"]] == [("价格", 2), ("优惠", 1)]
    assert [(i["keyword"], i["hits"]) for i in seen["客户 b"]["insights"]["interests"]] == [("discount", 1), ("free trial", 1)]
    rules = (await graphql("{ insightsTagRules { key customers } }"))["data"]["insightsTagRules"]
    assert rules == [{"key": "price", "customers": 2}]


async def test_a_product_name_in_the_keywords_is_one_word_of_the_segmentation(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """Keywords join the segmenter's user dictionary: 云朵枕 matches as a word, and a keyword that
    is only part of another word (价 in 评价) does not."""
    await save(graphql, key="pillow", tag="兴趣/云朵枕", kind="KEYWORD", keywords=["云朵枕"])
    await save(graphql, key="narrow", tag="兴趣/价", kind="KEYWORD", keywords=["价"])
    box = Inbox(runtime, tenant_id)
    await box.say("我想买两个云朵枕送人", who="a")
    await box.say("好评，评价已经写了", who="b")
    seen = await profiles(graphql)
    assert "兴趣/云朵枕" in seen["客户 a"]["tags"]
    assert "兴趣/价" not in seen["客户 b"]["tags"]


async def _clicks(runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID, n: int, days_ago: float) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for k in range(n):
            await record_interaction(
                tx,
                InteractionInput(
                    customer_id=customer_id,
                    channel="web",
                    kind="pricing_click",
                    direction="in",
                    occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago, minutes=k),
                ),
            )


async def _customers(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    async with runtime.session(tenant_id) as s:
        return {c.display_name: c.id for c in (await s.execute(select(Customer))).scalars()}


async def test_a_behaviour_rule_tags_who_holds_it_when_run_and_takes_the_tag_when_it_stops_holding(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """3 pricing clicks in 7 days → 价格敏感; with removeWhenFalse the tag goes once the clicks age out."""
    box = Inbox(runtime, tenant_id)
    for who in ("a", "b"):
        await box.say("你好", who=who)
    ids = await _customers(runtime, tenant_id)
    await _clicks(runtime, tenant_id, ids["客户 a"], 3, days_ago=1)
    await _clicks(runtime, tenant_id, ids["客户 b"], 2, days_ago=1)
    saved = await save(
        graphql,
        key="clicks",
        tag="价格敏感",
        kind="AT_LEAST",
        interactionKind="pricing_click",
        minCount=3,
        windowDays=7,
        removeWhenFalse=True,
    )
    assert saved["errors"] == []
    assert (await graphql(RUN))["data"]["runInsightsTagRules"] == {"added": 1, "removed": 0, "errors": []}
    assert (await graphql(RUN))["data"]["runInsightsTagRules"] == {"added": 0, "removed": 0, "errors": []}  # idempotent
    seen = await profiles(graphql)
    assert "价格敏感" in seen["客户 a"]["tags"] and "价格敏感" not in seen["客户 b"]["tags"]
    assert seen["客户 a"]["insights"]["tags"][0]["reason"] == "rule clicks: 3+ pricing_click interactions in 7 days"
    # eight days later the clicks are outside the window: the tag goes (the job's run at that time)
    from guanxi.plugins.insights.rules import evaluate

    later = await evaluate(runtime, tenant_id, dt.datetime.now(dt.UTC) + dt.timedelta(days=8))
    assert (later.added, later.removed) == (0, 1)
    seen = await profiles(graphql)
    assert "价格敏感" not in seen["客户 a"]["tags"] and seen["客户 a"]["insights"]["tags"] == []


async def test_a_none_for_rule_tags_dormant_customers_and_a_hand_set_tag_is_never_taken(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """No inbound touch for 60 days → 沉睡 (customers older than 60 days only); a tag someone set
    by hand stays when the rule stops holding."""
    box = Inbox(runtime, tenant_id)
    for who in ("old", "active", "new"):
        await box.say("hi", who=who)
    ids = await _customers(runtime, tenant_id)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for name in ("客户 old", "客户 active"):
            customer = await tx.session.get(Customer, (tenant_id, ids[name]))
            assert customer is not None
            customer.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=200)
    await save(graphql, key="dormant", tag="沉睡", kind="NONE_FOR", direction="IN", windowDays=60, removeWhenFalse=True)
    from guanxi.plugins.insights.rules import evaluate

    in_90_days = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    await _clicks(runtime, tenant_id, ids["客户 active"], 1, days_ago=-80)  # a touch 80 days from now
    result = await evaluate(runtime, tenant_id, in_90_days)
    assert (result.added, result.removed) == (2, 0)  # old and new (both older than 60 days by then); active touched
    seen = await profiles(graphql)
    assert ["沉睡" in seen[n]["tags"] for n in ("客户 old", "客户 active", "客户 new")] == [True, False, True]
    await graphql('mutation($id: ID!) { tagCustomer(id: $id, add: ["沉睡"]) { errors { code } } }', {"id": _gid(ids["客户 active"])})
    await _clicks(runtime, tenant_id, ids["客户 old"], 1, days_ago=-85)
    result = await evaluate(runtime, tenant_id, in_90_days)
    assert (result.added, result.removed) == (0, 1)
    seen = await profiles(graphql)
    assert ["沉睡" in seen[n]["tags"] for n in ("客户 old", "客户 active", "客户 new")] == [False, True, True]


def _gid(customer_id: uuid.UUID) -> str:
    from guanxi.graphql.ids import to_global_id

    return to_global_id("Customer", customer_id)


async def test_saving_a_rule_schedules_the_hourly_job_and_a_run_costs_a_statement_per_rule_plus_changes(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    await save(graphql, key="clicks", tag="价格敏感", kind="AT_LEAST", interactionKind="pricing_click", minCount=1, windowDays=7)
    async with runtime.session(tenant_id) as s:
        job = (await s.execute(select(ScheduledJob).where(ScheduledJob.kind == "insights.tag_rules"))).scalar_one()
    assert job.cron == "17 * * * *" and job.status == "scheduled"
    from guanxi.plugins.insights.rules import evaluate

    with count_statements(runtime.engine) as seen:
        result = await evaluate(runtime, tenant_id)
    assert result.added == 0
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT") and "FROM tenant" not in s]
    assert len(selects) == 2, selects  # the rules, then who holds the one rule but lacks its tag


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"key": "Bad Key", "tag": "x", "kind": "KEYWORD", "keywords": ["a"]}, "key"),
        ({"key": "k", "tag": "x", "kind": "KEYWORD", "keywords": []}, "keywords"),
        ({"key": "k", "tag": "x", "kind": "AT_LEAST", "minCount": 3}, "windowDays"),
        ({"key": "k", "tag": "x", "kind": "AT_LEAST", "minCount": 0, "windowDays": 7}, "minCount"),
        ({"key": "k", "tag": "x", "kind": "NONE_FOR", "windowDays": 7, "keywords": ["a"]}, "keywords"),
        ({"key": "k", "tag": "", "kind": "NONE_FOR", "windowDays": 7}, "tags"),
        ({"key": "k", "tag": "x", "kind": "NONE_FOR", "windowDays": 0}, "windowDays"),
    ],
)
async def test_a_bad_rule_is_refused_naming_the_field(graphql: GraphQL, rule: dict[str, Any], field: str) -> None:
    saved = await save(graphql, **rule)
    assert saved["rule"] is None
    assert [(e["field"], e["code"]) for e in saved["errors"]] == [(field, "VALIDATION")], saved


async def test_a_sales_key_may_not_manage_or_read_rules(runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
    from guanxi.testing.plugin import api_key

    box = Inbox(runtime, tenant_id)
    user = await box.user("sales", "s@corp.cn")
    key = await api_key(runtime, tenant_id, "sales", user_id=user)
    for query, variables in (
        (SAVE, {"input": {"key": "k", "tag": "x", "kind": "NONE_FOR", "windowDays": 7}}),
        (RUN, {}),
        ("{ insightsTagRules { key } }", {}),
    ):
        response = await client.post("/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {key}"})
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN", query


async def test_the_documented_tag_rule_operations_run_with_the_stated_effects(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    """docs/plugins/insights.md, "Tag rules": each named operation runs as shown."""
    import re

    doc = DOC_TEXT
    ops: dict[str, str] = {}
    for block in re.findall(r"^```graphql\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL):
        for part in re.split(r"\n(?=(?:mutation|query) \w+)", block):
            if named := re.match(r"(?:mutation|query) (\w+)", part):
                ops[named.group(1)] = part
    assert set(ops) == {
        "SavePriceRule",
        "SaveDormantRule",
        "RunTagRules",
        "TagRules",
        "Profiles",
        "ServiceQueue",
    }  # ServiceQueue: test_score_and_service.py
    for name in ("SavePriceRule", "SaveDormantRule"):
        body = await graphql(ops[name])
        assert next(iter(body["data"].values()))["errors"] == [], name
    await Inbox(runtime, tenant_id).say("云朵枕有优惠吗", who="a")
    ran = (await graphql(ops["RunTagRules"]))["data"]["runInsightsTagRules"]
    assert ran == {"added": 0, "removed": 0, "errors": []}  # the keyword tag came with the text; nobody is 60 days dormant
    rules = (await graphql(ops["TagRules"]))["data"]["insightsTagRules"]
    assert [(r["key"], r["customers"]) for r in rules] == [("dormant", 0), ("price", 1)]
    [edge] = (await graphql(ops["Profiles"]))["data"]["customers"]["edges"]
    insights = edge["node"]["insights"]
    assert [t["tag"] for t in insights["tags"]] == ["画像/价格敏感"]
    assert sorted(i["keyword"] for i in insights["interests"]) == ["云朵枕", "优惠"]


async def test_a_merge_moves_hits_and_reasons_to_the_survivor_and_erasure_deletes_them(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: GraphQL
) -> None:
    await save(graphql, key="price", tag="价格敏感", kind="KEYWORD", keywords=["价格"])
    box = Inbox(runtime, tenant_id)
    await box.say("价格多少", who="a")
    await box.say("价格能便宜吗", who="b")
    ids = await _customers(runtime, tenant_id)
    merged = await graphql(
        "mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m) { errors { code } } }",
        {"s": _gid(ids["客户 a"]), "m": _gid(ids["客户 b"])},
    )
    assert merged["data"]["mergeCustomers"]["errors"] == []
    seen = await profiles(graphql)
    survivor = seen["客户 a"]["insights"]
    assert [t["rule"] for t in survivor["tags"]] == ["price"]  # one reason per rule
    assert survivor["interests"][0] == survivor["interests"][0] | {"keyword": "价格", "hits": 2}
    exported = (await graphql("query($id: ID!) { exportCustomerData(id: $id) }", {"id": _gid(ids["客户 a"])}))["data"]
    mine = exported["exportCustomerData"]["plugins"]["insights"]
    assert len(mine["keyword_hits"]) == 2 and [r["tag"] for r in mine["rule_tags"]] == ["价格敏感"]
    erased = await graphql("mutation($id: ID!) { eraseCustomer(id: $id) { erased errors { code } } }", {"id": _gid(ids["客户 a"])})
    counts = erased["data"]["eraseCustomer"]["erased"]
    assert (counts["insights.keyword_hits"], counts["insights.rule_tags"]) == (2, 1), counts
