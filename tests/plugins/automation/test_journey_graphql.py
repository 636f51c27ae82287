"""Journeys through GraphQL: saving (JSON and TOML, versions), refusals with the path of the bad
step, activating, the dry run, the report, and versions not disturbing runs in flight."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from guanxi.core.runtime import Runtime
from guanxi.core.services import consent
from guanxi.graphql.ids import to_global_id
from guanxi.models import utcnow
from tests.plugins.automation.journey_kit import JChatPlugin, ctx, definition, drain, enter, make_customers, runs

pytestmark = pytest.mark.plugins("automation", "jchat")

SAVE = """mutation($d: String!, $f: JourneyFormat, $m: Boolean) {
  saveJourney(definition: $d, format: $f, migrateRuns: $m) { journey { key version status } errors { code field message } }
}"""
STATUS = """mutation($k: String!, $s: JourneyStatus!) {
  setJourneyStatus(key: $k, status: $s) { journey { status } errors { code field message } }
}"""
STEPS = [
    {"id": "hello", "type": "send", "channel": "jchat", "text": "Welcome!"},
    {"id": "pause", "type": "wait", "seconds": 3600},
    {"id": "check", "type": "branch", "condition": {"tags_any": ["buyer"]}, "then": "thanks"},
    {"id": "thanks", "type": "tag", "add": ["loyal"]},
]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"jchat": JChatPlugin()}


async def _save(graphql: Any, text: str, **variables: Any) -> dict[str, Any]:
    body = await graphql(SAVE, {"d": text, **variables})
    return body["data"]["saveJourney"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        ([{"id": "a", "type": "teleport"}], "steps[0].type", "teleport"),
        ([{"id": "a", "type": "send", "channel": "douyin", "text": "x"}], "steps[0].channel", "not enabled"),
        (
            [{"id": "a", "type": "tag", "add": ["x"]}, {"id": "b", "type": "branch", "condition": {"stages": ["lead"]}, "then": "a"}],
            "steps[1]",
            "cycle without a wait",
        ),
        ([{"id": "a", "type": "action", "action": "nobody.offers_this"}], "steps[0].action", "no enabled plugin"),
        ([{"id": "a", "type": "webhook", "url": "https://hooks.example.com/x"}], "steps[0].url", "allowed webhook hosts"),
    ],
)
async def test_bad_definitions_are_refused_with_the_path_of_the_bad_step(
    graphql: Any, steps: list[dict[str, Any]], field: str, words: str
) -> None:
    result = await _save(graphql, definition(steps))
    assert result["journey"] is None
    (error,) = result["errors"]
    assert error["code"] == "BAD_JOURNEY" and error["field"] == field and words in error["message"], error
    assert (await graphql("{ journeys { key } }"))["data"]["journeys"] == []


async def test_save_toml_activate_and_read_back(graphql: Any) -> None:
    toml = """
key = "welcome"
name = "Welcome"
trigger = { type = "tag_added", tag = "vip" }

[[steps]]
id = "hello"
type = "send"
channel = "jchat"
text = "Welcome!"
"""
    saved = await _save(graphql, toml, f="TOML")
    assert saved == {"journey": {"key": "welcome", "version": 1, "status": "DRAFT"}, "errors": []}
    again = await _save(graphql, toml, f="TOML")  # unchanged: no new version
    assert again["journey"]["version"] == 1
    body = await graphql(STATUS, {"k": "welcome", "s": "ACTIVE"})
    assert body["data"]["setJourneyStatus"] == {"journey": {"status": "ACTIVE"}, "errors": []}
    read = await graphql('{ journey(key: "welcome") { name triggerType definition } journeySchema }')
    journey = read["data"]["journey"]
    assert journey["triggerType"] == "tag_added"
    assert journey["definition"]["steps"][0] == {"id": "hello", "type": "send", "channel": "jchat", "text": "Welcome!"}
    assert read["data"]["journeySchema"]["$id"].endswith("automation-journey.json")
    assert (await graphql('{ journey(key: "nope") { key } }'))["data"]["journey"] is None


async def test_dry_run_shows_who_would_get_what(graphql: Any, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await _save(graphql, definition(STEPS))
    a, b = await make_customers(runtime, tenant_id, 2)
    (c,) = await make_customers(runtime, tenant_id, 1, channel=None, prefix="nochannel")
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await consent.set_consent(tx, b, "jchat", "opted_out")
        from guanxi.core.services import tags

        await tags.change_tags(tx, a, add=["buyer"])
    ids = [to_global_id("Customer", x) for x in (a, b, c)]
    body = await graphql(
        'query($ids: [ID!]) { journeyDryRun(key: "welcome", customerIds: $ids) { customerId steps { step outcome detail channel } } }',
        {"ids": ids},
    )
    paths = {d["customerId"]: [(s["step"], s["outcome"]) for s in d["steps"]] for d in body["data"]["journeyDryRun"]}
    assert paths[ids[0]] == [("hello", "WOULD_SEND"), ("pause", "WOULD_WAIT"), ("check", "WOULD_BRANCH_YES"), ("thanks", "WOULD_DO")]
    assert paths[ids[1]] == [("hello", "WOULD_SKIP"), ("pause", "WOULD_WAIT"), ("check", "WOULD_BRANCH_NO")]
    assert paths[ids[2]][0] == ("hello", "WOULD_SKIP")
    skipped = {d["customerId"]: d["steps"][0]["detail"] for d in body["data"]["journeyDryRun"]}
    assert skipped[ids[1]].startswith("NO_CONSENT") and "no jchat account" in skipped[ids[2]]
    assert await runs(runtime, tenant_id) == []  # nothing written


async def test_report_counts_entered_steps_channels_and_days(graphql: Any, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await _save(graphql, definition(STEPS, goal={"stage": "won"}))
    await graphql(STATUS, {"k": "welcome", "s": "ACTIVE"})
    a, b, c = await make_customers(runtime, tenant_id, 3)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        await consent.set_consent(tx, c, "jchat", "opted_out")
    await enter(runtime, tenant_id, "welcome", [a, b, c])
    await drain(runtime, tenant_id)
    async with runtime.transaction(ctx(tenant_id)) as tx:
        from guanxi.core.services import customers, pipelines

        await pipelines.move_stage(tx, await customers.get_customer(tx.session, a), await pipelines.stage_by_key(tx.session, "won"))
    query = """{ journey(key: "welcome") { report {
        entered waiting converted exited done failed
        steps { step stepType current outcomes { outcome count } }
        channels { channel sent skipped } days { entered steps converted } } } }"""
    report = (await graphql(query))["data"]["journey"]["report"]
    assert (report["entered"], report["waiting"], report["converted"], report["exited"], report["done"]) == (3, 2, 1, 0, 0)
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["hello"]["outcomes"] == [{"outcome": "sent", "count": 2}, {"outcome": "skipped", "count": 1}]
    assert steps["pause"]["current"] == 2 and steps["check"]["current"] == 0
    assert report["channels"] == [{"channel": "jchat", "sent": 2, "skipped": 1}]
    assert sum(d["entered"] for d in report["days"]) == 3 and sum(d["converted"] for d in report["days"]) == 1


async def test_a_new_version_leaves_runs_in_flight_alone_unless_asked(graphql: Any, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await _save(graphql, definition(STEPS))
    await graphql(STATUS, {"k": "welcome", "s": "ACTIVE"})
    a, b = await make_customers(runtime, tenant_id, 2)
    await enter(runtime, tenant_id, "welcome", [a])
    now = utcnow()
    await drain(runtime, tenant_id, at=now)
    v2 = [STEPS[0], {"id": "pause", "type": "wait", "seconds": 60}, {"id": "bye", "type": "tag", "add": ["v2"]}]
    assert (await _save(graphql, definition(v2)))["journey"]["version"] == 2
    await enter(runtime, tenant_id, "welcome", [b])  # b enters version 2
    await drain(runtime, tenant_id, at=utcnow())
    by_customer = {r.customer_id: r for r in await runs(runtime, tenant_id)}
    assert (by_customer[a].version, by_customer[b].version) == (1, 2)
    v3 = [{"id": "pause", "type": "wait", "seconds": 60}, {"id": "bye3", "type": "tag", "add": ["v3"]}]
    assert (await _save(graphql, definition(v3), m=True))["journey"]["version"] == 3  # runs move to v3 at "pause"
    await drain(runtime, tenant_id, at=now + dt.timedelta(seconds=3601))
    done = {r.customer_id: (r.version, r.status) for r in await runs(runtime, tenant_id)}
    assert done == {a: (3, "done"), b: (3, "done")}
