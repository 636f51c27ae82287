"""The channel contract: what a channel plugin (WeCom, Douyin, email, yours) provides to core.

A channel adapter is a small object contributed through the ``guanxi_channels`` hook. Core calls
``send`` from the outbox worker and ``fetch_profile`` when a profile refresh is asked for; it
never talks to a provider any other way. Inbound traffic arrives through the plugin's own routes,
which turn provider payloads into :class:`InboundEvent` and hand them to
:func:`guanxi.core.queues.inbox.ingest`.
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from guanxi.core.base.errors import GuanxiError

if TYPE_CHECKING:
    from guanxi.core.storage.tenancy import TenantSession


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What a channel can do. Sending something a channel cannot do is refused before any row
    is written (:class:`CapabilityError`)."""

    #: It takes inbound traffic (webhooks); the contract's webhook tests need it.
    receive: bool = True
    #: ``send`` takes messages with text.
    send_text: bool = False
    #: ``send`` takes attachments.
    send_media: bool = False
    #: The provider can send one message to many recipients.
    broadcast: bool = False
    #: ``fetch_profile`` works (``refreshIdentityProfile`` in GraphQL).
    profile_fetch: bool = False
    #: After the customer's last inbound message, how long the channel lets a business write
    #: (e.g. 48 h on some IM channels); None means no window.
    messaging_window_s: int | None = None
    #: Longest text the provider accepts, in characters; None means no limit known.
    max_text_length: int | None = None


#: The kinds of :class:`Attachment` (GraphQL ``AttachmentKind``).
ATTACHMENT_KINDS = ("image", "file", "video", "link", "miniprogram")


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file or link sent with a message (channels with ``send_media``)."""

    #: image, file, video, link or miniprogram.
    kind: str
    url: str
    name: str | None = None
    mime_type: str | None = None


class OutboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message the outbox asks a channel to deliver."""

    #: The outbox row's id; the same on every attempt.
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    #: The identity's external id on the channel (whom to send to).
    recipient: str
    #: The text, already checked against ``Capabilities.max_text_length``; None for media only.
    text: str | None
    attachments: tuple[Attachment, ...] = ()
    #: The same on every attempt of this message: pass it to providers that deduplicate.
    idempotency_key: str
    #: Which attempt this is, from 1 (retries after transient errors count up).
    attempt: int = 1


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``Channel.send`` returns when the provider accepted the message."""

    #: The provider's id of the message; receipts find the message by it (keep it if you have one).
    provider_message_id: str | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


class DeliveryError(GuanxiError):
    """A send failed. ``transient`` errors are retried with backoff; permanent ones are not."""

    code = "DELIVERY_FAILED"
    transient = True

    def __init__(self, message: str, *, provider_code: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message, field=None)
        self.provider_code = provider_code
        self.retry_after_s = retry_after_s


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeouts, rate limits, provider 5xx."""

    transient = True


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help: the recipient blocked us, the content was refused, bad credentials."""

    transient = False


class CapabilityError(GuanxiError):
    """The channel cannot do what was asked (no text sending, message too long, no such channel)."""

    code = "CHANNEL_CAPABILITY"


class ProfileInput(msgspec.Struct, kw_only=True):
    """A channel account as a provider describes it (the identity part of an inbound event).

    Only ``external_id`` is required. The inbox worker finds the identity by (channel,
    ``external_id``); for an account it has not seen, it looks for an existing customer by
    ``union_id`` (on any channel), then by ``phone`` or ``email`` (a customer whose normalised
    phone or email is exactly this one, if only one has it), then asks the
    ``guanxi_resolve_customer`` hook, and creates a customer only when none matched. A value left
    None never erases what is stored.
    """

    #: The account's id on the channel, unique per channel and tenant (1 to 128 characters).
    external_id: str
    #: An id shared by the person's accounts across one provider's apps (WeChat union id); used to
    #: join a new account to the customer who already has one with the same union id.
    union_id: str | None = None
    #: The display name on the channel; also the new customer's name when one is created.
    nickname: str | None = None
    avatar_url: str | None = None
    #: The account's audience (followers), for social value; must not be negative.
    follower_count: int | None = None
    #: A phone number the provider vouches for: matched (normalised) against customers' phones to
    #: find the customer of a new account, and the first of ``phones`` of a customer created for
    #: it. Not stored on the identity, and not added to a customer found another way.
    phone: str | None = None
    #: Likewise an email address (matched against customers' ``emails``).
    email: str | None = None
    #: Anything else the channel knows of the account, merged into ``Identity.profile``.
    profile: dict[str, Any] = msgspec.field(default_factory=dict)


class InboundEvent(msgspec.Struct, kw_only=True):
    """Something that happened on a channel, as the channel plugin parsed it from a webhook.

    ``provider_event_id`` must be the same for every delivery of the same event (providers
    retry): core keeps one inbox row per (tenant, channel, provider_event_id)."""

    #: The channel's name (the adapter's ``name``).
    channel: str
    #: The provider's id of the event, 1 to 200 characters (the dedupe key).
    provider_event_id: str
    #: When it happened, with a time zone (a naive time is refused).
    occurred_at: dt.datetime
    #: The account the event came from (or, for ``direction="out"``, the account it went to).
    identity: ProfileInput
    #: The interaction kind on the customer's timeline: message_in, follow, unfollow, comment, scan …
    kind: str
    #: ``"in"`` for what the customer did (the default); ``"out"`` for what the business did on
    #: the channel outside Guanxi (a reply a salesperson typed in the provider's own app), which
    #: is recorded on the timeline without going through the outbox.
    direction: str = "in"
    #: The message text, if any.
    text: str | None = None
    #: Channel-specific details kept on the interaction (e.g. a ``state`` an entry point carried).
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


#: Every status of an outbound message, in the order a delivery normally goes through them.
MESSAGE_STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed", "bounced", "complained")
#: The statuses a receipt may report.
RECEIPT_STATUSES = ("sent", "delivered", "read", "failed", "bounced", "complained")
#: Receipt statuses that say the message did not (or should not have) reached the person.
FAILURE_STATUSES = ("failed", "bounced", "complained")


class Receipt(msgspec.Struct, kw_only=True, tag_field="type", tag="receipt"):
    """A provider's report on a message sent earlier (a delivery report, a read receipt, a bounce),
    as the channel plugin parsed it from a webhook. Hand it to :func:`guanxi.ingest` like an
    :class:`InboundEvent`: it goes through the durable inbox (stored at once, retried,
    deduplicated) and the inbox worker applies it to the message with this provider message id.

    Receipts are applied in any order with the same result: a status moves forward only, in the
    order ``sent`` < ``delivered`` < ``failed`` < ``bounced`` < ``read`` < ``complained`` (a
    failure reported after delivery wins over it; a read proves delivery and wins over a
    failure), so a late ``delivered`` never overwrites ``read``; every receipt is kept in the
    message's status history all the same. A receipt whose
    message is not known yet (the outbox has not recorded the provider's id) is retried by the
    inbox with backoff, and kept as ``failed`` in the inbox after the last attempt.
    """

    channel: str
    #: The id the provider gave the message when it accepted it (``DeliveryResult.provider_message_id``).
    provider_message_id: str
    #: One of :data:`RECEIPT_STATUSES`: sent, delivered, read, failed, bounced or complained.
    status: str
    #: When the provider says it happened (with a time zone).
    occurred_at: dt.datetime
    #: The provider's id of this report; the same on every delivery of it. Default:
    #: ``receipt:<provider_message_id>:<status>`` (one receipt per message and status).
    provider_event_id: str = ""
    #: What went wrong, for a failure (kept on the message as its last error).
    error: str | None = None
    #: The provider's own code for the outcome (e.g. ``UNDELIVERABLE``, ``550``).
    provider_code: str | None = None
    #: A failure only: the account is gone (number not in service, mailbox does not exist); core
    #: marks the identity unreachable and ``sendMessage`` refuses it until it writes in again.
    unreachable: bool = False
    #: A failure only: the person does not want these messages (spam complaint, STOP); core
    #: records an opt-out of the channel for the customer.
    withdraw_consent: bool = False
    #: The provider's report as it came, kept on the inbox row (for operations and replays).
    payload: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.provider_event_id and self.provider_message_id:
            self.provider_event_id = f"receipt:{self.provider_message_id}:{self.status}"[:200]


class Channel(abc.ABC):
    """Base class of channel adapters. Subclass it, set ``name`` and ``capabilities``, implement
    :meth:`send` (and :meth:`fetch_profile` if ``profile_fetch``), and return an instance from the
    ``guanxi_channels`` hook.

    ``send`` must not write to the database: the outbox worker records the outcome. It raises
    :class:`TransientDeliveryError` or :class:`PermanentDeliveryError`; any other exception is
    treated as transient.
    """

    #: The channel's name everywhere (identities, interactions, ``sendMessage(channel:)``): lower
    #: snake case, at most 32 characters.
    name: ClassVar[str]
    #: What core may ask of it; checked before anything is queued.
    capabilities: ClassVar[Capabilities] = Capabilities()

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver one message; return the provider's message id."""

    async def fetch_profile(self, external_id: str, *, tenant_id: uuid.UUID) -> ProfileInput | None:
        """Fetch the current profile of an account from the provider (None if unknown), using
        the accounts of ``tenant_id`` (the tenant whose identity it is)."""
        raise CapabilityError(f"channel {self.name!r} cannot fetch profiles")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients (called when the application stops)."""


# -- staff notifications ---------------------------------------------------------------------


class StaffNotice(msgspec.Struct, frozen=True, kw_only=True):
    """One notification (or a digest of several) to deliver to a staff member on one staff
    channel. ``text`` is the ready-to-send plain text (title, body, and for a digest one line per
    item); ``items`` are the notifications it carries, for channels that format their own.
    ``idempotency_key`` is the same on every attempt: pass it to providers that deduplicate."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    channel: str
    recipient: str
    kind: str
    title: str
    text: str
    link_type: str | None = None
    link_id: uuid.UUID | None = None
    items: tuple[dict[str, Any], ...] = ()
    idempotency_key: str
    attempt: int = 1


class StaffChannel(abc.ABC):
    """Base class of staff notification channels (a WeCom application message to the employee,
    an e-mail to a colleague), contributed through the ``guanxi_staff_channels`` hook.

    Unlike :class:`Channel` it addresses staff members, not customers: no consent, no customer
    timeline. :meth:`recipient` tells core where a user can be reached on this channel (None:
    not reachable, so nothing is queued for it); :meth:`send` delivers one notice and, like
    :meth:`Channel.send`, raises :class:`TransientDeliveryError` or
    :class:`PermanentDeliveryError` (anything else counts as transient) and writes nothing.
    """

    name: ClassVar[str]
    #: the longest text the channel takes (core shortens longer texts)
    max_text_length: ClassVar[int | None] = None

    @abc.abstractmethod
    async def recipient(self, session: TenantSession, user_id: uuid.UUID) -> str | None:
        """The user's address on this channel, or None when the user cannot be reached on it.
        ``session`` is the notifying transaction's, scoped to the user's tenant."""

    @abc.abstractmethod
    async def send(self, notice: StaffNotice) -> DeliveryResult:
        """Deliver one notice; return the provider's message id."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients (called when the application stops)."""


# -- channel accounts ------------------------------------------------------------------------


class ConfigAccount(msgspec.Struct, frozen=True, kw_only=True):
    """An account written in the configuration file (single-company deployments), imported into
    a ``channel_accounts`` row by ``guanxi db upgrade`` when no account has its key yet.
    ``tenant`` is a tenant slug ("" for the configured tenant)."""

    key: str
    tenant: str = ""
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    secrets: dict[str, str] = msgspec.field(default_factory=dict)


class AccountSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a channel plugin's accounts hold (returned from ``guanxi_channel_accounts``).

    :param channel: the channel name (``wecom``).
    :param settings: a msgspec Struct type (``forbid_unknown_fields``) of the public settings:
        readable back through the API. A tenant admin writes them, so never a URL or a file path
        the server would fetch or open.
    :param secrets: a msgspec Struct type whose fields are all ``str`` (``""``: not set): sealed
        at rest, write-only through the API (a fingerprint shows whether each is set).
    :param provider_id: the name of the ``settings`` field that is the provider's account id
        (``corp_id``): unique per channel across tenants, so two tenants cannot connect one account.
    :param check: optional ``check(settings, secrets) -> [(field, problem), ...]`` for rules a
        struct cannot say (two fields set together, a key's format); ``field`` is a key path
        such as ``secrets.encoding_aes_key``.
    :param config_accounts: accounts from the plugin's config section, imported on upgrade.
    """

    channel: str
    settings: Any
    secrets: Any
    provider_id: str
    check: Any = None
    config_accounts: tuple[ConfigAccount, ...] = ()
