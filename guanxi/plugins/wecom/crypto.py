"""WeCom's callback crypto (PROTOCOLS.md §A.3–A.5): SHA-1 signature over the sorted strings,
AES-256-CBC with the key's first 16 bytes as IV, PKCS#7 padding to 32-byte blocks, and the
``random(16) | len(4, big-endian) | msg | receiveid`` plaintext layout.

Errors never carry the token, the key or the plaintext."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class CryptoError(Exception):
    """A callback failed verification or decryption; ``reason`` is safe to log and answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(CryptoError):
    """The signature does not match (or is missing)."""


class ReceiveIdError(CryptoError):
    """The message decrypted but is addressed to another corp (receive id)."""


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """``lowercase_hex(sha1(join(sorted([token, timestamp, nonce, encrypt]))))``."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """Decode the 43-character EncodingAESKey to its 32 bytes (anything else is refused)."""
    if len(encoding_aes_key) != 43 or not encoding_aes_key.isalnum() or not encoding_aes_key.isascii():
        raise ValueError("EncodingAESKey must be 43 characters of [A-Za-z0-9]")
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:  # pragma: no cover - 43 base64 chars always give 32 bytes
        raise ValueError("EncodingAESKey does not decode to 32 bytes")
    return key


def pad(data: bytes) -> bytes:
    k = BLOCK - len(data) % BLOCK
    return data + bytes([k]) * k


def unpad(data: bytes) -> bytes:
    if not data or len(data) % 16:
        raise CryptoError("ciphertext length is not a multiple of the AES block")
    k = data[-1]
    if not 1 <= k <= BLOCK or k > len(data) or data[-k:] != bytes([k]) * k:
        raise CryptoError("bad padding")
    return data[:-k]


class WecomCrypto:
    """Verify, decrypt and encrypt messages of one receiving app (token, key, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def __repr__(self) -> str:  # never show the secrets
        return f"WecomCrypto(receive_id={self.receive_id!r})"

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not msg_signature or not timestamp or not nonce or not encrypt:
            raise SignatureError("missing msg_signature, timestamp, nonce or ciphertext")
        expected = signature(self._token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, msg_signature.lower()):
            raise SignatureError("bad msg_signature")

    def decrypt(self, encrypt: str) -> str:
        """Decrypt a verified ciphertext and check its receive id; returns the message."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("ciphertext is not base64") from None
        if not raw or len(raw) % 16:
            raise CryptoError("ciphertext length is not a multiple of the AES block")
        decryptor = self._cipher().decryptor()
        plain = unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CryptoError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoError("message length exceeds the plaintext")
        msg, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise ReceiveIdError("message is addressed to another receive id")
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("message is not UTF-8") from None

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Signature first, then decryption (the order PROTOCOLS.md §A.5 prescribes)."""
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def encrypt(self, msg: str, *, random: bytes | None = None) -> str:
        """Encrypt a message as WeCom does (for passive replies and test fixtures)."""
        body = msg.encode("utf-8")
        plain = (random or os.urandom(16)) + struct.pack(">I", len(body)) + body + self.receive_id.encode("utf-8")
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(pad(plain)) + encryptor.finalize()).decode("ascii")

    def reply(self, msg: str, timestamp: str, nonce: str) -> str:
        """A passive encrypted reply envelope (PROTOCOLS.md §A.8)."""
        encrypted = self.encrypt(msg)
        sig = signature(self._token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )
