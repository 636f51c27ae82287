"""Tenant isolation of journeys: another tenant's admin calls every journey root field with
tenant A's journey key and customer ids; nothing of A is seen or changed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.automation.journeys.graphql import JourneyMutation, JourneyQuery
from guanxi.plugins.automation.journeys.models import AutomationJourney, AutomationJourneyRun, AutomationJourneyVersion
from guanxi.testing.plugin import api_key
from tests.plugins.automation.journey_kit import JChatPlugin, definition, enter, make_customers

pytestmark = pytest.mark.plugins("automation", "jchat")

A_JOURNEY = definition([{"id": "hello", "type": "send", "channel": "jchat", "text": "A-secret text"}], key="a-secret")

#: (root field, operation); ``$cid`` is one of tenant A's customers, the journey key is A's
JOURNEY_ATTACKS: list[tuple[str, str]] = [
    ("journeys", "{ journeys { key name definition report { entered } } }"),
    ("journey", '{ journey(key: "a-secret") { key name definition } }'),
    ("journeyDryRun", 'query($cid: ID!) { journeyDryRun(key: "a-secret", customerIds: [$cid]) { customerId steps { detail } } }'),
    ("journeySchema", "{ journeySchema }"),
    ("journeyWebhookSecret", "{ journeyWebhookSecret }"),
    ("saveJourney", "mutation($d: String!) { saveJourney(definition: $d) { journey { key version } errors { code } } }"),
    ("setJourneyStatus", 'mutation { setJourneyStatus(key: "a-secret", status: ARCHIVED) { journey { status } errors { code } } }'),
]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"jchat": JChatPlugin()}


def test_every_journey_root_field_is_attacked() -> None:
    """A new journey root field cannot skip this suite."""
    fields = {f.python_name for t in (JourneyQuery, JourneyMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel == {name for name, _ in JOURNEY_ATTACKS}


async def _state(runtime: Runtime, tenant_id: uuid.UUID) -> Any:
    async with runtime.session(tenant_id) as s:
        return (
            sorted((j.key, j.status, j.version) for j in (await s.scalars(select(AutomationJourney))).all()),
            len((await s.scalars(select(AutomationJourneyVersion))).all()),
            sorted((r.customer_id, r.status) for r in (await s.scalars(select(AutomationJourneyRun))).all()),
        )


@pytest.mark.parametrize(("field", "operation"), JOURNEY_ATTACKS, ids=[name for name, _ in JOURNEY_ATTACKS])
async def test_another_tenant_cannot_see_or_change_a_journey(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: Any, app: Any, field: str, operation: str
) -> None:
    saved = await graphql("mutation($d: String!) { saveJourney(definition: $d) { errors { code } } }", {"d": A_JOURNEY})
    assert saved["data"]["saveJourney"]["errors"] == []
    await graphql('mutation { setJourneyStatus(key: "a-secret", status: ACTIVE) { errors { code } } }')
    (cid,) = await make_customers(runtime, tenant_id, 1, prefix="A-customer")
    await enter(runtime, tenant_id, "a-secret", [cid])
    a_secret = (await graphql("{ journeyWebhookSecret }"))["data"]["journeyWebhookSecret"]
    before = await _state(runtime, tenant_id)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    key = await api_key(runtime, beta, "admin")
    variables = {"cid": to_global_id("Customer", cid), "d": A_JOURNEY}
    used = {k: v for k, v in variables.items() if f"${k}" in operation}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver.local") as http:
        response = await http.post("/graphql", json={"query": operation, "variables": used}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    answer = response.json()
    text = json.dumps(answer, ensure_ascii=False)
    assert ("A-customer" not in text and a_secret not in text and "A-secret text" not in text) or field == "saveJourney", text
    payload = next(iter((answer.get("data") or {}).values()), None)
    if field == "journeys":
        assert payload == []
    elif field == "journey":
        assert payload is None
    elif field == "journeyDryRun":
        assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    elif field == "setJourneyStatus":
        assert payload["errors"][0]["code"] == "NOT_FOUND"
    elif field == "saveJourney":  # B saves its own journey of that key: version 1 of B's, A's untouched
        assert payload == {"journey": {"key": "a-secret", "version": 1}, "errors": []}
    elif field == "journeyWebhookSecret":
        assert payload and payload != a_secret
    assert await _state(runtime, tenant_id) == before
