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
from typing import Any, ClassVar

import msgspec

from guanxi.core.base.errors import GuanxiError


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

    async def fetch_profile(self, external_id: str, *, tenant_id: uuid.UUID) -> ProfileInput | None:
        """Fetch the current profile of an account from the provider (None if unknown), using
        the accounts of ``tenant_id`` (the tenant whose identity it is)."""
        raise CapabilityError(f"channel {self.name!r} cannot fetch profiles")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients (called when the application stops)."""


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
