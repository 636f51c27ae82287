"""Message receipts: a provider's later "delivered", "read" or "failed" reaches the message
through the durable inbox, in any order, and shows in GraphQL, the hook and the status history."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
import strawberry
from sqlalchemy import select
from strawberry.types import Info

from guanxi import InboundEvent, ProfileInput, Receipt, hookimpl, ingest
from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Consent, Identity, InboxEvent, OutboxMessage
from guanxi.core.queues import inbox, outbox
from guanxi.core.runtime import Runtime
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.graphql.ids import to_global_id
from tests.core.test_outbox import ChannelsPlugin, customer_on, send, status_of
from tests.graphql.test_subscriptions import next_data, server, subscribe

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
__all__ = ["server"]  # the loopback app server fixture of the subscription tests


class Recorder(ChannelsPlugin):
    """The fake channels, plus every status event and a field added to ``Message``."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    @hookimpl
    def guanxi_message_status_changed(self, event: Any) -> None:
        self.events.append(event)

    @hookimpl
    def guanxi_graphql(self) -> GraphQLContribution:
        return GraphQLContribution(extend={"Message": MessageExtra})


@strawberry.type
class MessageExtra:
    @strawberry.field(description="A plugin's field on Message.")
    def receipt_count(self, info: Info) -> int:
        entries: list[dict[str, Any]] = self.history  # type: ignore[attr-defined]
        return len([e for e in entries if e["source"] == "receipt"])


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chans": Recorder()}


@pytest.fixture
def plugin(runtime: Runtime) -> Recorder:
    return cast(Recorder, runtime.pm.get_plugin("chans"))


pytestmark = pytest.mark.plugins("chans")


async def sent_message(runtime: Runtime, tenant_id: uuid.UUID, key: str = "k1") -> OutboxMessage:
    """A message on ``fakechat`` that the provider accepted (provider id ``pm-<n>``)."""
    cid = await customer_on(runtime, tenant_id, "fakechat") if key == "k1" else await _customer(runtime, tenant_id)
    row = await send(runtime, tenant_id, cid, key=key)
    await outbox.run_once(runtime, tenant_id=tenant_id)
    sent = await status_of(runtime, tenant_id, row.id)
    assert sent.status == "sent" and sent.provider_message_id
    return sent


async def _customer(runtime: Runtime, tenant_id: uuid.UUID) -> uuid.UUID:
    async with runtime.session(tenant_id) as s:
        return (await s.execute(select(Identity.customer_id).where(Identity.channel == "fakechat"))).scalar_one()


async def receipt(runtime: Runtime, tenant_id: uuid.UUID, provider_id: str, status: str, minutes: int = 1, **extra: Any) -> bool:
    """Ingest a receipt and run the inbox; return whether the delivery was a duplicate."""
    at = T0 + dt.timedelta(minutes=minutes)
    event = Receipt(channel="fakechat", provider_message_id=provider_id, status=status, occurred_at=at, **extra)
    result = await ingest(runtime, tenant_id, event)
    await inbox.run_once(runtime, tenant_id=tenant_id)
    return result.duplicate


def history(row: OutboxMessage) -> list[tuple[str, str, bool]]:
    return [(e["status"], e["source"], e.get("applied", True)) for e in row.status_history]


async def test_delivered_then_read_moves_the_message_on_and_fires_the_hook_for_each(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: Recorder
) -> None:
    row = await sent_message(runtime, tenant_id)
    pid = row.provider_message_id
    assert pid is not None
    await receipt(runtime, tenant_id, pid, "delivered", 1)
    assert (await status_of(runtime, tenant_id, row.id)).status == "delivered"
    await receipt(runtime, tenant_id, pid, "read", 3)
    read = await status_of(runtime, tenant_id, row.id)
    assert read.status == "read"
    assert history(read) == [
        ("queued", "outbox", True),
        ("sending", "outbox", True),
        ("sent", "outbox", True),
        ("delivered", "receipt", True),
        ("read", "receipt", True),
    ]
    assert read.status_history[-1]["at"] == (T0 + dt.timedelta(minutes=3)).isoformat()
    from_receipts = [(e.previous_status, e.status, e.occurred_at) for e in plugin.events if e.source == "receipt"]
    assert from_receipts == [("sent", "delivered", T0 + dt.timedelta(minutes=1)), ("delivered", "read", T0 + dt.timedelta(minutes=3))]


async def test_a_late_delivered_never_overwrites_read_but_is_kept_in_the_history(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: Recorder
) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    await receipt(runtime, tenant_id, row.provider_message_id, "read", 3)
    await receipt(runtime, tenant_id, row.provider_message_id, "delivered", 1)
    after = await status_of(runtime, tenant_id, row.id)
    assert after.status == "read"
    assert history(after)[-2:] == [("read", "receipt", True), ("delivered", "receipt", False)]
    assert [e.status for e in plugin.events if e.source == "receipt"] == ["read"]


async def test_the_same_receipt_delivered_twice_is_stored_and_applied_once(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    assert await receipt(runtime, tenant_id, row.provider_message_id, "delivered") is False
    assert await receipt(runtime, tenant_id, row.provider_message_id, "delivered") is True
    after = await status_of(runtime, tenant_id, row.id)
    assert [s for s, source, _ in history(after) if source == "receipt"] == ["delivered"]
    async with runtime.session(tenant_id) as s:
        rows = (await s.execute(select(InboxEvent.provider_event_id, InboxEvent.status, InboxEvent.customer_id))).all()
    assert rows == [(f"receipt:{row.provider_message_id}:delivered", "done", row.customer_id)]


async def test_a_failure_after_sent_fails_the_message_with_the_providers_error(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: Recorder
) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    await receipt(runtime, tenant_id, row.provider_message_id, "failed", error="handset unreachable", provider_code="EC_30")
    failed = await status_of(runtime, tenant_id, row.id)
    assert (failed.status, failed.last_error) == ("failed", "handset unreachable")
    assert failed.status_history[-1] | {"at": None} == {
        "status": "failed",
        "at": None,
        "source": "receipt",
        "error": "handset unreachable",
        "provider_code": "EC_30",
    }
    (event,) = [e for e in plugin.events if e.source == "receipt"]
    assert (event.status, event.previous_status, event.error, event.message_id) == ("failed", "sent", "handset unreachable", row.id)
    assert not await outbox.retry(runtime, tenant_id, row.id), "a message the provider accepted is never sent again"


async def test_a_receipt_for_an_unknown_message_is_kept_and_retried_until_the_message_is_known(
    runtime: Runtime, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "backoff", lambda attempt: 0.0)
    await receipt(runtime, tenant_id, "pm-1", "delivered")  # overtakes the outbox: no message has pm-1 yet
    async with runtime.session(tenant_id) as s:
        (pending,) = (await s.execute(select(InboxEvent))).scalars()
    assert pending.status == "pending"
    assert pending.last_error is not None and "no fakechat message with provider message id 'pm-1'" in pending.last_error
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id == "pm-1"
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert (await status_of(runtime, tenant_id, row.id)).status == "delivered"


async def test_a_receipt_never_reaches_another_tenants_message(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.services.pipelines import create_tenant

    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    async with runtime.write_session(None) as session:
        other = await create_tenant(session, f"other-{uuid.uuid4().hex[:6]}", "Other")
    await receipt(runtime, other, row.provider_message_id, "read")
    assert (await status_of(runtime, tenant_id, row.id)).status == "sent"


async def test_an_unreachable_failure_marks_the_identity_and_send_message_refuses_it_until_it_writes_in(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    await receipt(runtime, tenant_id, row.provider_message_id, "bounced", unreachable=True, provider_code="550")
    assert (await status_of(runtime, tenant_id, row.id)).status == "bounced"
    with pytest.raises(ValidationError, match="unreachable since"):
        await send(runtime, tenant_id, row.customer_id, key="k2")
    inbound = InboundEvent(
        channel="fakechat", provider_event_id="in-1", occurred_at=T0, identity=ProfileInput(external_id="fakechat-user"), kind="message_in"
    )
    await ingest(runtime, tenant_id, inbound)
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert (await send(runtime, tenant_id, row.customer_id, key="k2")).status == "queued"


async def test_a_complaint_that_withdraws_consent_opts_the_customer_out(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    await receipt(runtime, tenant_id, row.provider_message_id, "delivered", 1)
    await receipt(runtime, tenant_id, row.provider_message_id, "complained", 9, withdraw_consent=True)
    assert (await status_of(runtime, tenant_id, row.id)).status == "complained"
    async with runtime.session(tenant_id) as s:
        found = await s.get(Consent, (tenant_id, row.customer_id, "fakechat"))
    assert found is not None and (found.status, found.source) == ("opted_out", "receipt:complained")
    with pytest.raises(outbox.ConsentError):
        await send(runtime, tenant_id, row.customer_id, key="k3")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "opened"}, "receipt status must be one of"),
        ({"status": "delivered", "unreachable": True}, "go with a failure receipt"),
        ({"status": "read", "occurred_at": dt.datetime(2026, 5, 1, 8, 0)}, "time zone"),
        ({"status": "read", "provider_message_id": ""}, "provider_event_id"),
    ],
)
async def test_a_receipt_core_cannot_apply_is_refused_before_anything_is_stored(
    runtime: Runtime, tenant_id: uuid.UUID, fields: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {"channel": "fakechat", "provider_message_id": "pm-1", "occurred_at": T0, **fields}
    with pytest.raises(ValidationError, match=message):
        await ingest(runtime, tenant_id, Receipt(**values))
    assert await inbox.depth(runtime, tenant_id) == {"waiting": 0, "working": 0, "finished": 0, "failed": 0, "oldest_waiting_age_s": None}


async def test_graphql_shows_the_status_enum_history_and_a_plugins_message_field(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    await receipt(runtime, tenant_id, row.provider_message_id, "read", 3)
    await receipt(runtime, tenant_id, row.provider_message_id, "delivered", 1)
    query = """query($id: ID!) { message(id: $id) {
        status providerMessageId receiptCount statusHistory { status source applied at } } }"""
    body = await graphql(query, {"id": to_global_id("Message", row.id)})
    assert await graphql(query, {"id": to_global_id("Message", row.id)}) == body, "the compiled plan answers the same"
    message = body["data"]["message"]
    assert (message["status"], message["providerMessageId"], message["receiptCount"]) == ("READ", row.provider_message_id, 2)
    assert [(e["status"], e["source"], e["applied"]) for e in message["statusHistory"]] == [
        ("QUEUED", "OUTBOX", True),
        ("SENDING", "OUTBOX", True),
        ("SENT", "OUTBOX", True),
        ("READ", "RECEIPT", True),
        ("DELIVERED", "RECEIPT", False),
    ]
    assert dt.datetime.fromisoformat(message["statusHistory"][3]["at"]) == T0 + dt.timedelta(minutes=3)
    listed = await graphql("{ outboxMessages(status: READ) { status } sent: outboxMessages(status: SENT) { status } }")
    assert listed["data"] == {"outboxMessages": [{"status": "READ"}], "sent": []}
    refused = await graphql('{ outboxMessages(status: "read") { status } }', ok=False)
    assert "MessageStatus" in refused["errors"][0]["message"]


async def test_an_identity_shows_when_it_became_unreachable(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    await receipt(runtime, tenant_id, row.provider_message_id, "failed", 2, unreachable=True)
    body = await graphql(
        "query($id: ID!) { customer(id: $id) { identities { channel unreachableAt } } }", {"id": to_global_id("Customer", row.customer_id)}
    )
    (identity,) = body["data"]["customer"]["identities"]
    assert dt.datetime.fromisoformat(identity["unreachableAt"]) == T0 + dt.timedelta(minutes=2)


async def test_outbox_depth_counts_delivered_and_read_as_finished_and_bounced_as_failed(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    first = await sent_message(runtime, tenant_id)
    second = await sent_message(runtime, tenant_id, key="k2")
    assert first.provider_message_id is not None and second.provider_message_id is not None
    await receipt(runtime, tenant_id, first.provider_message_id, "read")
    await receipt(runtime, tenant_id, second.provider_message_id, "bounced")
    depth = await outbox.depth(runtime, tenant_id)
    assert (depth["finished"], depth["failed"]) == (1, 1)


async def test_a_receipt_reaches_message_status_changed_subscribers(
    runtime: Runtime, tenant_id: uuid.UUID, server: str, admin_key: str
) -> None:
    row = await sent_message(runtime, tenant_id)
    assert row.provider_message_id is not None
    query = "subscription { messageStatusChanged { messageId status previousStatus source occurredAt providerMessageId } }"
    ws = await subscribe(server, query, key=admin_key)
    try:
        await receipt(runtime, tenant_id, row.provider_message_id, "delivered", 4)
        data = (await next_data(ws))["messageStatusChanged"]
    finally:
        await ws.close()
    assert data == {
        "messageId": to_global_id("Message", row.id),
        "status": "DELIVERED",
        "previousStatus": "SENT",
        "source": "RECEIPT",
        "occurredAt": (T0 + dt.timedelta(minutes=4)).isoformat(),
        "providerMessageId": row.provider_message_id,
    }


async def test_listing_messages_with_their_history_costs_the_same_statements_for_one_or_five(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    from guanxi.testing.sql import count_statements

    query = "{ outboxMessages(first: 50) { status providerMessageId statusHistory { status at source } } }"
    counts = []
    for key in ("k1", "k2", "k3", "k4", "k5"):
        row = await sent_message(runtime, tenant_id, key=key)
        assert row.provider_message_id is not None
        await receipt(runtime, tenant_id, row.provider_message_id, "delivered")
        if key in ("k1", "k5"):
            await graphql(query)  # the API key's first use is looked up and stamped once
            await runtime.drain()  # the stamp is written beside the request: let it finish first
            with count_statements(runtime.engine) as statements:
                body = await graphql(query)
            assert len(body["data"]["outboxMessages"]) == int(key[1])
            assert all(len(m["statusHistory"]) == 4 for m in body["data"]["outboxMessages"])
            counts.append(len(statements))
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("receipts", list(itertools.permutations(("delivered", "failed", "bounced", "read", "complained", "sent"), 3)))
def test_any_order_of_the_same_receipts_ends_in_the_same_status(receipts: tuple[str, ...]) -> None:
    """The status after a set of receipts is the highest-ranked of them, whatever their order."""
    from guanxi.core.queues.lifecycle import RANK, supersedes

    status = "sent"
    for reported in receipts:
        if supersedes(status, reported):
            status = reported
    assert status == max(("sent", *receipts), key=RANK.__getitem__)
    assert not supersedes("sending", "delivered") and not supersedes("queued", "read"), "receipts never touch an unsent message"


async def test_a_failure_reported_after_delivery_fails_the_message_and_a_late_delivered_does_not_undo_it(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    first = await sent_message(runtime, tenant_id)
    second = await sent_message(runtime, tenant_id, key="k2")
    assert first.provider_message_id is not None and second.provider_message_id is not None
    await receipt(runtime, tenant_id, first.provider_message_id, "delivered", 1)
    await receipt(runtime, tenant_id, first.provider_message_id, "failed", 2, error="async bounce")
    await receipt(runtime, tenant_id, second.provider_message_id, "failed", 2, error="async bounce")
    await receipt(runtime, tenant_id, second.provider_message_id, "delivered", 1)
    assert [(await status_of(runtime, tenant_id, m.id)).status for m in (first, second)] == ["failed", "failed"]
