"""The channel contract suite: what every channel adapter must do, as tests a plugin runs.

Subclass :class:`ChannelContract` in your plugin's tests (the class name must start with
``Test``), point it at your channel and your fake provider, and pytest runs every contract test
against your adapter, through core's real outbox and inbox, on the kit's database::

    class TestPigeonContract(ChannelContract):
        channel_name = "pigeon"
        plugins = ("pigeon",)
        webhook_path = "/webhooks/pigeon/main"

        @pytest.fixture
        def fake_provider(self, fake_pigeon): ...     # your fake provider, as self.provider
        @pytest.fixture
        def plugin_config(self, fake_pigeon): ...     # {"pigeon": {...settings...}}

        def arrange_success(self) -> None: ...            # the next send is accepted
        def arrange_transient_failure(self) -> None: ...  # ... fails, worth retrying (429, 5xx)
        def arrange_permanent_failure(self) -> None: ...  # ... is refused for good (4xx)
        def arrange_slow(self) -> None: ...               # optional: ... takes longer than 1 s
        def webhook_body(self, event_id, sender_id) -> bytes: ...  # receiving channels
        def sign(self, body) -> dict[str, str]: ...       # the signature headers for a body
        def receipt_body(self, event_id, provider_message_id, status) -> bytes: ...  # receipts

Sending tests are skipped for a channel that cannot send text, webhook tests for one that does
not ``receive`` or sets no ``webhook_path``, the slow-provider test when ``arrange_slow`` is not
implemented, the too-long test when ``max_text_length`` is None, and the receipt tests when
``receipt_body`` is not implemented (or a status is not in ``receipt_statuses``).

Every attribute and helper below is part of the kit's reference (``docs/reference/testing.md``,
generated from these docstrings; a test fails when one is added without a docstring).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import pytest

from guanxi.core.domain.channels import (
    Capabilities,
    Channel,
    DeliveryError,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
)

if TYPE_CHECKING:
    import httpx

    from guanxi.core.domain.models import Interaction, OutboxMessage
    from guanxi.core.runtime import Runtime

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

try:  # mark the async tests for pytest-asyncio's strict mode too (auto mode needs no mark)
    import pytest_asyncio  # noqa: F401

    _asyncio_marks = [pytest.mark.asyncio]
except ImportError:  # pragma: no cover
    _asyncio_marks = []


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request body and the headers that go with it."""

    body: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class ChannelContract:
    """Base class of a channel plugin's contract tests (see the module docstring)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = _asyncio_marks

    #: The channel's ``name`` (a key of ``runtime.channels``).
    channel_name: ClassVar[str]
    #: The plugins to enable for these tests (entry-point names); default: the ``plugins`` marker.
    plugins: ClassVar[Sequence[str]] = ()
    #: The path of the channel's inbound webhook route; None skips the webhook tests.
    webhook_path: ClassVar[str | None] = None
    #: The recipient (the account's external id on the channel) of the messages the tests send.
    recipient: ClassVar[str] = "contract-recipient"
    #: Bodies that must be refused with 400 (each is signed correctly); override for a provider
    #: that does not post JSON.
    malformed_bodies: ClassVar[Sequence[bytes]] = (b"not json", b'{"truncated": ', b"{}", b"[1, 2]")
    #: The receipt statuses the channel reports (a subset of ``sent``, ``delivered``, ``read``,
    #: ``failed``, ``bounced``, ``complained``); receipt tests that need another one are skipped.
    receipt_statuses: ClassVar[Sequence[str]] = ("delivered", "read", "failed")

    #: The fake provider (the ``fake_provider`` fixture), for the ``arrange_*`` methods.
    provider: Any = None
    #: The test's tenant (set by the ``channel`` fixture), the tenant of :meth:`message`'s messages.
    tenant_id: uuid.UUID | None = None

    # -- what the plugin provides -------------------------------------------------------------

    @pytest.fixture
    def fake_provider(self) -> Any:
        """Override: return your fake provider; the tests keep it as ``self.provider``."""
        return None

    @pytest.fixture(autouse=True)
    def _bind_provider(self, fake_provider: Any) -> None:
        # autouse inside this class only: it applies to the contract's tests, nowhere else
        self.provider = fake_provider

    @pytest.fixture
    def plugin_names(self, request: pytest.FixtureRequest) -> list[str]:
        """The plugins the kit's ``runtime`` enables: ``plugins``, else the ``plugins`` marker."""
        marker = request.node.get_closest_marker("plugins")
        return list(self.plugins) or (list(marker.args) if marker else [])

    @pytest.fixture
    def channel(self, runtime: Runtime, tenant_id: uuid.UUID) -> Channel:
        """The adapter under test: the enabled channel named ``channel_name``. Messages of
        :meth:`message` belong to the test's tenant, which holds the channel accounts of the
        test's plugin config."""
        self.tenant_id = tenant_id
        assert self.channel_name in runtime.channels, f"no channel {self.channel_name!r}; enabled: {sorted(runtime.channels)}"
        return runtime.channels[self.channel_name]

    def arrange_success(self) -> None:
        """Make the provider accept the next message (with a message id)."""
        raise NotImplementedError("implement arrange_success() against your fake provider")

    def arrange_transient_failure(self) -> None:
        """Make the provider fail the next message in a way worth retrying (429, 5xx, timeout)."""
        raise NotImplementedError("implement arrange_transient_failure() against your fake provider")

    def arrange_permanent_failure(self) -> None:
        """Make the provider refuse the next message for good (blocked recipient, bad content)."""
        raise NotImplementedError("implement arrange_permanent_failure() against your fake provider")

    def arrange_slow(self) -> None:
        """Optional: make the provider take more than one second to answer the next message."""
        pytest.skip("arrange_slow() is not implemented")

    def check_delivered(self, message: OutboundMessage, result: DeliveryResult) -> None:
        """Optional: assert what the provider received for ``message`` (recipient, text,
        idempotency key)."""

    def webhook_body(self, event_id: str, sender_id: str) -> bytes:
        """A valid inbound delivery: a text message from ``sender_id`` with this event id."""
        raise NotImplementedError("implement webhook_body() for a channel that receives")

    def sign(self, body: bytes) -> dict[str, str]:
        """The headers that authenticate ``body`` as the provider would sign it."""
        raise NotImplementedError("implement sign() for a channel that receives")

    def receipt_body(self, event_id: str, provider_message_id: str, status: str) -> bytes:
        """Optional: a valid webhook body in which the provider reports ``status`` (one of
        ``receipt_statuses``) for the message it accepted with ``provider_message_id``, under
        the provider event id ``event_id``. Without it the receipt tests are skipped."""
        pytest.skip("receipt_body() is not implemented (the channel reports no receipts)")

    # -- helpers --------------------------------------------------------------------------------

    def message(self, text: str = "Hello from the contract suite") -> OutboundMessage:
        """An :class:`OutboundMessage` to ``recipient`` with this text, a fresh id, tenant,
        customer and idempotency key, as the outbox would hand it to ``channel.send``."""
        return OutboundMessage(
            id=uuid.uuid4(),
            tenant_id=self.tenant_id or uuid.uuid4(),
            customer_id=uuid.uuid4(),
            channel=self.channel_name,
            recipient=self.recipient,
            text=text,
            idempotency_key=f"contract-{secrets.token_hex(8)}",
        )

    def signed(self, body: bytes) -> WebhookRequest:
        """``body`` with the headers :meth:`sign` gives it."""
        return WebhookRequest(body=body, headers=self.sign(body))

    async def post(self, client: httpx.AsyncClient, request: WebhookRequest) -> httpx.Response:
        """POST ``request`` to ``webhook_path`` (with ``content-type: application/json`` unless
        the request's headers set another)."""
        assert self.webhook_path is not None
        headers = {"content-type": "application/json", **request.headers}
        return await client.post(self.webhook_path, content=request.body, headers=headers)

    async def customer(self, runtime: Runtime, tenant_id: uuid.UUID) -> uuid.UUID:
        """A new customer with an account (``recipient``) on the channel; returns its id."""
        from guanxi.core.base.context import RequestContext
        from guanxi.core.services import customers, identities

        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            c = await customers.create_customer(tx, customers.CustomerInput(display_name="Contract customer"))
            await identities.attach_identity(tx, c.id, identities.IdentityInput(channel=self.channel_name, external_id=self.recipient))
        return c.id

    async def queue(
        self, runtime: Runtime, tenant_id: uuid.UUID, text: str = "Hello through the outbox", *, customer_id: uuid.UUID | None = None
    ) -> OutboxMessage:
        """Queue a message through core's ``send_message`` (consent and capabilities checked) to
        ``customer_id``, by default a new customer from :meth:`customer`; return the outbox row."""
        from guanxi.core.base.context import RequestContext
        from guanxi.core.queues import outbox

        customer_id = customer_id or await self.customer(runtime, tenant_id)
        request = outbox.SendRequest(customer_id=customer_id, channel=self.channel_name, text=text, idempotency_key=secrets.token_hex(8))
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            row, _ = await outbox.send_message(tx, request)
        return row

    async def outbox_row(self, runtime: Runtime, tenant_id: uuid.UUID, message_id: uuid.UUID) -> OutboxMessage:
        """The outbox row of a message as it is now (status, attempts, errors, status history)."""
        from guanxi.core.domain.models import OutboxMessage

        async with runtime.session(tenant_id) as s:
            row = await s.get(OutboxMessage, (tenant_id, message_id))
            assert row is not None
            return row

    async def inbox_count(self, runtime: Runtime, tenant_id: uuid.UUID) -> int:
        """How many inbox rows (events and receipts) the tenant has on this channel."""
        from sqlalchemy import select

        from guanxi.core.domain.models import InboxEvent

        async with runtime.session(tenant_id) as s:
            return len((await s.execute(select(InboxEvent.id).where(InboxEvent.channel == self.channel_name))).all())

    async def interactions(self, runtime: Runtime, tenant_id: uuid.UUID) -> list[Interaction]:
        """The tenant's interactions on this channel, in and out."""
        from sqlalchemy import select

        from guanxi.core.domain.models import Interaction

        async with runtime.session(tenant_id) as s:
            return list((await s.execute(select(Interaction).where(Interaction.channel == self.channel_name))).scalars())

    async def sent(self, runtime: Runtime, tenant_id: uuid.UUID) -> OutboxMessage:
        """A message the provider accepted: queued, delivered by one outbox batch, ``sent`` with
        the provider's message id (the fake provider is arranged to succeed)."""
        from guanxi.core.queues import outbox

        self.arrange_success()
        row = await self.queue(runtime, tenant_id)
        await outbox.run_once(runtime, tenant_id=tenant_id)
        sent = await self.outbox_row(runtime, tenant_id, row.id)
        assert sent.status == "sent" and sent.provider_message_id, (sent.status, sent.last_error)
        return sent

    async def report(self, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, event_id: str, pid: str, status: str) -> None:
        """Post a signed receipt (:meth:`receipt_body`) and run one inbox batch."""
        from guanxi.core.queues import inbox

        if status not in self.receipt_statuses:
            pytest.skip(f"the channel does not report {status!r} (receipt_statuses)")
        response = await self.post(client, self.signed(self.receipt_body(event_id, pid, status)))
        assert 200 <= response.status_code < 300, response.text
        await inbox.run_once(runtime, tenant_id=tenant_id)

    def _needs_send(self, channel: Channel) -> None:
        if not channel.capabilities.send_text:
            pytest.skip(f"channel {channel.name!r} does not send text")

    def _needs_webhook(self, channel: Channel) -> None:
        if not channel.capabilities.receive or self.webhook_path is None:
            pytest.skip(f"channel {channel.name!r} declares no webhook (receive=False or webhook_path=None)")

    # -- the contract: shape --------------------------------------------------------------------

    async def test_name_and_capabilities_are_well_formed(self, channel: Channel) -> None:
        assert isinstance(channel, Channel)
        assert channel.name == self.channel_name
        assert NAME.match(channel.name), f"channel name {channel.name!r} must be lower_snake_case, at most 32 characters"
        caps = channel.capabilities
        assert isinstance(caps, Capabilities), "capabilities must be a guanxi.core.domain.channels.Capabilities"
        assert msgspec.convert(msgspec.to_builtins(caps), Capabilities) == caps
        assert caps.max_text_length is None or caps.max_text_length > 0
        assert caps.messaging_window_s is None or caps.messaging_window_s > 0
        assert caps.receive or caps.send_text or caps.send_media, "a channel that neither receives nor sends does nothing"

    # -- the contract: sending --------------------------------------------------------------------

    async def test_send_returns_the_provider_message_id_when_the_provider_accepts(self, channel: Channel) -> None:
        self._needs_send(channel)
        self.arrange_success()
        message = self.message()
        result = await channel.send(message)
        assert isinstance(result, DeliveryResult)
        assert isinstance(result.provider_message_id, str) and result.provider_message_id
        self.check_delivered(message, result)

    async def test_a_transient_provider_failure_raises_a_transient_delivery_error(self, channel: Channel) -> None:
        self._needs_send(channel)
        self.arrange_transient_failure()
        with pytest.raises(DeliveryError) as raised:
            await channel.send(self.message())
        assert raised.value.transient, f"{type(raised.value).__name__} should be transient (TransientDeliveryError)"

    async def test_a_permanent_provider_failure_raises_a_permanent_delivery_error(self, channel: Channel) -> None:
        self._needs_send(channel)
        self.arrange_permanent_failure()
        with pytest.raises(PermanentDeliveryError):
            await channel.send(self.message())

    async def test_a_too_long_text_is_refused_by_send_message_before_anything_is_stored(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        from guanxi.core.base.errors import ValidationError

        self._needs_send(channel)
        limit = channel.capabilities.max_text_length
        if limit is None:
            pytest.skip("the channel declares no max_text_length")
        with pytest.raises(ValidationError, match="at most"):
            await self.queue(runtime, tenant_id, text="x" * (limit + 1))
        assert [i for i in await self.interactions(runtime, tenant_id) if i.direction == "out"] == []

    # -- the contract: end to end through the outbox ------------------------------------------------

    async def test_a_queued_message_is_delivered_by_the_outbox_and_marked_sent(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        from guanxi.core.queues import outbox

        self._needs_send(channel)
        self.arrange_success()
        row = await self.queue(runtime, tenant_id)
        assert await outbox.run_once(runtime, tenant_id=tenant_id) == 1
        sent = await self.outbox_row(runtime, tenant_id, row.id)
        assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
        assert sent.provider_message_id

    async def test_a_transient_failure_in_the_outbox_queues_the_message_again(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        from guanxi.core.queues import outbox

        self._needs_send(channel)
        self.arrange_transient_failure()
        row = await self.queue(runtime, tenant_id)
        await outbox.run_once(runtime, tenant_id=tenant_id)
        again = await self.outbox_row(runtime, tenant_id, row.id)
        assert (again.status, again.attempts, again.provider_message_id) == ("queued", 1, None)
        assert again.last_error

    async def test_a_permanent_failure_in_the_outbox_fails_the_message_without_retry(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        from guanxi.core.queues import outbox

        self._needs_send(channel)
        self.arrange_permanent_failure()
        row = await self.queue(runtime, tenant_id)
        await outbox.run_once(runtime, tenant_id=tenant_id)
        failed = await self.outbox_row(runtime, tenant_id, row.id)
        assert (failed.status, failed.attempts) == ("failed", 1)
        assert failed.last_error and "PermanentDeliveryError" in failed.last_error

    async def test_a_slow_provider_times_out_and_the_message_is_retried(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        from guanxi.core.queues import outbox

        self._needs_send(channel)
        self.arrange_slow()
        row = await self.queue(runtime, tenant_id)
        await outbox.run_once(runtime, outbox.Deliverer(runtime, send_timeout_s=0.3), tenant_id=tenant_id)
        again = await self.outbox_row(runtime, tenant_id, row.id)
        assert (again.status, again.attempts) == ("queued", 1)

    # -- the contract: receiving --------------------------------------------------------------------

    async def test_a_signed_webhook_is_acknowledged_and_stored_in_the_inbox(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self._needs_webhook(channel)
        response = await self.post(client, self.signed(self.webhook_body("contract-evt-1", "contract-sender")))
        assert 200 <= response.status_code < 300, response.text
        assert await self.inbox_count(runtime, tenant_id) == 1

    async def test_the_same_delivery_three_times_gives_one_interaction(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        from guanxi.core.queues import inbox

        self._needs_webhook(channel)
        body = self.webhook_body("contract-evt-2", "contract-sender")
        for _ in range(3):  # providers retry; each retry is signed afresh
            response = await self.post(client, self.signed(body))
            assert 200 <= response.status_code < 300, response.text
        assert await self.inbox_count(runtime, tenant_id) == 1
        await inbox.run_once(runtime, tenant_id=tenant_id)
        received = await self.interactions(runtime, tenant_id)
        assert len(received) == 1
        assert received[0].direction == "in"

    async def test_a_bad_or_missing_signature_is_401_and_stores_nothing(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self._needs_webhook(channel)
        body = self.webhook_body("contract-evt-3", "contract-sender")
        other = self.webhook_body("contract-evt-4", "contract-sender")
        for request in (WebhookRequest(body=body, headers=self.sign(other)), WebhookRequest(body=body)):
            response = await self.post(client, request)
            assert response.status_code == 401, response.text
        assert await self.inbox_count(runtime, tenant_id) == 0

    async def test_a_malformed_body_is_400_with_a_reason_and_stores_nothing(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self._needs_webhook(channel)
        for body in self.malformed_bodies:
            response = await self.post(client, self.signed(body))
            assert response.status_code == 400, (body, response.status_code, response.text)
            assert response.text.strip(), f"400 without a reason for {body!r}"
        assert await self.inbox_count(runtime, tenant_id) == 0

    # -- the contract: receipts ---------------------------------------------------------------------

    def _needs_receipts(self, channel: Channel) -> None:
        self._needs_send(channel)
        self._needs_webhook(channel)
        self.receipt_body("probe", "probe", self.receipt_statuses[0])  # skips when not implemented

    async def test_a_receipt_for_an_unknown_message_is_acknowledged_kept_and_changes_nothing(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        """A report on a provider id no message has (yet) is stored and retried, not lost."""
        from sqlalchemy import select

        from guanxi.core.domain.models import InboxEvent

        self._needs_receipts(channel)
        await self.report(client, runtime, tenant_id, "contract-rcpt-0", "contract-unknown-id", self.receipt_statuses[0])
        async with runtime.session(tenant_id) as s:
            (row,) = (await s.execute(select(InboxEvent).where(InboxEvent.channel == self.channel_name))).scalars()
        assert row.status == "pending", "an unmatched receipt stays in the inbox to be retried"
        assert row.last_error and "contract-unknown-id" in row.last_error
        assert await self.interactions(runtime, tenant_id) == []

    async def test_the_same_receipt_three_times_is_stored_and_applied_once(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self._needs_receipts(channel)
        row = await self.sent(runtime, tenant_id)
        assert row.provider_message_id
        status = next((s for s in self.receipt_statuses if s in ("delivered", "read")), self.receipt_statuses[0])
        for _ in range(3):
            await self.report(client, runtime, tenant_id, "contract-rcpt-1", row.provider_message_id, status)
        assert await self.inbox_count(runtime, tenant_id) == 1
        after = await self.outbox_row(runtime, tenant_id, row.id)
        assert after.status == status
        assert [e["status"] for e in after.status_history if e["source"] == "receipt"] == [status]

    async def test_receipts_out_of_order_never_move_the_status_back(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self._needs_receipts(channel)
        row = await self.sent(runtime, tenant_id)
        assert row.provider_message_id
        await self.report(client, runtime, tenant_id, "contract-rcpt-2", row.provider_message_id, "read")
        await self.report(client, runtime, tenant_id, "contract-rcpt-3", row.provider_message_id, "delivered")
        after = await self.outbox_row(runtime, tenant_id, row.id)
        assert after.status == "read", "a late delivered must not overwrite read"
        assert [(e["status"], e.get("applied", True)) for e in after.status_history[-2:]] == [("read", True), ("delivered", False)]

    async def test_a_failure_receipt_after_sent_fails_the_message(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self._needs_receipts(channel)
        row = await self.sent(runtime, tenant_id)
        assert row.provider_message_id
        failure = next((s for s in self.receipt_statuses if s in ("failed", "bounced")), None)
        if failure is None:
            pytest.skip("the channel reports no failures (receipt_statuses)")
        await self.report(client, runtime, tenant_id, "contract-rcpt-4", row.provider_message_id, failure)
        after = await self.outbox_row(runtime, tenant_id, row.id)
        assert after.status == failure
        assert after.status_history[-1]["source"] == "receipt"
