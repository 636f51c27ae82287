"""The ``[plugins.email]`` config section, and what a mailbox (an ``email`` channel account) holds."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from guanxi import AccountSpec, ConfigAccount

CHANNEL = "email"

Address = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")]
Domain = Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")]


class Mailbox(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A mailbox's public settings (readable back through the API).

    ``address`` is the From address and the provider id (unique across tenants). Bounces go to
    ``bounce_local+<token>@bounce_domain`` (VERP; default: the address's domain). The SMTP server
    is reached with ``smtp_security`` ``starttls`` (port 587), ``tls`` (implicit, 465) or
    ``none`` (loopback relays only)."""

    address: Address
    display_name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    smtp_host: Domain
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: Annotated[str, msgspec.Meta(max_length=254)] = ""
    bounce_local: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")] = "bounce"
    bounce_domain: Domain | None = None
    #: DKIM: the selector and signing domain (d=); signing is on when the private key is set.
    dkim_selector: Annotated[str, msgspec.Meta(max_length=63, pattern=r"^[A-Za-z0-9._-]*$")] = ""
    dkim_domain: Domain | None = None
    #: messages per second this mailbox sends at most (the provider's limit)
    rate_per_s: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 10.0
    #: IMAP, for polling replies and bounces (no host: the mailbox receives through the raw-mail route only)
    imap_host: Domain | None = None
    imap_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 993
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_username: Annotated[str, msgspec.Meta(max_length=254)] = ""
    imap_folder: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "INBOX"


class MailboxSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Sealed, write-only: the SMTP and IMAP passwords, the DKIM private key (PEM) and the secret that
    signs raw mail forwarded to ``/webhooks/email/<mailbox>/raw``."""

    smtp_password: str = ""
    imap_password: str = ""
    dkim_private_key: str = ""
    inbound_secret: str = ""


class EmailSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: The public base URL of this server: unsubscribe links, the open pixel and click redirects.
    public_url: str = "http://localhost:8000"
    timeout_s: float = 10.0
    #: A PEM file of CA certificates trusted for SMTP and IMAP TLS besides the system's ("": the system's only).
    tls_ca_file: str = ""
    #: Keep an IMAP IDLE connection per receiving mailbox in the worker processes (new mail read at once).
    imap_idle: bool = True
    #: soft bounces (4.x.x) of one address before it is suppressed
    soft_bounce_threshold: Annotated[int, msgspec.Meta(ge=1)] = 3
    #: the largest raw message the inbound route takes (attachments of 25 MB, base64-encoded)
    max_raw_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 40 * 1024 * 1024
    #: A mailbox to import on ``guanxi db upgrade`` (single-company deployments); "" imports none.
    mailbox: str = "main"
    address: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    inbound_secret: str = ""
    tenant: str = ""


def spec(settings: EmailSettings) -> AccountSpec:
    """Mailboxes are ``email`` channel accounts; the section's mailbox is imported when it has an address."""
    configured = ConfigAccount(
        key=settings.mailbox,
        tenant=settings.tenant,
        settings={
            "address": settings.address,
            "smtp_host": settings.smtp_host,
            "smtp_port": settings.smtp_port,
            "smtp_security": settings.smtp_security,
            "smtp_username": settings.smtp_username,
        },
        secrets={"smtp_password": settings.smtp_password, "inbound_secret": settings.inbound_secret},
    )
    return AccountSpec(
        channel=CHANNEL,
        settings=Mailbox,
        secrets=MailboxSecrets,
        provider_id="address",
        check=check,
        config_accounts=(configured,) if settings.address else (),
    )


def check(settings: Mailbox, secrets: MailboxSecrets) -> list[tuple[str, str]]:
    if secrets.dkim_private_key and not settings.dkim_selector:
        return [("settings.dkim_selector", "a DKIM private key needs a selector")]
    if secrets.dkim_private_key and "PRIVATE KEY-----" not in secrets.dkim_private_key:
        return [("secrets.dkim_private_key", "not a PEM private key")]
    return []
