"""A business account's user tokens (§D.7): stored sealed on its authorization row, refreshed
before they expire, the refresh token renewed within its renewal limit, and refreshed once and
retried when a call finds the access token expired mid-run (2190008 …).

When the refresh token is expired (10010) or has been renewed as often as allowed (10020), the
account is marked ``disconnected`` with a reason a person can act on, and the call fails with
:class:`DouyinDisconnectedError`; nothing loops. Refreshes of one account are single flight."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from guanxi.core.domain.models import utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services.accounts import sealer
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.douyin.accounts import App, tenant_app
from guanxi.plugins.douyin.client import (
    DouyinApiError,
    DouyinClient,
    DouyinRefreshExpiredError,
    DouyinRefreshLimitError,
    DouyinTokenExpiredError,
    TokenSet,
)
from guanxi.plugins.douyin.lookups import lookups
from guanxi.plugins.douyin.models import DouyinAuthorization
from guanxi.plugins.douyin.state import douyin_state

T = TypeVar("T")
REAUTHORIZE = "the business account must authorize the app again (connectDouyinAccount)"


class DouyinDisconnectedError(DouyinApiError):
    """The account is disconnected (revoked, or its refresh token is used up): authorize again."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = "CHANNEL_ACCOUNT_DISCONNECTED"


class Tokens(msgspec.Struct, frozen=True):
    access_token: str = ""
    refresh_token: str = ""


def _context(tenant_id: uuid.UUID, open_id: str) -> bytes:
    return f"douyin-tokens/{tenant_id}/{open_id}".encode()


def seal(runtime: Runtime, tenant_id: uuid.UUID, open_id: str, tokens: Tokens) -> str:
    return sealer(runtime).seal(msgspec.json.encode(tokens), _context(tenant_id, open_id))


def unseal(runtime: Runtime, row: DouyinAuthorization) -> Tokens:
    if not row.tokens:
        return Tokens()
    return msgspec.json.decode(sealer(runtime).open(row.tokens, _context(row.tenant_id, row.open_id)), type=Tokens)


def store(runtime: Runtime, row: DouyinAuthorization, got: TokenSet, *, now: dt.datetime, renewed: bool = False) -> None:
    """Put what an OAuth endpoint answered on the row (fields it left out are kept)."""
    current = unseal(runtime, row)
    tokens = Tokens(access_token=got.access_token or current.access_token, refresh_token=got.refresh_token or current.refresh_token)
    row.tokens = seal(runtime, row.tenant_id, row.open_id, tokens)
    if got.access_token and got.expires_in:
        row.access_expires_at = now + dt.timedelta(seconds=got.expires_in)
    if got.refresh_token and got.refresh_expires_in:
        row.refresh_expires_at = now + dt.timedelta(seconds=got.refresh_expires_in)
    if renewed:
        row.renewals += 1
    row.updated_at = now


def disconnect(row: DouyinAuthorization, reason: str) -> None:
    row.status, row.reason, row.updated_at = "disconnected", reason[:300], utcnow()
    row.tokens = ""


async def _load(session: TenantSession, open_id: str) -> DouyinAuthorization:
    row = await session.get(DouyinAuthorization, (session.tenant_id, open_id), populate_existing=True)
    if row is None:
        raise DouyinDisconnectedError(f"no Douyin account {open_id!r} is connected to this tenant")
    return row


class _Outcome(msgspec.Struct):
    """What a refresh got: the answers to store (``renewed`` for a renewal), or why the account
    is disconnected."""

    answers: list[tuple[TokenSet, bool]] = msgspec.field(default_factory=list)
    disconnected: str | None = None


async def _refresh(runtime: Runtime, client: DouyinClient, row: DouyinAuthorization, tokens: Tokens) -> _Outcome:
    """Renew the refresh token when it is close to expiry (and renewals remain), then refresh
    the access token (HTTP only; the caller stores the outcome)."""
    settings = douyin_state(runtime).settings
    now = utcnow()
    outcome = _Outcome()
    try:
        refresh_token = tokens.refresh_token
        near = row.refresh_expires_at is not None and row.refresh_expires_at - now < dt.timedelta(seconds=settings.renew_margin_s)
        if near and row.renewals < settings.max_renewals:
            renewed = await client.renew_refresh_token(refresh_token)
            outcome.answers.append((renewed, True))
            refresh_token = renewed.refresh_token or refresh_token
        elif row.refresh_expires_at is not None and row.refresh_expires_at <= now:
            raise DouyinRefreshExpiredError("the refresh token expired", error_code=10010)
        outcome.answers.append((await client.refresh(refresh_token), False))
    except DouyinRefreshLimitError:
        outcome.disconnected = f"the refresh token was renewed {row.renewals} times, Douyin's limit: {REAUTHORIZE}"
    except DouyinRefreshExpiredError:
        outcome.disconnected = f"the refresh token expired: {REAUTHORIZE}"
    return outcome


async def access_token(runtime: Runtime, tenant_id: uuid.UUID, open_id: str, *, stale: str | None = None) -> tuple[App, str]:
    """The account's app and a valid access token: the stored one, or a new one when it is
    close to expiry or is ``stale`` (a token a call just saw refused). No database lock is
    held while Douyin answers."""
    state = douyin_state(runtime)
    margin = dt.timedelta(seconds=state.settings.refresh_margin_s)
    async with state.lock(tenant_id, open_id):
        async with runtime.session(tenant_id) as session:
            row = await _load(session, open_id)
            if row.status != "connected":
                raise DouyinDisconnectedError(f"the Douyin account {open_id!r} is disconnected: {row.reason or REAUTHORIZE}")
            app = await tenant_app(runtime, tenant_id, row.app_key or None, session=session)
            tokens = unseal(runtime, row)
            fresh = row.access_expires_at is not None and row.access_expires_at - utcnow() > margin
            if tokens.access_token and fresh and tokens.access_token != stale:
                return app, tokens.access_token
            outcome = await _refresh(runtime, state.client(app), row, tokens)
        async with runtime.write_session(tenant_id) as session:
            row = await _load(session, open_id)
            now = utcnow()
            for answer, renewed in outcome.answers:
                store(runtime, row, answer, now=now, renewed=renewed)
            if outcome.disconnected is not None:
                disconnect(row, outcome.disconnected)
            token = unseal(runtime, row).access_token
    if outcome.disconnected is not None:
        lookups(runtime).authorizations.clear()  # a connected authorization of another tenant now wins
        raise DouyinDisconnectedError(f"the Douyin account {open_id!r} is disconnected: {outcome.disconnected}")
    return app, token


async def with_token(runtime: Runtime, tenant_id: uuid.UUID, open_id: str, call: Callable[[DouyinClient, str], Awaitable[T]]) -> T:
    """Run ``call(client, access_token)``; when Douyin says the token expired, refresh once and
    run it again (a second expiry is an error, not a loop)."""
    app, token = await access_token(runtime, tenant_id, open_id)
    client = douyin_state(runtime).client(app)
    try:
        return await call(client, token)
    except DouyinTokenExpiredError:
        app, token = await access_token(runtime, tenant_id, open_id, stale=token)
        return await call(douyin_state(runtime).client(app), token)
