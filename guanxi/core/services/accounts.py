"""Channel accounts: a tenant's WeCom corps, Douyin apps and mailboxes, as tenant-owned rows.

A channel plugin declares what its accounts hold (``guanxi_channel_accounts`` →
:class:`~guanxi.core.domain.channels.AccountSpec`); this module stores, validates, seals and
finds them, for every channel plugin the same way:

* :func:`account_by_key` — a webhook route's lookup: the account named in its URL, and so its
  tenant. Never a default tenant.
* :func:`tenant_accounts` / :func:`tenant_account` — a tenant's own accounts, read through the
  tenant chokepoint: another tenant's account is not there, exactly like one that does not exist.
* :func:`save_account` / :func:`delete_account` — changes through GraphQL and the CLI, audited.

Secrets are sealed with AES-GCM under a key derived from the server secret
(:mod:`guanxi.core.base.sealing`), bound to the tenant, channel and account; they never leave
through the API (fingerprints only). An account whose secrets do not open is returned with
``broken`` set and no secrets; the others are unaffected.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.base.sealing import Sealer, SealError
from guanxi.core.domain.channels import AccountSpec
from guanxi.core.domain.models import ChannelAccount, utcnow
from guanxi.core.hooks.manager import per_plugin
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services.audit import audit
from guanxi.core.storage.tenancy import TenantSession, unscoped

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SPECS = "guanxi.account_specs"
_BY_KEY = "guanxi.accounts_by_key"
_SEALER = "guanxi.sealer"
#: ``session.info`` key: the accounts a session read, by channel (see :func:`tenant_accounts`)
_CACHE = "guanxi.channel_accounts"


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """One channel account as a plugin uses it. ``settings`` and ``secrets`` are instances of
    the plugin's declared structs; ``secrets`` is None when ``broken`` says why they do not open."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    channel: str
    key: str
    provider_id: str
    settings: Any
    secrets: Any | None
    fingerprints: dict[str, str | None]
    broken: str | None = None


def specs(runtime: Runtime) -> dict[str, tuple[str, AccountSpec]]:
    """Every declared account spec by channel, with the plugin that declared it (collected once)."""
    found: dict[str, tuple[str, AccountSpec]] | None = runtime.state.get(_SPECS)
    if found is None:
        found = {}
        for plugin, declared in per_plugin(runtime.pm.hook.guanxi_channel_accounts, runtime=runtime):
            for spec in declared:
                found[spec.channel] = (plugin, spec)
        runtime.state[_SPECS] = found
    return found


def sealer(runtime: Runtime) -> Sealer:
    """The runtime's sealer (reads the server secret once)."""
    found: Sealer | None = runtime.state.get(_SEALER)
    if found is None:
        found = runtime.state[_SEALER] = Sealer.from_settings(runtime.settings.auth)
    return found


def _spec(runtime: Runtime, channel: str) -> tuple[str, AccountSpec]:
    found = specs(runtime).get(channel)
    if found is None:
        known = ", ".join(sorted(specs(runtime))) or "none"
        raise ValidationError(f"channel {channel!r} has no accounts on this deployment (channels with accounts: {known})", field="channel")
    return found


def _context(tenant_id: uuid.UUID, channel: str, account_id: uuid.UUID) -> bytes:
    return f"channel-account/{tenant_id}/{channel}/{account_id}".encode()


def _account(runtime: Runtime, row: ChannelAccount) -> Account:
    spec = specs(runtime).get(row.channel)
    secrets: Any | None = None
    broken: str | None = None
    settings: Any = dict(row.settings)
    if spec is None:
        broken = f"no loaded plugin declares {row.channel!r} accounts"
    else:
        settings = msgspec.convert(row.settings, spec[1].settings)
        try:
            plain = sealer(runtime).open(row.secrets, _context(row.tenant_id, row.channel, row.id)) if row.secrets else b"{}"
            secrets = msgspec.json.decode(plain, type=spec[1].secrets)
        except (SealError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            broken = f"the secrets of this account cannot be read: {exc}; set them again"
    return Account(
        id=row.id,
        tenant_id=row.tenant_id,
        channel=row.channel,
        key=row.key,
        provider_id=row.provider_id,
        settings=settings,
        secrets=secrets,
        fingerprints=dict(row.fingerprints),
        broken=broken,
    )


async def account_by_key(runtime: Runtime, channel: str, key: str) -> Account | None:
    """The account a webhook URL names (``/wecom/callback/<key>``), and so its tenant; None when
    there is none. Only the tenant id is looked up across tenants; the row is read through
    the tenant's session.

    Every delivery of a webhook asks for it, so a process keeps an account it found for
    ``plugins.tenant_cache_s`` seconds (as it keeps a tenant's plugin choices): a change made
    in another process applies here within that time, one made in this process
    (:func:`save_account`, :func:`delete_account`, :func:`rekey`) at once."""
    if not KEY.match(key):
        return None
    cache = _found(runtime)
    now = time.monotonic()
    hit = cache.get((channel, key))
    if hit is not None and hit[0] > now:
        return hit[1]
    async with runtime.session(None) as session, unscoped(session):
        tenant_id = (
            await session.execute(select(ChannelAccount.tenant_id).where(ChannelAccount.channel == channel, ChannelAccount.key == key))
        ).scalar_one_or_none()
    if tenant_id is None:
        return None
    async with runtime.session(tenant_id) as session:
        row = (await session.execute(_by_key(channel, key))).scalar_one()
        account = _account(runtime, row)
    if runtime.settings.plugins.tenant_cache_s > 0:
        cache[(channel, key)] = (now + runtime.settings.plugins.tenant_cache_s, account)
    return account


def _found(runtime: Runtime) -> dict[tuple[str, str], tuple[float, Account]]:
    """This process's accounts found by :func:`account_by_key`: (channel, key) → (expiry, account)."""
    cache: dict[tuple[str, str], tuple[float, Account]] = runtime.state.setdefault(_BY_KEY, {})
    return cache


def forget_accounts(runtime: Runtime) -> None:
    """Drop every account this process keeps from :func:`account_by_key` (after accounts were
    removed other than by :func:`delete_account`: a purged tenant, rows deleted directly)."""
    _found(runtime).clear()


def _forget(tx: Tx, channel: str, key: str) -> None:
    """Drop this process's copy of an account that is changing: now, and once the change committed."""

    def forget() -> None:
        _found(tx.runtime).pop((channel, key), None)

    forget()
    tx.after_commit(forget)


def _by_key(channel: str, key: str) -> Any:
    return select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.key == key)


async def tenant_accounts(
    runtime: Runtime, tenant_id: uuid.UUID, channel: str | None = None, *, session: TenantSession | None = None
) -> list[Account]:
    """The tenant's accounts (of one channel, or all), by key. The one way a plugin finds the
    accounts of a tenant's work: scoped by the tenant chokepoint. Read (and their secrets
    opened) once per ``session``: a batch of the inbox asks for them per event; the session's
    own changes (:func:`save_account`, :func:`delete_account`) forget them."""
    stmt = select(ChannelAccount).order_by(ChannelAccount.channel, ChannelAccount.key)
    if channel is not None:
        stmt = stmt.where(ChannelAccount.channel == channel)
    if session is not None:
        cache: dict[str | None, list[Account]] = session.info.setdefault(_CACHE, {})
        if (cached := cache.get(channel)) is None:
            rows = (await session.execute(stmt)).scalars().all()
            cached = cache[channel] = [_account(runtime, row) for row in rows]
        return list(cached)
    else:
        async with runtime.session(tenant_id) as own:
            rows = (await own.execute(stmt)).scalars().all()
    return [_account(runtime, row) for row in rows]


async def tenant_account(runtime: Runtime, tenant_id: uuid.UUID, channel: str, key: str) -> Account:
    """One of the tenant's accounts; another tenant's answers exactly like a missing one."""
    for account in await tenant_accounts(runtime, tenant_id, channel):
        if account.key == key:
            return account
    raise NotFoundError(f"no {channel} account {key!r} in this tenant", field="key")


def _validation(exc: msgspec.ValidationError, prefix: str) -> ValidationError:
    message = str(exc)
    path = re.search(r"at `\$(\.[^`]*)?`", message)
    field = prefix + (path.group(1) or "") if path else prefix
    return ValidationError(f"invalid {field}: {message.split(' - at ', maxsplit=1)[0]}", field=field)


def _secret_fields(spec: AccountSpec) -> tuple[str, ...]:
    return tuple(spec.secrets.__struct_fields__)


async def save_account(
    tx: Tx, channel: str, key: str, *, settings: Mapping[str, Any] | None = None, secrets: Mapping[str, str | None] | None = None
) -> Account:
    """Create the tenant's account ``key`` of ``channel``, or update it. ``settings`` replace the
    public settings (required on creation); ``secrets`` set the secret fields given (None or ""
    clears one) and keep the others. Refused, with the key path at fault: a channel without
    accounts or whose plugin the tenant disabled, a bad key, settings or secrets that do not
    validate, a key or provider account id another account already has."""
    runtime = tx.runtime
    plugin, spec = _spec(runtime, channel)
    await runtime.require_plugin(plugin, tx.tenant_id)
    if not KEY.match(key):
        raise ValidationError("key must be 1 to 64 characters of a-z, 0-9, _ and -, starting with a letter or digit", field="key")
    _forget(tx, channel, key)
    session = tx.session
    session.info.pop(_CACHE, None)
    row = (await session.execute(_by_key(channel, key))).scalar_one_or_none()
    if row is None and settings is None:
        raise ValidationError("settings are required to create an account", field="settings")
    try:
        decoded = msgspec.convert(dict(settings if settings is not None else row.settings), spec.settings)  # type: ignore[union-attr]
    except msgspec.ValidationError as exc:
        raise _validation(exc, "settings") from None
    fields = _secret_fields(spec)
    unknown = sorted(set(secrets or {}) - set(fields))
    if unknown:
        raise ValidationError(
            f"unknown secret field {unknown[0]!r}; the secrets of {channel} are {', '.join(fields)}", field=f"secrets.{unknown[0]}"
        )
    current: dict[str, str] = {}
    if row is not None:
        existing = _account(runtime, row)
        if existing.secrets is not None:
            current = msgspec.structs.asdict(existing.secrets)
    for name, value in (secrets or {}).items():
        current[name] = value or ""
    try:
        sealed_secrets = msgspec.convert(current, spec.secrets)
    except msgspec.ValidationError as exc:
        raise _validation(exc, "secrets") from None
    for field, problem in spec.check(decoded, sealed_secrets) if spec.check else ():
        raise ValidationError(f"invalid {field}: {problem}", field=field)
    provider_id = str(getattr(decoded, spec.provider_id) or "")
    if not provider_id:
        raise ValidationError(f"settings.{spec.provider_id} is required", field=f"settings.{spec.provider_id}")
    await _check_unique(tx, channel, key, provider_id, row.id if row is not None else None, spec)
    created = row is None
    if row is None:
        row = ChannelAccount(channel=channel, key=key, provider_id=provider_id, settings={}, fingerprints={})
        session.add(row)
        await session.flush()
    box = sealer(runtime)
    values = msgspec.structs.asdict(sealed_secrets)
    changed_secrets = sorted(n for n in (secrets or {}) if box.fingerprint(values[n]) != row.fingerprints.get(n) or not values[n])
    changed_settings = sorted(k for k, v in msgspec.to_builtins(decoded).items() if row.settings.get(k) != v)
    row.provider_id = provider_id
    row.settings = msgspec.to_builtins(decoded)
    row.secrets = box.seal(msgspec.json.encode(sealed_secrets), _context(tx.tenant_id, channel, row.id))
    row.fingerprints = {name: box.fingerprint(values[name]) if values[name] else None for name in fields}
    row.updated_at = utcnow()
    audit(
        tx,
        "channel_account." + ("create" if created else "update"),
        "channel_account",
        row.id,
        {"channel": channel, "key": key, "settings_changed": changed_settings, "secrets_changed": changed_secrets},
    )
    try:
        await session.flush()
    except IntegrityError:
        raise ConflictError(f"a {channel} account with this key or {spec.provider_id} exists already", field="key") from None
    return _account(runtime, row)


async def _check_unique(tx: Tx, channel: str, key: str, provider_id: str, own_id: uuid.UUID | None, spec: AccountSpec) -> None:
    """Keys and provider account ids are unique per channel across tenants: checked across
    tenants (only whether one exists is learnt, nothing of the other account)."""
    async with unscoped(tx.session):
        clash = (
            await tx.session.execute(
                select(ChannelAccount.key, ChannelAccount.provider_id).where(
                    ChannelAccount.channel == channel,
                    or_(ChannelAccount.key == key, ChannelAccount.provider_id == provider_id),
                    ChannelAccount.id != own_id if own_id is not None else ChannelAccount.channel == channel,
                )
            )
        ).first()
    if clash is None:
        return
    if clash.provider_id == provider_id:
        raise ConflictError(
            f"this {channel} account ({spec.provider_id} {provider_id!r}) is already connected on this deployment",
            field=f"settings.{spec.provider_id}",
        )
    raise ConflictError(f"the {channel} account key {key!r} is taken; choose another", field="key")


async def delete_account(tx: Tx, channel: str, key: str) -> None:
    """Remove one of the tenant's accounts (its webhooks answer 404 from then on), audited."""
    tx.session.info.pop(_CACHE, None)
    row = (await tx.session.execute(_by_key(channel, key))).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no {channel} account {key!r} in this tenant", field="key")
    audit(tx, "channel_account.delete", "channel_account", row.id, {"channel": channel, "key": key})
    await tx.session.delete(row)
    _forget(tx, channel, key)


async def rekey(runtime: Runtime) -> tuple[int, int]:
    """Re-seal every account's secrets under the current key (after a server-secret rotation,
    with the old one in ``auth.previous_secrets``). Returns (re-sealed, broken): broken accounts
    are left as they are."""
    box = sealer(runtime)
    resealed = broken = 0
    forget_accounts(runtime)
    async with runtime.write_session(None) as session, unscoped(session):
        for row in (await session.execute(select(ChannelAccount))).scalars().all():
            if not row.secrets or Sealer.key_of(row.secrets) == box.key_id:
                continue
            context = _context(row.tenant_id, row.channel, row.id)
            try:
                plain = box.open(row.secrets, context)
            except SealError:
                broken += 1
                continue
            row.secrets = box.seal(plain, context)
            resealed += 1
    return resealed, broken


async def import_config_accounts(runtime: Runtime, *, tenant_id: uuid.UUID | None = None) -> tuple[list[str], list[str]]:
    """Import the accounts of plugins' config sections into rows (``guanxi db upgrade``): an
    account whose key no row has yet is created in its tenant (its ``tenant`` slug; "" is
    ``tenant_id`` if given, else the configured tenant); existing rows are left alone (after the
    import the rows are the truth: edit them through GraphQL or the CLI). Returns
    (``channel/key`` imported, ``channel/key: why`` skipped: a tenant that does not exist yet)."""
    from guanxi.core.base.context import RequestContext

    imported: list[str] = []
    skipped: list[str] = []
    for _plugin, spec in specs(runtime).values():
        for account in spec.config_accounts:
            async with runtime.session(None) as session, unscoped(session):
                exists = (
                    await session.execute(
                        select(ChannelAccount.id).where(ChannelAccount.channel == spec.channel, ChannelAccount.key == account.key)
                    )
                ).first()
            if exists is not None:
                continue
            try:
                tenant = tenant_id if tenant_id is not None and not account.tenant else await runtime.tenant_id(account.tenant or None)
            except NotFoundError as exc:
                skipped.append(f"{spec.channel}/{account.key}: {exc}")
                continue
            async with runtime.transaction(RequestContext(tenant_id=tenant)) as tx:
                await save_account(tx, spec.channel, account.key, settings=account.settings, secrets=account.secrets)
            imported.append(f"{spec.channel}/{account.key}")
    return imported, skipped
