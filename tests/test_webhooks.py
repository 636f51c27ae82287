"""The base webhook route (guanxi.webhooks): tenant step, signature, parsing, storing, answers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from guanxi import InboundEvent, ProfileInput, Receipt, Runtime, hookimpl, sign, verify_signature
from guanxi.core.domain.models import InboxEvent
from guanxi.webhooks import WebhookCall, WebhookTarget, webhook

SECRET = "hook-secret"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    webhook_secret: str = SECRET


def verify(call: WebhookCall) -> None:
    verify_signature(call.settings.webhook_secret, call.body, call.header("X-Sig"))


def parse(call: WebhookCall) -> list[InboundEvent | Receipt] | None:
    items = msgspec.json.decode(call.body, type=list[dict[str, str]])
    parsed: list[InboundEvent | Receipt] = []
    for item in items:
        at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
        if "message_id" in item:
            parsed.append(Receipt(channel="hooky", provider_message_id=item["message_id"], status=item["status"], occurred_at=at))
        else:
            identity = ProfileInput(external_id=item["from"])
            parsed.append(InboundEvent(channel="hooky", provider_event_id=item["id"], occurred_at=at, identity=identity, kind="message_in"))
    return parsed or None


async def parse_async(call: WebhookCall) -> list[InboundEvent | Receipt] | None:
    """An ``async`` parse (a plugin that records something of its own on the way)."""
    call.state["parsed_async"] = True
    return parse(call)


async def by_account(call: WebhookCall) -> WebhookTarget:
    """A tenant step that reads the tenant's slug from the URL (as channel accounts will)."""
    slug = call.path_params["account"]
    return WebhookTarget(tenant_id=await call.runtime.tenant_id(slug), settings=Settings(webhook_secret=f"{SECRET}-{slug}"))


class Hooky:
    @hookimpl
    def guanxi_config_schema(self) -> type[msgspec.Struct]:
        return Settings

    @hookimpl
    def guanxi_routes(self) -> list[Any]:
        return [
            webhook("/hooky", plugin="hooky", verify=verify, parse=parse),
            webhook("/hooky/{account:str}", plugin="hooky", verify=verify, parse=parse, tenant=by_account),
            webhook("/hooky-plain", plugin="hooky", verify=verify, parse=parse, answer=lambda call, results: "success", name="plain"),
            webhook(
                "/hooky-async",
                plugin="hooky",
                verify=verify,
                parse=parse_async,
                answer=lambda call, results: {"async": call.state["parsed_async"], "stored": len(results)},
            ),
        ]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"hooky": Hooky()}


pytestmark = pytest.mark.plugins("hooky")


def signed(items: list[dict[str, str]], secret: str = SECRET) -> dict[str, Any]:
    body = msgspec.json.encode(items)
    return {"content": body, "headers": {"X-Sig": sign(secret, body)}}


async def inbox_rows(runtime: Runtime, tenant_id: uuid.UUID) -> list[str]:
    async with runtime.session(tenant_id) as s:
        return sorted((await s.execute(select(InboxEvent.provider_event_id))).scalars())


async def test_a_signed_body_is_stored_event_by_event_and_retries_count_as_duplicates(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient
) -> None:
    request = signed([{"id": "e1", "from": "u1"}, {"message_id": "pm-1", "status": "read"}])
    first = await anonymous_client.post("/hooky", **request)
    assert (first.status_code, first.json()) == (200, {"ok": True, "stored": 2, "duplicates": 0})
    again = await anonymous_client.post("/hooky", **request)
    assert again.json() == {"ok": True, "stored": 0, "duplicates": 2}
    assert await inbox_rows(runtime, tenant_id) == ["e1", "receipt:pm-1:read"]


async def test_a_bad_signature_is_401_and_a_malformed_body_400_with_the_reason_and_nothing_is_stored(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient
) -> None:
    request = signed([{"id": "e1", "from": "u1"}], secret="wrong")
    refused = await anonymous_client.post("/hooky", **request)
    assert refused.status_code == 401 and "hooky webhook: signature does not match" in refused.text
    assert SECRET not in refused.text
    body = b'{"not": "a list"}'
    malformed = await anonymous_client.post("/hooky", content=body, headers={"X-Sig": sign(SECRET, body)})
    assert malformed.status_code == 400
    assert "malformed hooky webhook: Expected `array`, got `object`" in malformed.json()["detail"]
    bad_receipt = await anonymous_client.post("/hooky", **signed([{"message_id": "pm-1", "status": "opened"}]))
    assert bad_receipt.status_code == 400 and "receipt status must be one of" in bad_receipt.json()["detail"]
    assert await inbox_rows(runtime, tenant_id) == []


async def test_an_empty_delivery_is_acknowledged_with_nothing_stored(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient
) -> None:
    response = await anonymous_client.post("/hooky", **signed([]))
    assert response.json() == {"ok": True, "stored": 0, "duplicates": 0}


async def test_a_tenant_step_finds_the_tenant_and_its_secret_from_the_url(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient
) -> None:
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.write_session(None) as session:
        other = await create_tenant(session, "acme-hooky", "Acme")
    assert (await anonymous_client.post("/hooky/acme-hooky", **signed([{"id": "a1", "from": "u1"}]))).status_code == 401
    stored = await anonymous_client.post("/hooky/acme-hooky", **signed([{"id": "a1", "from": "u1"}], secret=f"{SECRET}-acme-hooky"))
    assert stored.json()["stored"] == 1
    assert (await inbox_rows(runtime, other), await inbox_rows(runtime, tenant_id)) == (["a1"], [])
    unknown = await anonymous_client.post("/hooky/nobody", **signed([{"id": "a2", "from": "u1"}]))
    assert unknown.status_code == 404 and "tenant 'nobody' does not exist" in unknown.text


async def test_a_plugin_can_shape_the_answer_a_provider_expects(anonymous_client: httpx.AsyncClient) -> None:
    response = await anonymous_client.post("/hooky-plain", **signed([{"id": "p1", "from": "u1"}]))
    assert (response.status_code, response.text) == (200, "success")


async def test_an_async_parse_is_awaited_and_its_events_stored(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient
) -> None:
    response = await anonymous_client.post("/hooky-async", **signed([{"id": "as1", "from": "u1"}]))
    assert response.json() == {"async": True, "stored": 1}
    assert await inbox_rows(runtime, tenant_id) == ["as1"]
