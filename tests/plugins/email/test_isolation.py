"""Tenant isolation of the email plugin: another tenant's keys call every email root field with
tenant A's customer and mailbox; A's mail routes refuse B's secret, and tokens of A's messages
name A alone."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import InboxEvent, OutboxMessage
from guanxi.core.services import accounts
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.email.graphql import EmailMutation, EmailQuery
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.email.conftest import FakeSmtp, email_config, mailbox, signed
from tests.plugins.email.test_inbound import customer_with_email

pytestmark = pytest.mark.plugins("email")

ATTACKS: list[tuple[str, str]] = [
    (
        "sendEmail",
        'mutation($id: ID!) { sendEmail(customerId: $id, subject: "s", text: "t", idempotencyKey: "x", mailbox: "main") '
        "{ message { id } errors { code } } }",
    ),
    ("pollEmailMailbox", 'mutation { pollEmailMailbox(mailbox: "main") { stored lastUid errors { code } } }'),
]


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp)


def test_every_email_root_field_is_attacked() -> None:
    """A new email root field cannot skip this suite."""
    fields = {f.python_name for f in EmailMutation.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    fields |= {f.python_name for f in EmailQuery.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel - {name for name, _ in ATTACKS} - {"emailMailboxes"} == set()  # emailMailboxes: the test below


@pytest.mark.parametrize("role", ["admin", "sales"])
async def test_another_tenant_sees_none_of_a_tenants_mailboxes(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, role: str
) -> None:
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, f"{role}@beta.example", role)
    key = await api_key(runtime, beta, role, user_id=user if role == "sales" else None)
    query = "{ emailMailboxes { key address lastError } }"
    mine = await api_key(runtime, tenant_id, "admin")
    own = (await anonymous_client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {mine}"})).json()
    assert [m["key"] for m in own["data"]["emailMailboxes"]] == ["main"]  # the tenant's own mailbox is there
    answer = (await anonymous_client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"})).json()
    if role == "sales":
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", answer
    else:
        assert answer["data"]["emailMailboxes"] == [], answer


async def _counts(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[int, int]:
    async with runtime.session(tenant_id) as s:
        outgoing = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        incoming = (await s.execute(select(func.count()).select_from(InboxEvent))).scalar_one()
    return outgoing, incoming


@pytest.mark.parametrize("role", ["admin", "sales"])
@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenant_cannot_send_from_or_to_a_tenants_email(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, role: str, field: str, operation: str
) -> None:
    customer = await customer_with_email(runtime, tenant_id, "secret-a@customer.test")
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, f"{role}@beta.example", role)
    key = await api_key(runtime, beta, role, user_id=user if role == "sales" else None)
    before = await _counts(runtime, tenant_id)
    response = await anonymous_client.post(
        "/graphql",
        json={"query": operation, "variables": {"id": to_global_id("Customer", customer)}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200
    answer = response.json()
    assert "secret-a" not in json.dumps(answer)
    payload = answer["data"][field] if answer.get("data") else None
    if payload is None:  # a role without the permission
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", answer
    else:
        assert payload.get("message") is None and payload.get("stored", 0) == 0, answer
        assert payload["errors"][0]["code"] in ("NOT_FOUND", "CHANNEL_CAPABILITY"), answer
    assert await _counts(runtime, tenant_id) == before
    assert await _counts(runtime, beta) == (0, 0)


async def test_a_mailbox_route_takes_only_its_own_tenants_secret(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    """Tenant B's mailbox has its own key and secret: mail signed with B's secret is refused on
    A's route, and lands in B's inbox alone on B's."""
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    key = f"beta-{uuid.uuid4().hex[:8]}"  # account keys are unique across tenants: one of this test alone
    async with runtime.transaction(RequestContext(tenant_id=beta)) as tx:
        await accounts.save_account(
            tx, "email", key, settings=mailbox(smtp, address=f"{key}@beta.test"), secrets={"inbound_secret": "beta-secret"}
        )
    try:
        raw = b"From: x@customer.test\nTo: hi@beta.test\nSubject: s\nMessage-ID: <iso@x>\n\nhello\n"
        main, other = "/webhooks/email/main/raw", f"/webhooks/email/{key}/raw"
        assert (await anonymous_client.post(main, content=raw, headers=signed(raw, "beta-secret"))).status_code == 401
        assert (await anonymous_client.post(other, content=raw, headers=signed(raw))).status_code == 401
        assert (await anonymous_client.post(other, content=raw, headers=signed(raw, "beta-secret"))).status_code == 200
        assert (await _counts(runtime, tenant_id))[1] == 0
        assert (await _counts(runtime, beta))[1] == 1
    finally:
        async with runtime.transaction(RequestContext(tenant_id=beta)) as tx:
            await accounts.delete_account(tx, "email", key)


async def test_a_verp_address_of_one_tenant_means_nothing_in_another(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.plugins.email import tokens

    message = uuid.uuid4()
    verp = tokens.verp_address(runtime, "bounce", "shop.test", tenant_id, message)
    assert tokens.read_verp(runtime, verp, tenant_id) == message
    assert tokens.read_verp(runtime, verp, uuid.uuid4()) is None
    unsubscribe = tokens.make(runtime, "unsubscribe", tenant_id, message)
    assert tokens.read(runtime, "click", unsubscribe) is None  # a token is for one purpose
