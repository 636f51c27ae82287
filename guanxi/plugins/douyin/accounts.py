"""Douyin apps and the business accounts that authorized them.

An **app** (client_key + client_secret) is either the deployment-wide app of the config section
(a SaaS vendor's app that many businesses authorize; the usual case) or a tenant's own app, a
channel account (``saveChannelAccount(channel: "douyin", …)``, secrets sealed by core). An app
has one callback URL (``/webhooks/douyin``) and one secret, so a webhook names its app by
``client_key`` in the body; the tenant is the one whose **authorization** (a
:class:`~guanxi.plugins.douyin.models.DouyinAuthorization` row: a business account's open_id that
authorized the app for it) the event is addressed to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.channels import AccountSpec
from guanxi.core.domain.models import ChannelAccount
from guanxi.core.runtime import Runtime
from guanxi.core.services import accounts
from guanxi.core.storage.tenancy import TenantSession, unscoped
from guanxi.plugins.douyin.lookups import lookups
from guanxi.plugins.douyin.models import DouyinAuthorization
from guanxi.plugins.douyin.settings import DouyinSettings

CHANNEL = "douyin"


class AppAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A tenant's own Douyin app: its public settings."""

    #: The app's client_key: unique across tenants (two tenants cannot connect one app).
    client_key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class AppSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The sealed, write-only part of a tenant's app."""

    client_secret: str = ""
    #: a separate webhook signing secret, when the console issued one (§D.2, UNCONFIRMED);
    #: "" means the client_secret signs webhooks
    webhook_secret: str = ""


@dataclass(frozen=True)
class App:
    """An app as the plugin uses it. ``key`` is the channel account's key, "" for the deployment
    app; ``tenant_id`` the owning tenant of a tenant's app (None for the deployment app)."""

    key: str
    client_key: str
    client_secret: str
    webhook_secret: str
    tenant_id: uuid.UUID | None

    def __repr__(self) -> str:  # never the secrets
        return f"App(key={self.key!r}, client_key={self.client_key!r})"

    @property
    def signing_key(self) -> str:
        return self.webhook_secret or self.client_secret


def spec(settings: DouyinSettings) -> AccountSpec:
    def check(app: AppAccount, secrets: AppSecrets) -> list[tuple[str, str]]:
        if settings.client_key and app.client_key == settings.client_key:
            return [("settings.client_key", "this is the deployment's own app; authorize it with connectDouyinAccount instead")]
        return []

    return AccountSpec(channel=CHANNEL, settings=AppAccount, secrets=AppSecrets, provider_id="client_key", check=check)


def deployment_app(settings: DouyinSettings) -> App | None:
    if not settings.client_key or not settings.client_secret:
        return None
    return App(
        key="", client_key=settings.client_key, client_secret=settings.client_secret, webhook_secret=settings.webhook_secret, tenant_id=None
    )


def app_of(account: accounts.Account) -> App | None:
    """A tenant's app from its account row; None when its secrets do not open (broken)."""
    if account.broken is not None or account.secrets is None:
        return None
    secrets: AppSecrets = account.secrets
    return App(
        key=account.key,
        client_key=account.settings.client_key,
        client_secret=secrets.client_secret,
        webhook_secret=secrets.webhook_secret,
        tenant_id=account.tenant_id,
    )


async def app_by_client_key(runtime: Runtime, client_key: str) -> App | None:
    """The app a webhook names: the deployment app, else the tenant app with this client_key
    (only its tenant id is looked up across tenants; the row is read through the tenant's session)."""
    settings: DouyinSettings = runtime.plugin_settings(CHANNEL)
    found = deployment_app(settings)
    if found is not None and found.client_key == client_key:
        return found
    if not client_key or len(client_key) > 64:
        return None
    cache = lookups(runtime).apps
    cached = cache.get(client_key)
    if cached is not None:
        return cached
    app = await _tenant_app_by_client_key(runtime, client_key)
    if app is not None:
        cache.put(client_key, app)
    return app


async def _tenant_app_by_client_key(runtime: Runtime, client_key: str) -> App | None:
    async with runtime.session(None) as session, unscoped(session):
        tenant_id = (
            await session.execute(
                select(ChannelAccount.tenant_id).where(ChannelAccount.channel == CHANNEL, ChannelAccount.provider_id == client_key)
            )
        ).scalar_one_or_none()
    if tenant_id is None:
        return None
    for account in await accounts.tenant_accounts(runtime, tenant_id, CHANNEL):
        if account.provider_id == client_key:
            return app_of(account)
    return None


async def tenant_app(runtime: Runtime, tenant_id: uuid.UUID, key: str | None, *, session: TenantSession | None = None) -> App:
    """The app a tenant works with: its own app ``key``; without a key, the deployment app when
    there is one, else the tenant's only app. Another tenant's app answers like a missing one."""
    own = await accounts.tenant_accounts(runtime, tenant_id, CHANNEL, session=session)
    if key:
        account = next((a for a in own if a.key == key), None)
        if account is None:
            raise NotFoundError(f"no Douyin app {key!r} in this tenant", field="app")
        app = app_of(account)
        if app is None or not app.client_secret:
            raise ValidationError(f"the Douyin app {key!r} has no usable client_secret; set it again", field="app")
        return app
    found = deployment_app(runtime.plugin_settings(CHANNEL))
    if found is not None:
        return found
    usable = [a for a in (app_of(x) for x in own) if a is not None and a.client_secret]
    if len(usable) == 1:
        return usable[0]
    raise NotFoundError("no Douyin app is configured for this tenant; give `app` (the channel account's key)", field="app")


async def authorization_tenant(runtime: Runtime, app: App, open_ids: list[str]) -> tuple[uuid.UUID, str] | None:
    """Which tenant authorized ``app`` for one of these business open_ids, and which open_id:
    only (tenant id, open_id) is looked up across tenants. A connected authorization wins over
    a disconnected one; a tenant's own app only ever serves its tenant."""
    wanted = [o for o in open_ids if o]
    if not wanted:
        return None
    cache = lookups(runtime).authorizations
    # per open_id, the (tenant, status) of its authorizations of this app; none is an answer too
    # (most candidates are customers' open_ids, not business accounts)
    known = {o: cache.get((app.client_key, app.tenant_id, o)) for o in wanted}
    for o in wanted:  # a connected authorization of the first open_id known to have one wins outright
        if known[o] is None:
            break
        connected = next((tenant for tenant, status in known[o] or () if status == "connected"), None)
        if connected is not None:
            return connected, o
    if any(v is None for v in known.values()):
        async with runtime.session(None) as session, unscoped(session):
            stmt = select(DouyinAuthorization.tenant_id, DouyinAuthorization.open_id, DouyinAuthorization.status).where(
                DouyinAuthorization.client_key == app.client_key, DouyinAuthorization.open_id.in_(wanted)
            )
            if app.tenant_id is not None:
                stmt = stmt.where(DouyinAuthorization.tenant_id == app.tenant_id)
            rows = list((await session.execute(stmt)).all())
        for o in wanted:
            mine = tuple((r.tenant_id, r.status) for r in rows if r.open_id == o)
            known[o] = mine
            cache.put((app.client_key, app.tenant_id, o), mine)
    found = [(status != "connected", wanted.index(o), tenant, o) for o in wanted for tenant, status in known[o] or ()]
    if not found:
        return None
    found.sort(key=lambda f: (f[0], f[1]))
    return found[0][2], found[0][3]


async def connected_elsewhere(runtime: Runtime, tenant_id: uuid.UUID, client_key: str, open_id: str) -> bool:
    """Whether another tenant holds a connected authorization of this business account (only
    whether one exists is learnt)."""
    async with runtime.session(None) as session, unscoped(session):
        found = (
            await session.execute(
                select(DouyinAuthorization.tenant_id).where(
                    DouyinAuthorization.client_key == client_key,
                    DouyinAuthorization.open_id == open_id,
                    DouyinAuthorization.status == "connected",
                    DouyinAuthorization.tenant_id != tenant_id,
                )
            )
        ).first()
    return found is not None
