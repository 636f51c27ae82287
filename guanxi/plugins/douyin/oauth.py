"""Connecting a business account (§D.7): an authorization URL whose ``state`` is remembered for
the tenant, then the callback that exchanges the code and stores the authorization."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import msgspec
from sqlalchemy import delete, select

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.domain.models import utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import unscoped
from guanxi.plugins.douyin import privacy, tokens
from guanxi.plugins.douyin.accounts import connected_elsewhere, tenant_app
from guanxi.plugins.douyin.client import DouyinError
from guanxi.plugins.douyin.lookups import lookups
from guanxi.plugins.douyin.models import DouyinAuthorization, DouyinOAuthState
from guanxi.plugins.douyin.state import douyin_state


class Authorize(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    state: str


class Connected(msgspec.Struct, frozen=True, kw_only=True):
    open_id: str
    nickname: str | None
    status: str


async def start(runtime: Runtime, ctx: RequestContext, app_key: str | None) -> Authorize:
    """An authorization URL for the tenant's app (the deployment app by default)."""
    settings = douyin_state(runtime).settings
    if not settings.redirect_uri:
        raise ValidationError("plugins.douyin.redirect_uri is not configured", field="app")
    app = await tenant_app(runtime, ctx.tenant_id, app_key)
    state = secrets.token_urlsafe(24)
    async with runtime.transaction(ctx) as tx:
        tx.session.add(DouyinOAuthState(state=state, app_key=app.key, created_at=utcnow()))
    url = douyin_state(runtime).client(app).authorize_url(scopes=list(settings.scopes), redirect_uri=settings.redirect_uri, state=state)
    return Authorize(url=url, state=state)


async def _state_tenant(runtime: Runtime, state: str) -> uuid.UUID | None:
    if not state or len(state) > 64:
        return None
    async with runtime.session(None) as session, unscoped(session):
        return (await session.execute(select(DouyinOAuthState.tenant_id).where(DouyinOAuthState.state == state))).scalar_one_or_none()


async def complete(runtime: Runtime, *, state: str, code: str) -> Connected:
    """Exchange ``code`` for the business account's tokens and connect it to the tenant that
    made the URL. The state is single use; an unknown or expired one is refused (VALIDATION)."""
    settings = douyin_state(runtime).settings
    tenant_id = await _state_tenant(runtime, state)
    if tenant_id is None:
        raise ValidationError("unknown or used authorization state", field="state")
    async with runtime.write_session(tenant_id) as session:
        row = await session.get(DouyinOAuthState, (tenant_id, state))
        await session.execute(delete(DouyinOAuthState).where(DouyinOAuthState.state == state))
    if row is None or utcnow() - row.created_at > dt.timedelta(seconds=settings.oauth_state_ttl_s):
        raise ValidationError("the authorization state expired; ask for a new authorization URL", field="state")
    app = await tenant_app(runtime, tenant_id, row.app_key or None)
    client = douyin_state(runtime).client(app)
    got = await client.exchange_code(code)
    if not got.open_id or not got.access_token:
        raise DouyinError("Douyin /oauth/access_token/ answered without open_id or access_token")
    if await connected_elsewhere(runtime, tenant_id, app.client_key, got.open_id):
        raise ConflictError("this Douyin account is already connected to another tenant", field="state")
    try:
        info = await client.userinfo(got.access_token, got.open_id)
    except DouyinError:
        info = {}  # the account connects all the same; its name comes with the next refresh
    now = utcnow()
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        auth = await tx.session.get(DouyinAuthorization, (tenant_id, got.open_id))
        if auth is None:
            auth = DouyinAuthorization(open_id=got.open_id, client_key=app.client_key, renewals=0, scopes=[], tokens="", connected_at=now)
            tx.session.add(auth)
        auth.tenant_id = tenant_id
        auth.client_key, auth.app_key = app.client_key, app.key
        auth.status, auth.reason, auth.renewals, auth.connected_at = "connected", None, 0, now
        auth.scopes = [s for s in got.scope.split(",") if s]
        auth.nickname = str(info.get("nickname") or "") or auth.nickname
        auth.avatar_url = str(info.get("avatar") or "") or auth.avatar_url
        auth.union_id = str(info.get("union_id") or "") or got.union_id or auth.union_id
        auth.tokens = ""
        tokens.store(runtime, auth, got, now=now)
        await privacy.schedule_purge(tx)
        tx.after_commit(lookups(runtime).authorizations.clear)  # webhooks to it find this tenant at once
        return Connected(open_id=auth.open_id, nickname=auth.nickname, status=auth.status)
