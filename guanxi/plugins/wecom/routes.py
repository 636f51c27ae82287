"""The callback URL of each configured corp: ``/wecom/callback/<key>``.

GET answers WeCom's URL verification with the decrypted ``echostr``; POST verifies, decrypts and
stores the event (core inbox for customer events, ``wecom_events`` for corp-level ones) and
answers 200 with an empty body at once. Refusals: 401 for a bad or missing signature, a stale
timestamp or a message addressed to another corp; 400 for a body that is not a WeCom callback
(bad XML, bad padding, unknown event); 404 for an unknown corp key. Nothing is stored then."""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.params import FromPath

from guanxi.core.base.errors import ValidationError
from guanxi.core.queues.inbox import ingest
from guanxi.plugins.wecom import callbacks, events
from guanxi.plugins.wecom.crypto import CryptoError, ReceiveIdError, SignatureError
from guanxi.plugins.wecom.settings import CorpSettings
from guanxi.plugins.wecom.state import WecomState, wecom_state

log = logging.getLogger("guanxi.wecom")


def _corp(state: WecomState, key: str) -> CorpSettings:
    corp = state.settings.corp(key)
    if corp is None or not corp.token or not corp.encoding_aes_key:
        raise NotFoundException(f"no WeCom corp {key!r} is configured")
    return corp


def _query(request: Request[Any, Any, Any], name: str) -> str:
    return str(request.query_params.get(name) or "")  # Litestar URL-decodes query parameters


def _check_timestamp(state: WecomState, timestamp: str) -> None:
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > state.settings.timestamp_window_s:
        raise NotAuthorizedException("stale or invalid timestamp")


def _open(state: WecomState, corp: CorpSettings, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
    try:
        return state.crypto(corp).verify_and_decrypt(signature, timestamp, nonce, encrypt)
    except (SignatureError, ReceiveIdError) as exc:
        log.warning("wecom callback for corp %s refused: %s", corp.key, exc.reason)
        raise NotAuthorizedException(exc.reason) from None
    except CryptoError as exc:
        log.warning("wecom callback for corp %s refused: %s", corp.key, exc.reason)
        raise HTTPException(status_code=400, detail=exc.reason) from None


@get("/wecom/callback/{key:str}", sync_to_thread=False)
def wecom_verify(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
    """URL verification: answer the decrypted echostr as the raw body (no quotes, no newline)."""
    state = wecom_state(request.app.state.runtime)
    corp = _corp(state, key)
    echo = _open(
        state, corp, _query(request, "msg_signature"), _query(request, "timestamp"), _query(request, "nonce"), _query(request, "echostr")
    )
    return Response(echo.encode("utf-8"), media_type="text/plain", status_code=200)


@post("/wecom/callback/{key:str}", status_code=200)
async def wecom_callback(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
    runtime = request.app.state.runtime
    state = wecom_state(runtime)
    corp = _corp(state, key)
    signature, timestamp, nonce = _query(request, "msg_signature"), _query(request, "timestamp"), _query(request, "nonce")
    if not signature:
        raise NotAuthorizedException("missing msg_signature")
    _check_timestamp(state, timestamp)
    try:
        envelope = callbacks.parse_xml(await request.body())
    except callbacks.CallbackError as exc:
        raise HTTPException(status_code=400, detail=f"malformed WeCom callback: {exc}") from None
    encrypt = envelope.get("Encrypt", "")
    if not encrypt:
        raise HTTPException(status_code=400, detail="malformed WeCom callback: no Encrypt element")
    replay_key = f"{corp.key}:{signature}:{nonce}"
    if state.nonces.seen(replay_key):  # the same request again: it was stored the first time
        _open(state, corp, signature, timestamp, nonce, encrypt)
        return Response(b"", media_type="text/plain")
    plain = _open(state, corp, signature, timestamp, nonce, encrypt)
    try:
        fields = callbacks.parse_xml(plain)
        tenant = await runtime.tenant_id(corp.tenant or None)
        if fields.get("Event") == "change_external_contact":
            event = callbacks.to_inbound(corp.corp_id, fields)
            result = await ingest(runtime, tenant, event)
            if not result.duplicate:
                events.after_contact_callback(state, corp, fields, tenant)
        elif fields.get("Event") in callbacks.CORP_EVENTS:
            await events.store_corp_event(runtime, tenant, corp, fields)
        else:
            log.info("wecom corp %s: ignored callback %s/%s", corp.key, fields.get("MsgType", "")[:20], fields.get("Event", "")[:40])
    except (callbacks.CallbackError, ValidationError) as exc:
        raise HTTPException(status_code=400, detail=f"malformed WeCom callback: {exc}") from None
    state.nonces.add(replay_key)
    return Response(b"", media_type="text/plain")
