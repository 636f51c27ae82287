"""docs/plugins/automation.md cannot fall behind the code: its GraphQL examples run, in order,
with the JSON variables written under each, against a tenant with customers and a channel, and
answer as the text says; the settings block names exactly the settings."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guanxi import RequestContext, Runtime
from guanxi.core.queues import scheduler
from guanxi.core.services import identities, tags, tenant_plugins
from guanxi.plugins.automation.settings import AutomationSettings
from tests.plugins.automation.channels import ChannelsPlugin
from tests.plugins.automation.conftest import Team, new_customer

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "automation.md"
TEXT = DOC.read_text(encoding="utf-8")
#: each ```graphql block, with the ```json block right after it (its variables), if any
EXAMPLE = re.compile(r"^```graphql\n(?P<op>.*?)^```\n(?:\n```json\n(?P<vars>.*?)^```)?", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.plugins("automation", "chans")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chans": ChannelsPlugin()}


def examples() -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in EXAMPLE.finditer(TEXT):
        name = re.search(r"(?:query|mutation) (\w+)", m.group("op"))
        assert name is not None, m.group("op")
        out[name.group(1)] = (m.group("op"), json.loads(m.group("vars")) if m.group("vars") else {})
    return out


def test_the_settings_block_lists_every_setting() -> None:
    block = TEXT[TEXT.index("[plugins.automation]") : TEXT.index("```", TEXT.index("[plugins.automation]"))]
    assert set(re.findall(r"^([a-z_]+) =", block, re.MULTILINE)) == {f.name for f in msgspec.structs.fields(AutomationSettings)}


def test_every_example_is_run_below() -> None:
    # the journeys section's examples run in test_journey_docs.py
    assert set(examples()) - {"SaveJourney", "ActivateJourney", "JourneyDryRun", "JourneyReport"} == {
        "SegmentPreview", "CreateSegment", "CreateStaticSegment", "Segments", "RefreshSegment",
        "CreateBulkSend", "ApproveBulkSend", "BulkSendReport",
    }  # fmt: skip


async def test_the_documented_examples_answer_as_described(runtime: Runtime, tenant_id: uuid.UUID, team: Team) -> None:
    people: dict[str, uuid.UUID] = {}
    for name in ("Ann", "Bo"):
        people[name] = await new_customer(runtime, tenant_id, name, emails=[f"{name.lower()}@example.com"])
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await tags.change_tags(tx, people[name], add=["vip"])
            await identities.attach_identity(tx, people[name], identities.IdentityInput(channel="broadcast", external_id=name))
    ex = examples()

    async def run(name: str, **variables: Any) -> dict[str, Any]:
        op, documented = ex[name]
        body = await team.call["admin"](op, {**documented, **variables})
        assert "errors" not in body, body
        return dict(body["data"])

    preview = await run("SegmentPreview")
    assert preview["segmentPreview"]["count"] == 2
    created = (await run("CreateSegment"))["createSegment"]
    assert created["errors"] == [] and created["segment"]["count"] == 2 and created["segment"]["kind"] == "DYNAMIC"
    static = (await run("CreateStaticSegment"))["createSegment"]
    assert static["errors"] == [] and static["segment"]["count"] == 1
    listed = await run("Segments")
    assert {s["key"] for s in listed["segments"]} == {"vip", "fair-2026"}
    assert {e["node"]["displayName"] for e in listed["customers"]["edges"]} == {"Ann", "Bo"}
    refreshed = (await run("RefreshSegment", id=created["segment"]["id"]))["refreshSegment"]
    assert (refreshed["entered"], refreshed["exited"], refreshed["errors"]) == (0, 0, [])

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await tenant_plugins.set_plugin_settings(tx, "automation", {"bulk_requires_approval": True})
    _, documented = ex["CreateBulkSend"]
    send_input = {**documented["input"], "segmentId": created["segment"]["id"]}
    send = (await run("CreateBulkSend", input=send_input))["createBulkSend"]
    assert send["errors"] == [] and send["bulkSend"]["status"] == "PENDING_APPROVAL" and send["bulkSend"]["ratePerMinute"] == 100
    approved = (await run("ApproveBulkSend", id=send["bulkSend"]["id"]))["approveBulkSend"]
    assert approved == {"bulkSend": {"status": "SENDING"}, "errors": []}
    await scheduler.run_once(runtime, tenant_id=tenant_id)
    report = await run("BulkSendReport", id=send["bulkSend"]["id"])
    figures = report["bulkSend"]["figures"]
    assert report["bulkSend"]["status"] == "DONE"
    assert (figures["targeted"], figures["queued"], figures["skipped"]) == (2, 2, 0)
    assert [s["name"] for s in report["bulkSends"]] == ["Spring sale"]
