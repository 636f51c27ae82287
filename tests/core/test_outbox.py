"""The durable outbox: sendMessage through a channel adapter, retries, dead letters, consent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select

from guanxi import hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.domain.channels import (
    Capabilities,
    Channel,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileInput,
    TransientDeliveryError,
)
from guanxi.core.domain.models import Interaction, OutboxMessage
from guanxi.core.queues import outbox
from guanxi.core.runtime import Runtime
from guanxi.core.services import consent, customers, identities, interactions


class FakeChat(Channel):
    """A channel whose behaviour each test scripts: a list of outcomes, one per send."""

    name = "fakechat"
    capabilities = Capabilities(send_text=True, max_text_length=20)

    def __init__(self) -> None:
        self.outcomes: list[str] = []  # "ok", "transient", "permanent", "slow"
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "transient":
            raise TransientDeliveryError("provider busy", provider_code="45009")
        if outcome == "permanent":
            raise PermanentDeliveryError("recipient blocked us", provider_code="41001")
        if outcome == "slow":
            await asyncio.sleep(5)
        self.sent.append(message)
        return DeliveryResult(provider_message_id=f"pm-{len(self.sent)}")


class ProfiledChat(FakeChat):
    name = "profiled"
    capabilities = Capabilities(send_text=True, profile_fetch=True)

    async def fetch_profile(self, external_id: str, *, tenant_id: uuid.UUID) -> ProfileInput | None:
        return ProfileInput(external_id=external_id, nickname="Fresh Name", follower_count=120_000)


class WindowedChat(FakeChat):
    name = "windowed"
    capabilities = Capabilities(send_text=True, messaging_window_s=3600)


class ReadOnly(Channel):
    name = "readonly"
    capabilities = Capabilities(receive=True)

    async def send(self, message: OutboundMessage) -> DeliveryResult:  # pragma: no cover - never called
        raise AssertionError


class ChannelsPlugin:
    statuses: ClassVar[list[tuple[str, int]]] = []

    def __init__(self) -> None:
        self.chat, self.windowed = FakeChat(), WindowedChat()
        self.statuses = []

    @hookimpl
    def guanxi_channels(self) -> list[Channel]:
        return [self.chat, self.windowed, ReadOnly(), ProfiledChat()]

    @hookimpl
    def guanxi_message_status_changed(self, event: Any) -> None:
        self.statuses.append((event.status, event.attempts))


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chans": ChannelsPlugin()}


@pytest.fixture
def plugin(runtime: Runtime) -> ChannelsPlugin:
    return runtime.pm.get_plugin("chans")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "backoff", lambda attempt: 0.0)


async def customer_on(runtime: Runtime, tenant_id: uuid.UUID, *channels: str) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="Recipient"))
        for ch in channels:
            await identities.attach_identity(tx, c.id, identities.IdentityInput(channel=ch, external_id=f"{ch}-user"))
    return c.id


async def send(
    runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID, text: str = "hello", key: str = "k1", channel: str = "fakechat"
) -> OutboxMessage:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row, _ = await outbox.send_message(tx, outbox.SendRequest(customer_id=customer_id, channel=channel, text=text, idempotency_key=key))
    return row


async def status_of(runtime: Runtime, tenant_id: uuid.UUID, message_id: uuid.UUID) -> OutboxMessage:
    async with runtime.session(tenant_id) as s:
        row = await s.get(OutboxMessage, (tenant_id, message_id))
        assert row is not None
        return row


pytestmark = pytest.mark.plugins("chans")


async def test_a_message_is_queued_with_its_interaction_then_sent_once(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin
) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat")
    row = await send(runtime, tenant_id, cid)
    assert row.status == "queued"
    assert await outbox.run_once(runtime, tenant_id=tenant_id) == 1
    sent = await status_of(runtime, tenant_id, row.id)
    assert (sent.status, sent.provider_message_id, sent.attempts) == ("sent", "pm-1", 1)
    assert [m.recipient for m in plugin.chat.sent] == ["fakechat-user"]
    assert plugin.statuses == [("queued", 0), ("sending", 1), ("sent", 1)]
    assert await outbox.run_once(runtime, tenant_id=tenant_id) == 0  # nothing sent twice
    async with runtime.session(tenant_id) as s:
        out = (await s.execute(select(Interaction).where(Interaction.kind == "message_out"))).scalar_one()
        assert (out.direction, out.text, out.payload["outbox_id"]) == ("out", "hello", str(row.id))


async def test_one_idempotency_key_gives_one_message(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat")
    first = await send(runtime, tenant_id, cid, key="same")
    again = await send(runtime, tenant_id, cid, key="same")
    assert first.id == again.id
    with pytest.raises(ConflictError, match="already used for a different message"):
        await send(runtime, tenant_id, cid, text="other text", key="same")
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 1
        assert (await s.execute(select(func.count()).select_from(Interaction))).scalar_one() == 1


async def test_transient_errors_are_retried_until_sent(runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat")
    plugin.chat.outcomes = ["transient", "transient", "ok"]
    row = await send(runtime, tenant_id, cid)
    for _ in range(3):
        await outbox.run_once(runtime, tenant_id=tenant_id)
    done = await status_of(runtime, tenant_id, row.id)
    assert (done.status, done.attempts, done.last_error) == ("sent", 3, None)
    assert len(plugin.chat.sent) == 1


async def test_a_channel_that_times_out_is_retried_then_dead_lettered_with_the_error(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin
) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat")
    plugin.chat.outcomes = ["slow"] * 3
    row = await send(runtime, tenant_id, cid)
    deliverer = outbox.Deliverer(runtime, send_timeout_s=0.05, max_attempts=3)
    for _ in range(4):
        await outbox.run_once(runtime, deliverer, tenant_id=tenant_id)
    dead = await status_of(runtime, tenant_id, row.id)
    assert (dead.status, dead.attempts) == ("failed", 3)
    assert "did not answer within 0.05 s" in (dead.last_error or "")
    assert plugin.statuses[-1] == ("failed", 3)
    assert await outbox.retry(runtime, tenant_id, row.id)
    await outbox.run_once(runtime, tenant_id=tenant_id)
    assert (await status_of(runtime, tenant_id, row.id)).status == "sent"


async def test_a_permanent_error_is_not_retried(runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat")
    plugin.chat.outcomes = ["permanent"]
    row = await send(runtime, tenant_id, cid)
    await outbox.run_once(runtime, tenant_id=tenant_id)
    failed = await status_of(runtime, tenant_id, row.id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "recipient blocked us" in (failed.last_error or "")
    assert await outbox.run_once(runtime, tenant_id=tenant_id) == 0


async def test_a_message_claimed_by_a_worker_that_died_is_sent_after_its_lease(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin
) -> None:
    from guanxi.core.queues.queue import claim

    cid = await customer_on(runtime, tenant_id, "fakechat")
    row = await send(runtime, tenant_id, cid)
    await claim(runtime.engine, OutboxMessage, due_status="queued", busy_status="sending", limit=5, lease_s=0.0, tenant_id=tenant_id)
    assert (await status_of(runtime, tenant_id, row.id)).status == "sending"
    await outbox.run_once(runtime, tenant_id=tenant_id)
    assert (await status_of(runtime, tenant_id, row.id)).status == "sent"
    assert [m.idempotency_key for m in plugin.chat.sent] == ["k1"]


async def test_withdrawn_consent_refuses_to_send_and_writes_nothing(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await consent.set_consent(tx, cid, "fakechat", "opted_out", "replied STOP")
    with pytest.raises(outbox.ConsentError, match="opted out of fakechat"):
        await send(runtime, tenant_id, cid)
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 0


@pytest.mark.parametrize(
    ("channel", "text", "error"),
    [
        ("readonly", "hi", "cannot send text"),
        ("nochannel", "hi", "no channel 'nochannel' is enabled"),
        ("fakechat", "x" * 21, "takes at most 20"),
        ("windowed", "hi", "messaging window"),
    ],
)
async def test_capabilities_are_checked_before_anything_is_written(
    runtime: Runtime, tenant_id: uuid.UUID, channel: str, text: str, error: str
) -> None:
    cid = await customer_on(runtime, tenant_id, "fakechat", "readonly", "windowed")
    with pytest.raises(Exception, match=error):
        await send(runtime, tenant_id, cid, text=text, channel=channel)


async def test_the_messaging_window_opens_with_the_customers_message(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    cid = await customer_on(runtime, tenant_id, "windowed")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await interactions.record_interaction(
            tx, interactions.InteractionInput(customer_id=cid, channel="windowed", kind="message_in", text="hi")
        )
    assert (await send(runtime, tenant_id, cid, channel="windowed")).status == "queued"


async def test_a_customer_without_an_account_on_the_channel_cannot_be_messaged(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    cid = await customer_on(runtime, tenant_id)
    with pytest.raises(ValidationError, match="no fakechat account"):
        await send(runtime, tenant_id, cid)


async def test_send_message_over_graphql_reports_status_and_typed_errors(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin, graphql: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    from guanxi.graphql.ids import to_global_id

    cid = await customer_on(runtime, tenant_id, "fakechat")
    mutation = """mutation($c: ID!, $t: String!, $k: String!) {
      sendMessage(customerId: $c, channel: "fakechat", text: $t, idempotencyKey: $k) {
        message { id status } created errors { field code message } } }"""
    ok = (await graphql(mutation, {"c": to_global_id("Customer", cid), "t": "hi", "k": "g1"}))["data"]["sendMessage"]
    assert (ok["message"]["status"], ok["created"], ok["errors"]) == ("QUEUED", True, [])
    long = (await graphql(mutation, {"c": to_global_id("Customer", cid), "t": "x" * 50, "k": "g2"}))["data"]["sendMessage"]
    assert long["errors"][0]["field"] == "text" and long["message"] is None
    await outbox.run_once(runtime, tenant_id=tenant_id)
    status = await graphql("query($id: ID!) { message(id: $id) { status providerMessageId } }", {"id": ok["message"]["id"]})
    assert status["data"]["message"] == {"status": "SENT", "providerMessageId": "pm-1"}
    queues = await graphql("{ queues { outbox { waiting finished failed } } }")
    assert queues["data"]["queues"]["outbox"] == {"waiting": 0, "finished": 1, "failed": 0}


async def test_an_identity_profile_is_refreshed_from_its_channel(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.domain.channels import CapabilityError
    from guanxi.core.domain.models import Identity
    from guanxi.core.services.profiles import refresh_profile

    cid = await customer_on(runtime, tenant_id, "profiled", "fakechat")
    async with runtime.session(tenant_id) as s:
        ids = {i.channel: i.id for i in (await s.execute(select(Identity).where(Identity.customer_id == cid))).scalars()}
    refreshed = await refresh_profile(runtime, RequestContext(tenant_id=tenant_id), ids["profiled"])
    assert (refreshed.nickname, refreshed.follower_count) == ("Fresh Name", 120_000)
    with pytest.raises(CapabilityError, match="cannot fetch profiles"):
        await refresh_profile(runtime, RequestContext(tenant_id=tenant_id), ids["fakechat"])


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_delivery_attempts_count_by_channel_and_outcome_and_a_failed_message_is_a_dead_letter(
    runtime: Runtime, tenant_id: uuid.UUID, plugin: ChannelsPlugin
) -> None:
    """A transient failure then a success count one retry and one sent; a permanent failure
    counts one failed and shows as a dead letter of the channel (read from the database)."""
    from guanxi.metrics import queue_families

    def dead(families: list[Any]) -> float:
        (family,) = [f for f in families if f.name == "guanxi_queue_dead_letters"]
        return sum(s.value for s in family.samples if s.labels == {"queue": "outbox", "channel": "fakechat"})

    before = {o: _sample("guanxi_outbox_attempts_total", channel="fakechat", outcome=o) for o in ("sent", "retry", "failed")}
    dead_before = dead(await queue_families(runtime))
    cid = await customer_on(runtime, tenant_id, "fakechat")
    plugin.chat.outcomes = ["transient", "ok", "permanent"]
    await send(runtime, tenant_id, cid, key="m1")
    assert await outbox.run_once(runtime, tenant_id=tenant_id) == 1
    assert await outbox.run_once(runtime, tenant_id=tenant_id) == 1
    await send(runtime, tenant_id, cid, key="m2")
    assert await outbox.run_once(runtime, tenant_id=tenant_id) == 1
    after = {o: _sample("guanxi_outbox_attempts_total", channel="fakechat", outcome=o) for o in ("sent", "retry", "failed")}
    assert {o: after[o] - before[o] for o in after} == {"sent": 1, "retry": 1, "failed": 1}
    assert dead(await queue_families(runtime)) - dead_before == 1
    assert _sample("guanxi_outbox_send_seconds_count", channel="fakechat") >= 3
