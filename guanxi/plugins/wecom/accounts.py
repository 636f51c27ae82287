"""WeCom corps as channel accounts: what a corp's account holds, and the corp the plugin works
with, made from an account row (:mod:`guanxi.core.services.accounts`).

A tenant connects its corp through GraphQL (``saveChannelAccount(channel: "wecom", …)``) or the
CLI; corps written in ``[plugins.wecom] corps`` (single-company deployments) are imported into
rows by ``guanxi db upgrade``. The callback URL is ``/wecom/callback/<account key>``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.channels import AccountSpec, ConfigAccount
from guanxi.core.runtime import Runtime
from guanxi.core.services import accounts
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.wecom.callbacks import CHANNEL
from guanxi.plugins.wecom.settings import CorpSettings, WecomSettings

#: ``session.info`` key: the corps made from the session's accounts (see :func:`tenant_corps`)
_CORPS = "wecom.corps"


class CorpAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The public settings of a corp's account (readable back through the API)."""

    #: The CorpID (``ww…``/``wx…``); also the receive id checked in every callback. Unique
    #: across tenants: two tenants cannot connect one corp.
    corp_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: WeCom UserID → Guanxi user email, for the staff mapping.
    staff: dict[str, str] = msgspec.field(default_factory=dict)
    #: Welcome text per contact-way ``state``; ``"*"`` is the default for any other add.
    welcome: dict[str, str] = msgspec.field(default_factory=dict)
    #: AgentId of the self-built app that sends staff notifications as application messages;
    #: unset: staff are not notified through WeCom.
    agent_id: int | None = None


class CorpSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The sealed, write-only part: callback Token, EncodingAESKey and the 客户联系 secret."""

    token: str = ""
    encoding_aes_key: str = ""
    secret: str = ""
    #: the notifying app's secret; "" means ``secret`` (a self-built app allowed both)
    agent_secret: str = ""


def check(settings: CorpAccount, secrets: CorpSecrets) -> list[tuple[str, str]]:
    from guanxi.plugins.wecom.crypto import aes_key

    if bool(secrets.token) != bool(secrets.encoding_aes_key):
        return [("secrets.token", "set both token and encoding_aes_key, or neither")]
    if secrets.encoding_aes_key:
        try:
            aes_key(secrets.encoding_aes_key)
        except ValueError as exc:
            return [("secrets.encoding_aes_key", str(exc))]
    return []


def spec(settings: WecomSettings) -> AccountSpec:
    configured = tuple(
        ConfigAccount(
            key=c.key,
            tenant=c.tenant,
            settings={"corp_id": c.corp_id, "staff": dict(c.staff), "welcome": dict(c.welcome), "agent_id": c.agent_id},
            secrets={"token": c.token, "encoding_aes_key": c.encoding_aes_key, "secret": c.secret, "agent_secret": c.agent_secret},
        )
        for c in settings.corps
    )
    return AccountSpec(
        channel=CHANNEL, settings=CorpAccount, secrets=CorpSecrets, provider_id="corp_id", check=check, config_accounts=configured
    )


def corp_of(account: accounts.Account) -> CorpSettings:
    """The corp the plugin's code works with (no secrets when the account is broken)."""
    settings: CorpAccount = account.settings
    secrets: CorpSecrets = account.secrets if account.secrets is not None else CorpSecrets()
    return CorpSettings(
        key=account.key,
        corp_id=settings.corp_id,
        token=secrets.token,
        encoding_aes_key=secrets.encoding_aes_key,
        secret=secrets.secret,
        staff=dict(settings.staff),
        welcome=dict(settings.welcome),
        agent_id=settings.agent_id,
        agent_secret=secrets.agent_secret,
    )


async def tenant_corp_accounts(runtime: Runtime, tenant_id: uuid.UUID, *, session: TenantSession | None = None) -> list[accounts.Account]:
    return await accounts.tenant_accounts(runtime, tenant_id, CHANNEL, session=session)


async def tenant_corps(runtime: Runtime, tenant_id: uuid.UUID, *, session: TenantSession | None = None) -> list[CorpSettings]:
    """The corps the tenant connected and can use (broken accounts left out): the one place a
    corp is chosen for a tenant's work, through the tenant chokepoint, so another tenant's corp
    is invisible (not merely refused). With a ``session``, made once per session for the same
    accounts (which core reads once per session)."""
    found = await tenant_corp_accounts(runtime, tenant_id, session=session)
    if session is None:
        return [corp_of(a) for a in found if a.broken is None]
    cached: tuple[list[accounts.Account], list[CorpSettings]] | None = session.info.get(_CORPS)
    # the same account objects (the session's cached ones, kept referenced here): the same corps
    if cached is None or len(cached[0]) != len(found) or any(a is not b for a, b in zip(cached[0], found, strict=True)):
        cached = session.info[_CORPS] = (found, [corp_of(a) for a in found if a.broken is None])
    return list(cached[1])


async def tenant_corp_by_id(
    runtime: Runtime, tenant_id: uuid.UUID, corp_id: str, *, session: TenantSession | None = None
) -> CorpSettings | None:
    return next((c for c in await tenant_corps(runtime, tenant_id, session=session) if c.corp_id == corp_id), None)


def usable(account: accounts.Account) -> CorpSettings:
    if account.broken is not None:
        raise ValidationError(f"WeCom corp {account.key!r} is broken: {account.broken}", field="corp")
    return corp_of(account)
