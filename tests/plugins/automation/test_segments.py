"""Segments through GraphQL: definitions compiled to SQL (and/or/not over core's filter, plugin
filter fields, interaction history and consent), counts and previews, static lists from CSV,
and entry/exit events as dynamic memberships follow changes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from guanxi import RequestContext, Runtime, SegmentMembershipChanged, hookimpl
from guanxi.core.services import consent, interactions, tags
from guanxi.graphql.ids import to_global_id
from tests.plugins.automation.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("automation", "events")


class Events:
    """Records every segment membership event."""

    def __init__(self) -> None:
        self.seen: list[SegmentMembershipChanged] = []

    @hookimpl
    def guanxi_segment_membership_changed(self, event: SegmentMembershipChanged) -> None:
        self.seen.append(event)

    def moves(self, key: str) -> list[tuple[str, uuid.UUID]]:
        out: list[tuple[str, uuid.UUID]] = []
        for e in self.seen:
            if e.segment_key == key:
                out += [("in", c) for c in e.entered] + [("out", c) for c in e.exited]
        return out


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"events": Events()}


@pytest.fixture
def events(runtime: Runtime) -> Events:
    return runtime.pm.get_plugin("events")  # type: ignore[no-any-return]


CREATE = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id key kind count preview(first: 10) { displayName } } errors { code field message } } }"""
PREVIEW = """query($d: JSON!) { segmentPreview(definition: $d) { count customers { displayName } } }"""


async def tag(runtime: Runtime, tenant_id: uuid.UUID, cid: uuid.UUID, add: list[str] = [], remove: list[str] = []) -> None:  # noqa: B006
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        added, removed = await tags.change_tags(tx, cid, add=add, remove=remove)
        from guanxi import TagsChanged

        tx.emit("guanxi_tags_changed", TagsChanged(tenant_id=tenant_id, actor=tx.ctx.actor, customer_id=cid, added=added, removed=removed))


async def interact(runtime: Runtime, tenant_id: uuid.UUID, cid: uuid.UUID, kind: str, channel: str, days_ago: float = 0) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await interactions.record_interaction(
            tx,
            interactions.InteractionInput(
                customer_id=cid, channel=channel, kind=kind, occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
            ),
        )


@pytest.fixture
async def people(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Ann: vip, commented on Douyin yesterday, never bought. Bo: vip, commented, bought.
    Cy: not vip, commented 30 days ago. Di: vip, no interactions, opted out of email."""
    p = {name: await new_customer(runtime, tenant_id, name, emails=[f"{name.lower()}@x.cn"]) for name in ("Ann", "Bo", "Cy", "Di")}
    for name in ("Ann", "Bo", "Di"):
        await tag(runtime, tenant_id, p[name], add=["vip"])
    await interact(runtime, tenant_id, p["Ann"], "comment", "douyin", 1)
    await interact(runtime, tenant_id, p["Bo"], "comment", "douyin", 2)
    await interact(runtime, tenant_id, p["Bo"], "purchase", "web", 1)
    await interact(runtime, tenant_id, p["Cy"], "comment", "douyin", 30)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await consent.set_consent(tx, p["Di"], "email", "opted_out")
    return p


COMMENTED_NEVER_BOUGHT = {
    "all": [
        {"interacted": {"kind": "comment", "channel": "douyin", "withinDays": 7}},
        {"not": {"interacted": {"kind": "purchase"}}},
    ]
}


async def test_a_definition_combines_filter_history_and_consent_with_and_or_not(team: Team, people: dict[str, uuid.UUID]) -> None:
    """ "Commented on Douyin in the last 7 days and never bought" is Ann; "vip and not opted out
    of e-mail" is Ann and Bo; "any of (Cy's name, opted out)" is Cy and Di."""
    cases: list[tuple[dict[str, Any], set[str]]] = [
        (COMMENTED_NEVER_BOUGHT, {"Ann"}),
        ({"all": [{"filter": {"tagsAny": ["vip"]}}, {"not": {"consent": {"channel": "email", "status": "opted_out"}}}]}, {"Ann", "Bo"}),
        ({"any": [{"filter": {"search": "Cy"}}, {"consent": {"channel": "email"}}]}, {"Cy", "Di"}),
        ({"interacted": {"kind": "comment", "atLeast": 1}}, {"Ann", "Bo", "Cy"}),
        ({"not": {"filter": {"tagsAny": ["no-such-tag"]}}}, {"Ann", "Bo", "Cy", "Di"}),
    ]
    for definition, names in cases:
        body = await team.call["admin"](PREVIEW, {"d": definition})
        got = body["data"]["segmentPreview"]
        assert {c["displayName"] for c in got["customers"]} == names, definition
        assert got["count"] == len(names)


async def test_a_bad_definition_is_refused_with_the_path_of_the_bad_part(team: Team) -> None:
    for definition, path in [
        ({"all": [{"filter": {"tagsAny": ["vip"]}}, {"filter": {"colour": "red"}}]}, "definition.all[1].filter.colour"),
        ({"any": []}, "definition.any"),
        ({"not": {"interacted": {"direction": "sideways"}}}, "definition.not.interacted.direction"),
        ({"both": []}, "definition"),
        ({"consent": {"channel": "email", "status": "maybe"}}, "definition.consent.status"),
    ]:
        body = await team.call["admin"](PREVIEW, {"d": definition})
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "VALIDATION", body
        assert error["extensions"]["field"] == path, body


async def test_a_dynamic_segment_counts_previews_and_feeds_the_customers_filter(
    team: Team, people: dict[str, uuid.UUID], events: Events
) -> None:
    body = await team.call["admin"](CREATE, {"input": {"key": "hot", "name": "Hot", "definition": COMMENTED_NEVER_BOUGHT}})
    segment = body["data"]["createSegment"]["segment"]
    assert segment["count"] == 1 and segment["preview"] == [{"displayName": "Ann"}] and segment["kind"] == "DYNAMIC"
    assert events.moves("hot") == [("in", people["Ann"])]
    listed = await team.call["admin"]('{ customers(filter: {inSegment: "hot"}) { edges { node { displayName } } } }')
    assert [e["node"]["displayName"] for e in listed["data"]["customers"]["edges"]] == ["Ann"]


async def test_dynamic_membership_follows_changes_with_entry_and_exit_events(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, people: dict[str, uuid.UUID], events: Events
) -> None:
    await team.call["admin"](CREATE, {"input": {"key": "vip", "name": "VIP", "definition": {"filter": {"tagsAll": ["vip"]}}}})
    assert sorted(c for _, c in events.moves("vip")) == sorted([people["Ann"], people["Bo"], people["Di"]])
    events.seen.clear()
    await tag(runtime, tenant_id, people["Bo"], remove=["vip"])
    await tag(runtime, tenant_id, people["Cy"], add=["vip"])
    assert events.moves("vip") == [("out", people["Bo"]), ("in", people["Cy"])]


async def test_a_static_segment_is_a_frozen_list_also_from_csv(team: Team, people: dict[str, uuid.UUID], events: Events) -> None:
    csv = "email,note\nann@x.cn,first\n\ncy@x.cn,second\n"
    body = await team.call["admin"](
        CREATE,
        {
            "input": {
                "key": "fair",
                "name": "Met at the fair",
                "kind": "STATIC",
                "csv": csv,
                "customerIds": [to_global_id("Customer", people["Di"])],
            }
        },
    )
    segment = body["data"]["createSegment"]["segment"]
    assert segment["kind"] == "STATIC" and segment["count"] == 3
    assert sorted(c for _, c in events.moves("fair")) == sorted([people["Ann"], people["Cy"], people["Di"]])
    bad = await team.call["admin"](CREATE, {"input": {"key": "bad", "name": "Bad", "kind": "STATIC", "csv": "email\nnobody@x.cn\n"}})
    assert bad["data"]["createSegment"]["errors"] == [
        {"code": "VALIDATION", "field": "csv", "message": "CSV line 2: no customer with email 'nobody@x.cn'"}
    ]


async def test_a_salesperson_counts_only_their_own_customers_and_cannot_create(runtime: Runtime, tenant_id: uuid.UUID, team: Team) -> None:
    await new_customer(runtime, tenant_id, "Li's", owner=team.users["li"])
    await new_customer(runtime, tenant_id, "Wu's", owner=team.users["wu"])
    body = await team.call["li"](PREVIEW, {"d": {"filter": {"search": "s"}}})
    assert body["data"]["segmentPreview"]["count"] == 1
    denied = await team.call["li"](CREATE, {"input": {"key": "x", "name": "X", "definition": {"filter": {"search": "s"}}}})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_large_refresh_enters_in_bounded_batches_and_previews_take_fixed_statements(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Membership is written and announced a batch at a time (bounded memory); counting and
    previewing a segment costs the same statements for 3 members as for 7."""
    from guanxi.plugins.automation.segments import service
    from guanxi.testing.sql import count_statements

    monkeypatch.setattr(service, "BATCH", 2)
    ids = [await new_customer(runtime, tenant_id, f"Lead {i}") for i in range(7)]
    for cid in ids[:3]:
        await tag(runtime, tenant_id, cid, add=["lead"])
    body = await team.call["admin"](CREATE, {"input": {"key": "leads", "name": "Leads", "definition": {"filter": {"tagsAny": ["lead"]}}}})
    assert body["data"]["createSegment"]["segment"]["count"] == 3
    assert [len(e.entered) for e in events.seen if e.segment_key == "leads"] == [2, 1]
    query = "query($id: ID!) { segment(id: $id) { count preview { displayName } } }"
    counts = []
    for cid in ids[3:]:
        with count_statements(runtime.engine) as seen:
            await team.call["admin"](query, {"id": body["data"]["createSegment"]["segment"]["id"]})
        counts.append(len(seen))
        await tag(runtime, tenant_id, cid, add=["lead"])
    assert len(set(counts)) == 1, counts
    refreshed = await team.call["admin"](
        "mutation($id: ID!) { refreshSegment(id: $id) { entered exited segment { count } } }",
        {"id": body["data"]["createSegment"]["segment"]["id"]},
    )
    assert refreshed["data"]["refreshSegment"] == {"entered": 0, "exited": 0, "segment": {"count": 7}}


async def test_a_merge_hands_the_merged_customers_static_places_to_the_survivor(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, events: Events
) -> None:
    from guanxi.core.services.merge import merge_customers

    survivor, merged = await new_customer(runtime, tenant_id, "Survivor"), await new_customer(runtime, tenant_id, "Merged")
    body = await team.call["admin"](
        CREATE, {"input": {"key": "list", "name": "List", "kind": "STATIC", "customerIds": [to_global_id("Customer", merged)]}}
    )
    segment = body["data"]["createSegment"]["segment"]["id"]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await merge_customers(tx, survivor, merged)
    after = await team.call["admin"]("query($id: ID!) { segment(id: $id) { count preview { displayName } } }", {"id": segment})
    assert after["data"]["segment"] == {"count": 1, "preview": [{"displayName": "Survivor"}]}


@pytest.mark.plugins("automation", "scoring")
async def test_a_segment_using_a_plugin_filter_stops_when_the_tenant_turns_the_plugin_off(team: Team, people: dict[str, uuid.UUID]) -> None:
    """A definition with scoring's scoreGte works while scoring is on; once the tenant disables
    scoring, counting that segment or previewing the definition is PLUGIN_DISABLED naming the
    plugin, not a silent use of the plugin's data."""
    definition = {"filter": {"scoreGte": 0}}
    body = await team.call["admin"](CREATE, {"input": {"key": "scored", "name": "Scored", "definition": definition}})
    assert body["data"]["createSegment"]["errors"] == [] and body["data"]["createSegment"]["segment"]["count"] == 4
    off = await team.call["admin"]('mutation { setPluginEnabled(plugin: "scoring", enabled: false) { errors { code message } } }')
    assert off["data"]["setPluginEnabled"]["errors"] == []
    preview = await team.call["admin"](PREVIEW, {"d": definition})
    [error] = preview["errors"]
    assert error["extensions"]["code"] == "PLUGIN_DISABLED" and "scoring" in error["message"]
    counted = await team.call["admin"]("{ segments { key count } }")
    assert counted["errors"][0]["extensions"]["code"] == "PLUGIN_DISABLED"
