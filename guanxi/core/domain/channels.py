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

    receive: bool = True
    send_text: bool = False
    send_media: bool = False
    broadcast: bool = False
    profile_fetch: bool = False
    #: After the customer's last inbound message, how long the channel lets a business write
    #: (e.g. 48 h on some IM channels); None means no window.
    messaging_window_s: int | None = None
    #: Longest text the provider accepts, in characters; None means no limit known.
    max_text_length: int | None = None


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # image | file | video | link | miniprogram
    url: str
    name: str | None = None
    mime_type: str | None = None


class OutboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message the outbox asks a channel to deliver."""

    id: uuid.UUID  # the outbox row; stable across retries
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    recipient: str  # the identity's external id on the channel
    text: str | None
    attachments: tuple[Attachment, ...] = ()
    idempotency_key: str  # pass it to providers that deduplicate
    attempt: int = 1


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
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
    """A channel account as a provider describes it (the identity part of an inbound event)."""

    external_id: str
    union_id: str | None = None
    nickname: str | None = None
    avatar_url: str | None = None
    follower_count: int | None = None
    phone: str | None = None
    email: str | None = None
    profile: dict[str, Any] = msgspec.field(default_factory=dict)


class InboundEvent(msgspec.Struct, kw_only=True):
    """Something that happened on a channel, as the channel plugin parsed it from a webhook.

    ``provider_event_id`` must be the same for every delivery of the same event (providers
    retry): core keeps one inbox row per (tenant, channel, provider_event_id)."""

    channel: str
    provider_event_id: str
    occurred_at: dt.datetime
    identity: ProfileInput
    kind: str  # interaction kind: message_in, follow, comment, scan …
    direction: str = "in"
    text: str | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


class Channel(abc.ABC):
    """Base class of channel adapters. Subclass it, set ``name`` and ``capabilities``, implement
    :meth:`send` (and :meth:`fetch_profile` if ``profile_fetch``), and return an instance from the
    ``guanxi_channels`` hook.

    ``send`` must not write to the database: the outbox worker records the outcome. It raises
    :class:`TransientDeliveryError` or :class:`PermanentDeliveryError`; any other exception is
    treated as transient.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver one message; return the provider's message id."""

    async def fetch_profile(self, external_id: str) -> ProfileInput | None:
        """Fetch the current profile of an account from the provider (None if unknown)."""
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
