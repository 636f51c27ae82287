"""The URLs of an inviter's web entry point: the tracked link, its QR codes and the poster."""

from __future__ import annotations

import hashlib
import hmac


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/r/{token}"


def image_url(public_url: str, token: str, name: str) -> str:
    """``name`` is ``qr.png``, ``qr.svg`` or ``poster.png``."""
    return f"{link_url(public_url, token)}/{name}"


def visitor_signature(secret: str, token: str, channel: str, uid: str) -> str:
    """The ``sig`` a front end that knows its visitor (a mini-program, a logged-in web page) adds
    to ``/r/{token}?channel=…&uid=…``: HMAC-SHA256 of ``token:channel:uid``, hex."""
    return hmac.new(secret.encode(), f"{token}:{channel}:{uid}".encode(), hashlib.sha256).hexdigest()


def visitor_ok(secret: str, token: str, channel: str, uid: str, sig: str | None) -> bool:
    return bool(secret and sig) and hmac.compare_digest(visitor_signature(secret, token, channel, uid), sig or "")
