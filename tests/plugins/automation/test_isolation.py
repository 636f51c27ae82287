"""Tenant isolation of automation: another tenant's admin calls every automation root field with
tenant A's segment, bulk send and customer ids; nothing of A is seen or changed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import RequestContext, Runtime
from guanxi.core.services import identities
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.automation.bulk.models import AutomationBulkRecipient, AutomationBulkSend
from guanxi.plugins.automation.graphql import PARTS
from guanxi.plugins.automation.segments.models import AutomationSegment, AutomationSegmentMember
from guanxi.testing.plugin import api_key
from tests.plugins.automation.channels import ChannelsPlugin
from tests.plugins.automation.conftest import Team, new_customer
from tests.plugins.automation.test_journey_isolation import JOURNEY_ATTACKS

pytestmark = pytest.mark.plugins("automation", "chans")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chans": ChannelsPlugin()}


#: (root field, operation); $seg is A's segment, $send A's bulk send, $cid one of A's customers
ATTACKS: list[tuple[str, str]] = [
    ("segments", "{ segments { key name count } }"),
    ("segment", "query($seg: ID!) { segment(id: $seg) { key name count preview { displayName } } }"),
    ("segmentPreview", '{ segmentPreview(definition: {filter: {inSegment: "a-secret"}}) { count customers { displayName } } }'),
    ("createSegment", 'mutation($cid: ID!) { createSegment(input: {key: "b", name: "B", kind: STATIC, customerIds: [$cid]}) '
     "{ segment { count } errors { code } } }"),
    ("updateSegment", 'mutation($seg: ID!) { updateSegment(id: $seg, input: {name: "B-owned"}) { segment { name } errors { code } } }'),
    ("addSegmentMembers", "mutation($seg: ID!, $cid: ID!) { addSegmentMembers(id: $seg, customerIds: [$cid]) "
     "{ entered errors { code } } }"),
    ("refreshSegment", "mutation($seg: ID!) { refreshSegment(id: $seg) { entered exited errors { code } } }"),
    ("deleteSegment", "mutation($seg: ID!) { deleteSegment(id: $seg) { deletedId errors { code } } }"),
    ("bulkSends", "{ bulkSends { name text } }"),
    ("bulkSend", "query($send: ID!) { bulkSend(id: $send) { name text figures { targeted } } }"),
    ("createBulkSend", 'mutation($seg: ID!) { createBulkSend(input: {name: "B", segmentId: $seg, channel: "broadcast", text: "x"}) '
     "{ bulkSend { name } errors { code } } }"),
    ("approveBulkSend", "mutation($send: ID!) { approveBulkSend(id: $send) { bulkSend { name } errors { code } } }"),
    ("rejectBulkSend", "mutation($send: ID!) { rejectBulkSend(id: $send) { bulkSend { name } errors { code } } }"),
    ("cancelBulkSend", "mutation($send: ID!) { cancelBulkSend(id: $send) { bulkSend { name } errors { code } } }"),
]  # fmt: skip


def test_every_automation_root_field_is_attacked() -> None:
    """A new automation root field cannot skip this suite."""
    fields = {f.python_name for pair in PARTS for t in pair for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel == {name for name, _ in ATTACKS} | {name for name, _ in JOURNEY_ATTACKS}  # journeys: test_journey_isolation.py


async def _state(runtime: Runtime, tenant_id: uuid.UUID) -> Any:
    async with runtime.session(tenant_id) as s:
        return (
            sorted((g.key, g.name, str(g.definition)) for g in (await s.scalars(select(AutomationSegment))).all()),
            sorted((m.segment_id, m.customer_id) for m in (await s.scalars(select(AutomationSegmentMember))).all()),
            sorted((b.name, b.status) for b in (await s.scalars(select(AutomationBulkSend))).all()),
            sorted((r.customer_id, r.status) for r in (await s.scalars(select(AutomationBulkRecipient))).all()),
        )


@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenant_cannot_see_or_change_a_segment_or_send(
    runtime: Runtime, team: Team, http: httpx.AsyncClient, field: str, operation: str
) -> None:
    cid = await new_customer(runtime, team.tenant_id, "A-customer")
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await identities.attach_identity(tx, cid, identities.IdentityInput(channel="broadcast", external_id="A-1111"))
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        from guanxi.core.services.tenant_plugins import set_plugin_settings

        await set_plugin_settings(tx, "automation", {"bulk_requires_approval": True})
    made = await team.call["admin"](
        """mutation($cid: ID!) { createSegment(input: {key: "a-secret", name: "A-seg", kind: STATIC, customerIds: [$cid]}) {
        segment { id } errors { code } } }""",
        {"cid": to_global_id("Customer", cid)},
    )
    seg = made["data"]["createSegment"]["segment"]["id"]
    sent = await team.call["admin"](
        'mutation($seg: ID!) { createBulkSend(input: {name: "A-send", segmentId: $seg, channel: "broadcast", text: "A-text"}) '
        "{ bulkSend { id } errors { code } } }",
        {"seg": seg},
    )
    send = sent["data"]["createBulkSend"]["bulkSend"]["id"]
    before = await _state(runtime, team.tenant_id)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    key = await api_key(runtime, beta, "admin")
    variables = {"seg": seg, "send": send, "cid": to_global_id("Customer", cid)}
    used = {k: v for k, v in variables.items() if f"${k}" in operation}
    response = await http.post("/graphql", json={"query": operation, "variables": used}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    answer = response.json()
    text = json.dumps(answer, ensure_ascii=False)
    assert "A-" not in text and "1111" not in text, text
    payload = next(iter((answer.get("data") or {}).values()), None)
    if field.startswith(("update", "add", "refresh", "delete", "approve", "reject", "cancel", "create")):
        assert payload is not None and payload["errors"][0]["code"] == "NOT_FOUND", answer
    elif field in ("segment", "bulkSend"):
        assert payload is None
    elif field in ("segments", "bulkSends"):
        assert payload == []
    else:
        assert payload == {"count": 0, "customers": []}
    assert await _state(runtime, team.tenant_id) == before
