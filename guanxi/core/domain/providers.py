"""What every channel plugin repeats when it talks to a provider: checking webhook signatures and
turning the provider's HTTP answers into delivery errors.

Signatures (:func:`verify_signature`): an HMAC over the raw body, or over ``timestamp + separator
+ body``, compared in constant time. With a timestamp, one outside the replay window
(``max_age_s``, 300 s by default) is refused. Within the window, and for body-only signatures
that carry no time at all, a replayed request is made harmless by the inbox: it has the same
provider event id as the original (take the id from the signed body), so ``ingest`` acknowledges
it as a duplicate and nothing happens twice.

Delivery errors (:func:`delivery_error`): 408, 425, 429 and 5xx are worth retrying
(:class:`TransientDeliveryError`, with ``Retry-After`` as the delay); any other 4xx will fail the
same way every time (:class:`PermanentDeliveryError`).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import math
import time
from typing import Literal

from guanxi.core.base.errors import GuanxiError
from guanxi.core.domain.channels import DeliveryError, PermanentDeliveryError, TransientDeliveryError

#: Statuses other than 5xx that say "try again later".
TRANSIENT_STATUSES = frozenset({408, 425, 429})


class SignatureError(GuanxiError):
    """A webhook's signature is missing, does not match, or its timestamp is outside the replay
    window. The base webhook route answers 401; the message never contains the secret."""

    code = "BAD_SIGNATURE"


def sign(
    secret: str | bytes,
    body: bytes,
    *,
    timestamp: str | None = None,
    separator: bytes = b".",
    algorithm: str = "sha256",
    encoding: Literal["hex", "base64"] = "hex",
    prefix: str = "",
) -> str:
    """The signature a provider sends for ``body``: ``prefix + HMAC(secret, [timestamp +
    separator +] body)``, hex or base64 encoded. Use it in tests to sign what your fake provider
    posts, and through :func:`verify_signature` in the webhook."""
    key = secret.encode() if isinstance(secret, str) else secret
    signed = body if timestamp is None else timestamp.encode() + separator + body
    digest = hmac.new(key, signed, getattr(hashlib, algorithm)).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")
    return prefix + text


def verify_signature(
    secret: str | bytes,
    body: bytes,
    signature: str | None,
    *,
    timestamp: str | None = None,
    timestamped: bool = False,
    max_age_s: float = 300.0,
    now: float | None = None,
    separator: bytes = b".",
    algorithm: str = "sha256",
    encoding: Literal["hex", "base64"] = "hex",
    prefix: str = "",
) -> None:
    """Check a webhook's signature; raise :class:`SignatureError` if it is not right.

    :param secret: the shared secret; an empty one refuses every request (an unconfigured
        channel must not accept unsigned traffic).
    :param body: the raw request body, exactly as received (never re-encoded JSON).
    :param signature: the signature header's value (None or "" when missing).
    :param timestamp: the timestamp header's value (Unix seconds) for timestamp+body signing;
        leave None for body-only signing.
    :param timestamped: True when the provider always sends a timestamp, so a missing one is
        refused rather than checked as body-only.
    :param max_age_s: the replay window: a timestamp further than this from ``now`` (either way)
        is refused.
    :param now: the current Unix time (default: ``time.time()``), for tests.
    :param separator: what joins the timestamp and the body (``b"."``, ``b":"``, ``b""``).
    :param algorithm: a :mod:`hashlib` name: ``sha256`` (default), ``sha1``, ``sha512``.
    :param encoding: ``hex`` (default) or ``base64``.
    :param prefix: text before the digest in the header, e.g. ``"sha256="`` or ``"v1="``.
    """
    if not secret:
        raise SignatureError("no webhook secret is configured: every request is refused")
    if not signature:
        raise SignatureError("missing signature")
    if timestamp is None and timestamped:
        raise SignatureError("missing timestamp")
    if timestamp is not None:
        if not timestamp.isdigit():
            raise SignatureError("invalid timestamp: expected Unix seconds")
        if abs((time.time() if now is None else now) - int(timestamp)) > max_age_s:
            raise SignatureError(f"timestamp outside the replay window of {max_age_s:g} s")
    expected = sign(secret, body, timestamp=timestamp, separator=separator, algorithm=algorithm, encoding=encoding, prefix=prefix)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureError("signature does not match")


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay seconds (``"7"``, ``"1.5"``) or an HTTP
    date (``"Wed, 21 Oct 2026 07:28:00 GMT"``); None when absent or unreadable, 0 for the past."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def delivery_error(
    status_code: int,
    *,
    retry_after: str | None = None,
    provider_code: str | None = None,
    provider: str = "the provider",
) -> DeliveryError | None:
    """The delivery error for a provider's HTTP answer to a send, or None for a success (below 400).

    408, 425, 429 and every 5xx give a :class:`TransientDeliveryError` (retried; ``Retry-After``
    becomes its ``retry_after_s``, which replaces core's backoff for that retry); any other 4xx a
    :class:`PermanentDeliveryError` (failed at once). ``provider_code`` is kept on the error
    (the provider's own error code, e.g. ``recipient_blocked``); without one, the status is.
    Raise what it returns::

        error = delivery_error(response.status_code, retry_after=response.headers.get("Retry-After"), provider="Pigeon")
        if error is not None:
            raise error
    """
    if status_code < 400:
        return None
    code = provider_code or str(status_code)
    if status_code >= 500 or status_code in TRANSIENT_STATUSES:
        delay = parse_retry_after(retry_after)
        return TransientDeliveryError(f"{provider} answered {status_code}", provider_code=code, retry_after_s=delay)
    detail = f" ({provider_code})" if provider_code else ""
    return PermanentDeliveryError(f"{provider} refused the message: {status_code}{detail}", provider_code=code)
