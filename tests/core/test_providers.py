"""The helpers every channel repeats: webhook signatures (body-only and timestamp+body, replay
window) and delivery errors from a provider's HTTP answer."""

from __future__ import annotations

import datetime as dt

import pytest

from guanxi import (
    PermanentDeliveryError,
    SignatureError,
    TransientDeliveryError,
    delivery_error,
    parse_retry_after,
    sign,
    verify_signature,
)

BODY = b'{"event_id": "e1"}'
NOW = 1_800_000_000


def test_a_body_only_hmac_verifies_and_any_change_to_the_body_is_refused() -> None:
    signature = sign("s3cret", BODY)
    assert len(signature) == 64  # hex SHA-256
    verify_signature("s3cret", BODY, signature)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("s3cret", BODY + b" ", signature)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("other", BODY, signature)


def test_the_known_answer_of_a_body_only_signature() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231-style published vector
    assert sign("key", b"The quick brown fox jumps over the lazy dog") == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_timestamp_and_body_signing_with_a_prefix_and_base64() -> None:
    signature = sign(b"k", BODY, timestamp=str(NOW), separator=b":", prefix="v1=", encoding="base64", algorithm="sha1")
    assert signature.startswith("v1=") and signature.endswith("=")
    verify_signature(b"k", BODY, signature, timestamp=str(NOW), now=NOW, separator=b":", prefix="v1=", encoding="base64", algorithm="sha1")
    with pytest.raises(SignatureError, match="does not match"):  # same digest, other timestamp
        verify_signature(b"k", BODY, signature, timestamp=str(NOW + 1), now=NOW, separator=b":", prefix="v1=", encoding="base64")


@pytest.mark.parametrize(("skew", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_a_timestamp_outside_the_replay_window_is_refused_either_way(skew: int, ok: bool) -> None:
    ts = str(NOW + skew)
    signature = sign("s", BODY, timestamp=ts)
    if ok:
        verify_signature("s", BODY, signature, timestamp=ts, now=NOW)
    else:
        with pytest.raises(SignatureError, match="replay window of 300 s"):
            verify_signature("s", BODY, signature, timestamp=ts, now=NOW)


@pytest.mark.parametrize(
    ("secret", "signature", "timestamp", "timestamped", "message"),
    [
        ("", "abc", None, False, "no webhook secret is configured"),
        ("topsecret", None, None, False, "missing signature"),
        ("topsecret", "", None, False, "missing signature"),
        ("topsecret", "abc", None, True, "missing timestamp"),
        ("topsecret", "abc", "12:00", True, "invalid timestamp"),
        ("topsecret", "ä-not-ascii", None, False, "does not match"),
    ],
)
def test_missing_or_unusable_parts_are_refused_with_a_reason_that_never_shows_the_secret(
    secret: str, signature: str | None, timestamp: str | None, timestamped: bool, message: str
) -> None:
    with pytest.raises(SignatureError, match=message) as raised:
        verify_signature(secret, BODY, signature, timestamp=timestamp, timestamped=timestamped, now=NOW)
    assert raised.value.code == "BAD_SIGNATURE"
    assert "topsecret" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        (" 30 ", 30.0),
        ("-4", 0.0),
        ("Fri, 01 May 2026 08:00:10 GMT", 10.0),
        ("Fri, 01 May 2026 07:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)) == seconds


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_rate_limits_timeouts_and_server_errors_are_transient_with_retry_after(status: int) -> None:
    error = delivery_error(status, retry_after="12", provider="Pigeon")
    assert isinstance(error, TransientDeliveryError)
    assert (error.transient, error.retry_after_s, error.provider_code, str(error)) == (True, 12.0, str(status), f"Pigeon answered {status}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_client_errors_are_permanent_with_the_providers_code(status: int) -> None:
    error = delivery_error(status, provider_code="recipient_blocked", retry_after="5")
    assert isinstance(error, PermanentDeliveryError)
    assert (error.transient, error.provider_code, error.retry_after_s) == (False, "recipient_blocked", None)
    assert f"{status} (recipient_blocked)" in str(error)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 302])
def test_a_success_is_no_error(status: int) -> None:
    assert delivery_error(status) is None
