"""The server secret, and secrets sealed at rest with keys derived from it.

Channel-account secrets (a WeCom corp's token and AES key, a mailbox password) are stored
AES-256-GCM encrypted (:class:`Sealer`). The key is derived from the server secret with HKDF-SHA256
(its own ``info`` label, so it is never the key API keys are hashed with); each sealed value
names the key it was sealed with (an 8-hex-digit key id), and is bound to where it belongs (the
associated data: tenant, channel, account), so a sealed value copied onto another row does not
open.

Rotation: put the old server secret in ``auth.previous_secrets`` and a new one in ``auth.secret``;
values sealed under either key open, new values are sealed under the current one, and
``guanxi tenant accounts-rekey`` re-seals the rest, after which the old secret can go. A value
whose key is not held any more does not open (:class:`SealError`): the account is *broken*,
nothing else is affected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from guanxi.core.base.errors import ConfigError

if TYPE_CHECKING:
    from guanxi.core.base.config import AuthSettings

log = logging.getLogger("guanxi.auth")

PREFIX = "v1"
_INFO = b"guanxi channel-account secrets v1"
_FINGERPRINT_INFO = b"guanxi secret fingerprints v1"


def server_secret(settings: AuthSettings) -> bytes:
    """The server secret: ``auth.secret``, else the content of ``auth.secret_file`` (created
    with 32 random bytes and mode 0600 on first use)."""
    if settings.secret:
        return settings.secret.encode()
    path = Path(settings.secret_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        log.info("created a new server secret in %s", path)
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < 32:
        raise ConfigError(f"$.auth.secret_file: {path} holds fewer than 32 characters")
    return value.encode()


class SealError(Exception):
    """A sealed value does not open: its key is not held, or it was altered or moved."""


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"guanxi key id" + key).hexdigest()[:8]


class Sealer:
    """Seals and opens secrets with the key ring of one server secret (and the previous ones)."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        key = _derive(current, _INFO)
        self.key_id = _key_id(key)
        self._keys = {self.key_id: AESGCM(key)}
        for old in previous:
            old_key = _derive(old, _INFO)
            self._keys.setdefault(_key_id(old_key), AESGCM(old_key))
        self._fingerprint_key = _derive(current, _FINGERPRINT_INFO)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Sealer:
        return cls(server_secret(settings), [s.encode() for s in settings.previous_secrets])

    def seal(self, plaintext: bytes, context: bytes) -> str:
        """``v1:<key id>:<base64(nonce + ciphertext + tag)>``; ``context`` is bound to it."""
        nonce = os.urandom(12)
        sealed = self._keys[self.key_id].encrypt(nonce, plaintext, context)
        return f"{PREFIX}:{self.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    @staticmethod
    def key_of(token: str) -> str | None:
        parts = token.split(":", 2)
        return parts[1] if len(parts) == 3 and parts[0] == PREFIX else None

    def open(self, token: str, context: bytes) -> bytes:
        parts = token.split(":", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise SealError("not a sealed value of this version")
        key = self._keys.get(parts[1])
        if key is None:
            raise SealError(
                f"sealed with key {parts[1]}, which this server does not hold (the server secret changed "
                "without the old one in auth.previous_secrets)"
            )
        try:
            raw = base64.b64decode(parts[2], validate=True)
            return key.decrypt(raw[:12], raw[12:], context)
        except (InvalidTag, ValueError):
            raise SealError(f"the value sealed with key {parts[1]} does not open (altered, or moved from another row)") from None

    def fingerprint(self, value: str) -> str:
        """A short keyed digest that tells two values apart without revealing either."""
        return "hmac:" + hmac.new(self._fingerprint_key, value.encode(), hashlib.sha256).hexdigest()[:12]
