"""Signed tokens: the VERP return path of a message, and the links of its unsubscribe, open pixel
and click redirects. A token names the tenant and the outbox message and carries an HMAC (keyed
from the server secret) over them and its purpose, so none can be forged or turned into another."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

from guanxi import Runtime
from guanxi.core.base.sealing import server_secret

_KEY = "guanxi.email.token_key"
_MAC = 12  # bytes of HMAC kept in a token (96 bits)


class Ref(tuple[uuid.UUID, uuid.UUID]):
    """(tenant id, outbox message id) a token names."""

    @property
    def tenant_id(self) -> uuid.UUID:
        return self[0]

    @property
    def message_id(self) -> uuid.UUID:
        return self[1]


def _key(runtime: Runtime) -> bytes:
    key: bytes | None = runtime.state.get(_KEY)
    if key is None:
        key = runtime.state[_KEY] = hmac.new(server_secret(runtime.settings.auth), b"guanxi email tokens v1", hashlib.sha256).digest()
    return key


def _mac(runtime: Runtime, purpose: str, body: bytes, extra: str = "") -> bytes:
    return hmac.new(_key(runtime), purpose.encode() + b"\0" + body + b"\0" + extra.encode(), hashlib.sha256).digest()[:_MAC]


def make(runtime: Runtime, purpose: str, tenant_id: uuid.UUID, message_id: uuid.UUID, extra: str = "") -> str:
    """A URL-safe token for ``purpose`` (``unsubscribe``, ``open``, ``click``); ``extra`` (a click's
    target URL) is covered by the signature without being carried in the token."""
    body = tenant_id.bytes + message_id.bytes
    return base64.urlsafe_b64encode(body + _mac(runtime, purpose, body, extra)).decode().rstrip("=")


def read(runtime: Runtime, purpose: str, token: str, extra: str = "") -> Ref | None:
    """The (tenant, message) a token names, or None when it is malformed or not signed by us."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 32 + _MAC or not hmac.compare_digest(raw[32:], _mac(runtime, purpose, raw[:32], extra)):
        return None
    return Ref((uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:32])))


# -- VERP: bounce+<message hex>-<mac hex>@domain (lower case: MTAs may fold the local part) --

_VERP = re.compile(r"^(?P<local>[A-Za-z0-9._-]+)\+(?P<id>[0-9a-f]{32})-(?P<mac>[0-9a-f]{16})@(?P<domain>[^@\s>]+)$")


def verp_address(runtime: Runtime, local: str, domain: str, tenant_id: uuid.UUID, message_id: uuid.UUID) -> str:
    """The return path of one message to one recipient: bounces to it name the message."""
    mac = _mac(runtime, "verp", tenant_id.bytes + message_id.bytes)[:8].hex()
    return f"{local}+{message_id.hex}-{mac}@{domain}"


def read_verp(runtime: Runtime, address: str, tenant_id: uuid.UUID) -> uuid.UUID | None:
    """The outbox message a VERP address (of ``tenant_id``) names, or None."""
    found = _VERP.match(address.strip().strip("<>").lower())
    if found is None:
        return None
    message_id = uuid.UUID(hex=found["id"])
    mac = _mac(runtime, "verp", tenant_id.bytes + message_id.bytes)[:8].hex()
    return message_id if hmac.compare_digest(mac, found["mac"]) else None


def message_id_header(message_id: uuid.UUID, domain: str) -> str:
    """The RFC 5322 Message-ID of an outbox message: the same on every attempt (so a receiver
    tells a retry from a new message), and the provider message id receipts find it by."""
    return f"<{message_id.hex}@{domain}>"


_MSGID = re.compile(r"<([0-9a-f]{32})@[^>\s]+>")


def outbox_ids(value: str | None) -> list[uuid.UUID]:
    """The outbox message ids named by our Message-IDs in an In-Reply-To / References header."""
    return [uuid.UUID(hex=m) for m in _MSGID.findall((value or "").lower())]
