"""The callback URL of each connected corp: ``/wecom/callback/<account key>``.

The key names a channel account (:mod:`guanxi.core.services.accounts`), and so its tenant: a
callback is never routed by a default tenant. A key no account has, or whose tenant disabled
WeCom, answers 404; an account whose secrets cannot be read (broken) answers 503, so WeCom
retries once an admin has set them again.

GET answers WeCom's URL verification with the decrypted ``echostr``; POST verifies, decrypts and
stores the event (core inbox for customer events, ``wecom_events`` for corp-level ones) and
answers 200 with an empty body at once. Refusals: 401 for a bad or missing signature, a stale
timestamp or a message addressed to another corp; 400 for a body that is not a WeCom callback
(bad XML, bad padding, unknown event); 404 for an unknown corp key. Nothing is stored then."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.params import FromPath

from guanxi.core.base.errors import ValidationError
from guanxi.core.queues.inbox import ingest
from guanxi.core.runtime import Runtime
from guanxi.core.services import accounts
from guanxi.plugins.wecom import callbacks, events
from guanxi.plugins.wecom.accounts import corp_of
from guanxi.plugins.wecom.callbacks import CHANNEL
from guanxi.plugins.wecom.crypto import CryptoError, ReceiveIdError, SignatureError
from guanxi.plugins.wecom.settings import CorpSettings
from guanxi.plugins.wecom.state import WecomState, wecom_state

log = logging.getLogger("guanxi.wecom")


async def _corp(runtime: Runtime, key: str) -> tuple[uuid.UUID, CorpSettings]:
    """The tenant and corp of the account the URL names."""
    account = await accounts.account_by_key(runtime, CHANNEL, key)
    if account is None or not await runtime.plugin_enabled("wecom", account.tenant_id):
        raise NotFoundException(f"no WeCom corp {key!r} is configured")
    if account.broken is not None:
        log.error("wecom callback for corp %s refused: the account is broken: %s", key, account.broken)
        raise HTTPException(status_code=503, detail=f"WeCom corp {key!r} cannot be used until its secrets are set again")
    corp = corp_of(account)
    if not corp.token or not corp.encoding_aes_key:
        raise NotFoundException(f"no WeCom corp {key!r} is configured")
    return account.tenant_id, corp


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


@get("/wecom/callback/{key:str}")
async def wecom_verify(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
    """URL verification: answer the decrypted echostr as the raw body (no quotes, no newline)."""
    state = wecom_state(request.app.state.runtime)
    _tenant, corp = await _corp(request.app.state.runtime, key)
    echo = _open(
        state, corp, _query(request, "msg_signature"), _query(request, "timestamp"), _query(request, "nonce"), _query(request, "echostr")
    )
    return Response(echo.encode("utf-8"), media_type="text/plain", status_code=200)


@post("/wecom/callback/{key:str}", status_code=200)
async def wecom_callback(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
    runtime = request.app.state.runtime
    state = wecom_state(runtime)
    tenant, corp = await _corp(runtime, key)
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
