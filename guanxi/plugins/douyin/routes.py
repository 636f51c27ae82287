"""The app's one callback URL, ``POST /webhooks/douyin`` (core's base webhook route), and the
OAuth callback ``GET /douyin/oauth/callback``.

A webhook request, in this order:

1. ``verify_webhook``: answered with ``{"challenge": <same value>}``; nothing is stored (when
   the body names a known app, its signature is checked first);
2. the **app** is found by the body's ``client_key`` (the deployment app, or a tenant's own app);
   unknown: 404;
3. the **tenant** is the one whose authorization of that app the event is addressed to (the
   business open_id among ``to_user_id`` / ``from_user_id``); none: 404;
4. ``X-Douyin-Signature`` = lowercase hex SHA-1 of (the app's secret + the raw body) is checked
   in constant time: bad or missing, 401 and nothing stored;
5. customer events go to core's inbox (dedupe on ``Msg-Id``), the echo of our own send becomes a
   receipt, account events (authorize / unauthorize) are applied and kept in ``douyin_events``,
   and events of an unknown type are kept there as ``ignored``. 200 at once.

A body that is not a Douyin event (not JSON, no ``event``) answers 400 before anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from typing import Any

from litestar import Request, get
from litestar.exceptions import HTTPException
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.domain.channels import InboundEvent, Receipt
from guanxi.core.domain.models import utcnow
from guanxi.core.domain.providers import SignatureError
from guanxi.core.queues.inbox import IngestResult
from guanxi.core.runtime import Runtime
from guanxi.plugins.douyin import callbacks, oauth
from guanxi.plugins.douyin.accounts import App, app_by_client_key, authorization_tenant
from guanxi.plugins.douyin.callbacks import ACCOUNT_EVENTS, CUSTOMER_EVENTS
from guanxi.plugins.douyin.client import DouyinError
from guanxi.plugins.douyin.lookups import lookups
from guanxi.plugins.douyin.models import DouyinAuthorization, DouyinConversation, DouyinEvent
from guanxi.plugins.douyin.state import douyin_state
from guanxi.webhooks import WebhookCall, WebhookTarget, webhook

log = logging.getLogger("guanxi.douyin")
#: the "tenant" of a verify_webhook request: none (nothing is stored for it)
NO_TENANT = uuid.UUID(int=0)


def signature(secret: str, body: bytes) -> str:
    """§D.2: lowercase hex SHA-1 of the secret's bytes followed by the raw body (not an HMAC)."""
    return hashlib.sha1(secret.encode("utf-8") + body).hexdigest()


async def find_tenant(call: WebhookCall) -> WebhookTarget:
    try:
        env = callbacks.decode(call.body)
        content = callbacks.content_of(env)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"malformed douyin webhook: {exc}") from None
    call.state["envelope"], call.state["content"] = env, content
    app = await app_by_client_key(call.runtime, env.client_key) if env.client_key else None
    if env.event == "verify_webhook":
        call.state["challenge"] = content.get("challenge")
        return WebhookTarget(tenant_id=NO_TENANT, settings=app)
    if app is None:
        raise NotFoundError("no Douyin app has this client_key")
    candidates = [env.from_user_id, env.to_user_id] if env.event in ("im_send_msg", *ACCOUNT_EVENTS) else [env.to_user_id, env.from_user_id]
    found = await authorization_tenant(call.runtime, app, candidates)
    if found is None or not await call.runtime.plugin_enabled("douyin", found[0]):
        raise NotFoundError("no tenant has this business account connected")
    tenant_id, account = found
    call.state["account"] = account
    other = next((o for o in (env.from_user_id, env.to_user_id) if o and o != account), "")
    call.state["customer"] = str(content.get("comment_user_id") or other) if env.event == "item_comment_reply" else other
    return WebhookTarget(tenant_id=tenant_id, settings=app)


def verify(call: WebhookCall) -> None:
    app: App | None = call.settings
    if app is None:  # a verify_webhook naming no app we know: answered, nothing stored or learnt
        return
    given = call.header("X-Douyin-Signature") or ""
    if not given:
        raise SignatureError("missing X-Douyin-Signature")
    if not app.signing_key or not hmac.compare_digest(given.strip().lower(), signature(app.signing_key, call.body)):
        if app.key:  # a tenant's app: its secret may have been rotated; Douyin's retry reads it afresh
            lookups(call.runtime).apps.drop(app.client_key)
        raise SignatureError("bad X-Douyin-Signature")


def _insert(runtime: Runtime) -> Any:
    return pg_insert if runtime.engine.dialect.name == "postgresql" else sqlite_insert


async def _keep(call: WebhookCall, key: str, status: str) -> bool:
    """Record an account-level or ignored event once per dedupe key (False: a duplicate), and
    apply authorize / unauthorize to the account in the same transaction."""
    env: callbacks.Envelope = call.state["envelope"]
    account: str = call.state["account"]
    assert call.tenant_id is not None
    # the person an ignored event is about (its body may hold what they wrote): export and erasure
    user = (call.state.get("customer") or None) if status == "ignored" else None
    union_id = callbacks.union_id_of(call.state["content"], user) if user else None
    async with call.runtime.write_session(call.tenant_id) as session:
        stmt = (
            _insert(call.runtime)(DouyinEvent)
            .values(
                tenant_id=call.tenant_id,
                dedupe_key=key,
                event=env.event[:64],
                account_open_id=account,
                status=status,
                body={"from_user_id": env.from_user_id, "to_user_id": env.to_user_id, "content": call.state["content"]},
                received_at=utcnow(),
                user_open_id=user[:128] if user else None,
                user_union_id=union_id,
            )
            .on_conflict_do_nothing()
            .returning(DouyinEvent.dedupe_key)
        )
        if (await session.execute(stmt)).scalar_one_or_none() is None:
            return False
        if status != "applied":
            return True
        row = await session.get(DouyinAuthorization, (call.tenant_id, account))
        if row is None:
            return True
        if env.event in ("unauthorize", "contract_unauthorize"):
            row.status, row.reason, row.tokens = "disconnected", "the business account revoked the authorization in Douyin", ""
            await session.execute(delete(DouyinConversation).where(DouyinConversation.account_open_id == account))
        elif isinstance(call.state["content"].get("scopes"), list):
            row.scopes = [str(s) for s in call.state["content"]["scopes"]][:50]
        row.updated_at = utcnow()
    lookups(call.runtime).authorizations.clear()  # after the commit: who holds the account may have changed
    return True


async def parse(call: WebhookCall) -> InboundEvent | Receipt | None:
    env: callbacks.Envelope = call.state["envelope"]
    if env.event == "verify_webhook":
        return None
    key = callbacks.dedupe_key(call.header("Msg-Id"), call.body)
    if env.event in ACCOUNT_EVENTS:
        await _keep(call, key, "applied")
        return None
    stored = None
    if env.event in CUSTOMER_EVENTS:
        app: App = call.settings
        stored = callbacks.to_stored(
            env,
            call.state["content"],
            key=key,
            account=call.state["account"],
            customer=call.state["customer"],
            client_key=app.client_key,
            echo_status=douyin_state(call.runtime).settings.echo_receipt_status,
        )
    if stored is None:
        log.info("douyin: kept an event of type %s as ignored", env.event[:64])
        await _keep(call, key, "ignored")
    return stored


def answer(call: WebhookCall, results: list[IngestResult]) -> dict[str, Any]:
    if "challenge" in call.state:
        return {"challenge": call.state["challenge"]}
    return {"ok": True, "stored": sum(not r.duplicate for r in results), "duplicates": sum(r.duplicate for r in results)}


douyin_webhook = webhook("/webhooks/douyin", plugin="douyin", tenant=find_tenant, verify=verify, parse=parse, answer=answer)


@get("/douyin/oauth/callback")
async def douyin_oauth_callback(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Where Douyin sends the browser back after authorization: the ``state`` names the tenant
    and app the authorization URL was made for; the code is exchanged for tokens and the
    business account is connected. A bad or expired state answers 400."""
    code, state = str(request.query_params.get("code") or ""), str(request.query_params.get("state") or "")
    if not code or not state:
        raise HTTPException(status_code=400, detail="code and state are required")
    try:
        connected = await oauth.complete(request.app.state.runtime, state=state, code=code)
    except ValidationError as exc:
        raise HTTPException(status_code=400, detail=exc.message) from None
    except ConflictError as exc:
        raise HTTPException(status_code=409, detail=exc.message) from None
    except DouyinError as exc:
        log.warning("douyin oauth callback failed: %s", exc.message)
        raise HTTPException(status_code=502, detail=f"Douyin refused the authorization: {exc.code}") from None
    return {"ok": True, "account": {"open_id": connected.open_id, "nickname": connected.nickname, "status": connected.status}}
