"""Who is calling: API keys and JWT bearer tokens turned into a :class:`RequestContext`.

* **API keys** look like ``gx_<key_id>_<secret>``. They are shown once, when created; the database
  keeps only ``HMAC-SHA256(server secret, key)``. A fast keyed hash is enough here (and a slow one
  would cost every request): the secret part has 192 random bits, so there is nothing to
  brute-force without the server secret, which lives outside the database. While the secret
  is rotated, keys hashed under one of ``auth.previous_secrets`` are accepted and re-hashed
  under the current secret at their next use.
* **JWT bearer tokens** (HS256 with ``auth.jwt_secret``, RS256 with a PEM public key or a JWKS
  file) carry ``tenant`` (slug), ``sub`` (a user's id or e-mail) and ``roles``.

The resulting context carries the caller's roles and, for record ownership, the owners whose
customers it may see (``owners``; None means all): a salesperson their own, a manager their
team's. :mod:`guanxi.core.storage.tenancy` applies that in every query.

Nothing here logs a key, a token or a secret, and error messages never contain them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select, update

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import BusyError, ConfigError, GuanxiError, NotFoundError, ValidationError
from guanxi.core.base.sealing import server_secret
from guanxi.core.domain.access import ROLES
from guanxi.core.domain.models import ApiKey, OperatorKey, Tenant, User, utcnow
from guanxi.core.services.audit import audit
from guanxi.core.storage.db import BOOKKEEPING
from guanxi.core.storage.tenancy import unscoped

if TYPE_CHECKING:
    from guanxi.core.runtime import Runtime, Tx
    from guanxi.core.storage.tenancy import TenantSession

log = logging.getLogger("guanxi.auth")

KEY_PREFIX = "gx_"
#: how often ``last_used_at`` is written for one key (a write per request would serialise reads)
LAST_USED_EVERY_S = 60.0


class AuthenticationError(GuanxiError):
    """No valid credentials. The message says what was wrong, never the credential itself."""

    code = "UNAUTHENTICATED"


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    key_id: str
    name: str
    role: str
    user_id: uuid.UUID | None
    created_at: dt.datetime
    created_by: str | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class CreatedApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A new key: ``key`` is the only time the secret is available."""

    info: ApiKeyInfo
    key: str


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        key_id=row.key_id,
        name=row.name,
        role=row.role,
        user_id=row.user_id,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def hash_key(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def matching_secret(stored: str, key: str, secrets_: list[bytes]) -> int | None:
    """Which of the server secrets (the current one first, then ``auth.previous_secrets``) the
    stored hash of ``key`` was made with, or None. Every candidate is compared, in constant time."""
    found = None
    for i, secret in enumerate(secrets_):
        if hmac.compare_digest(stored, hash_key(secret, key)) and found is None:
            found = i
    return found


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}; roles are {', '.join(ROLES)}", field="role")


async def create_api_key(tx: Tx, secret: bytes, *, name: str, role: str, user_id: uuid.UUID | None = None) -> CreatedApiKey:
    """Create a key in the transaction's tenant, made by its actor, and audit it. A ``sales`` or
    ``manager`` key needs a user: ownership is decided by who the user is."""
    session = tx.session
    _check_role(role)
    if role in ("sales", "manager") and user_id is None:
        raise ValidationError(f"a {role} key acts for a user: give one", field="userId")
    if user_id is not None:
        user = await session.get(User, (session.tenant_id, user_id))
        if user is None or not user.active:
            raise NotFoundError(f"user {user_id} not found or inactive", field="userId")
    key_id = secrets.token_hex(8)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    row = ApiKey(
        key_id=key_id, secret_hash=hash_key(secret, key), name=name or role, role=role, user_id=user_id, created_by=tx.ctx.actor.name
    )
    session.add(row)
    await session.flush()
    audit(tx, "apikey.create", "apikey", row.id, {"key_id": key_id, "role": role, "name": row.name})
    return CreatedApiKey(info=_info(row), key=key)


async def list_api_keys(session: TenantSession) -> list[ApiKeyInfo]:
    rows = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).all()
    return [_info(r) for r in rows]


async def revoke_api_key(tx: Tx, key_id: str) -> ApiKeyInfo:
    """Revoke a key of the transaction's tenant (again: a no-op) and audit it."""
    row = (await tx.session.scalars(select(ApiKey).where(ApiKey.key_id == key_id))).one_or_none()
    if row is None:
        raise NotFoundError(f"API key {key_id!r} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await tx.session.flush()
        audit(tx, "apikey.revoke", "apikey", row.id, {"key_id": key_id, "role": row.role, "name": row.name})
    return _info(row)


@dataclass
class _Cached:
    context: RequestContext
    principal: str
    checked_at: float


class Authenticator:
    """Turns an ``Authorization: Bearer …`` credential into a :class:`RequestContext`.

    Verified API keys are remembered for ``auth.key_cache_s`` seconds (a revocation made through
    this process applies at once; one made elsewhere within that delay).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.auth
        self._secret: bytes | None = None
        self._cache: dict[str, _Cached] = {}
        self._last_used: dict[str, float] = {}
        self._unwritten: dict[str, tuple[uuid.UUID, dt.datetime]] = {}
        #: keys verified under a previous server secret: their hash under the current one, to write
        self._rehash: dict[str, tuple[uuid.UUID, str, str]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._jwt_key: Any = None
        self._jwks: Any = None
        self._load_jwt_keys()

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = server_secret(self.settings)
        return self._secret

    @property
    def secrets(self) -> list[bytes]:
        """The current server secret, then ``auth.previous_secrets`` (a rotation in progress)."""
        return [self.secret, *(s.encode() for s in self.settings.previous_secrets)]

    def _load_jwt_keys(self) -> None:
        s = self.settings
        try:
            if s.jwt_public_key_file:
                self._jwt_key = Path(s.jwt_public_key_file).read_text(encoding="utf-8")
            if s.jwt_jwks_file:
                import jwt

                self._jwks = jwt.PyJWKSet.from_json(Path(s.jwt_jwks_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"$.auth: cannot read a JWT key file: {exc.strerror}: {exc.filename}") from None
        except Exception as exc:
            raise ConfigError(f"$.auth.jwt_jwks_file: not a valid JWKS ({type(exc).__name__})") from None

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.settings.jwt_secret or self._jwt_key or self._jwks)

    def forget(self, key_id: str | None = None) -> None:
        """Drop cached verifications (all, or those of one key)."""
        if key_id is None:
            self._cache.clear()
        else:
            for credential in [c for c in self._cache if c.startswith(f"{KEY_PREFIX}{key_id}_")]:
                del self._cache[credential]

    async def authenticate(self, authorization: str | None) -> tuple[RequestContext, str]:
        """The caller's context and a stable principal name (for rate limits and logs).

        :raises AuthenticationError: missing, malformed, unknown, revoked or expired credentials.
        """
        if not authorization:
            raise AuthenticationError("credentials required: send 'Authorization: Bearer <API key or token>'")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError("the Authorization header must be 'Bearer <API key or token>'")
        cached = self._cache.get(credential)
        now = time.monotonic()
        if cached is not None and now - cached.checked_at < self.settings.key_cache_s:
            await self._touch(credential, cached, now)
            return cached.context, cached.principal
        if credential.startswith(KEY_PREFIX):
            context, principal = await self._api_key(credential)
            entry = _Cached(context, principal, now)
            self._cache[credential] = entry
            await self._touch(credential, entry, now)
            return context, principal
        return await self._jwt(credential)

    async def _touch(self, credential: str, cached: _Cached, now: float) -> None:
        """Note that a key was used. The write (``last_used_at``, at most once a minute per key)
        happens beside the request, never on its path: a read must not wait on, or fail for,
        bookkeeping when another process holds SQLite's write lock (a bulk import)."""
        if not credential.startswith(KEY_PREFIX):
            return
        key_id = cached.principal.removeprefix("apikey:")
        if now - self._last_used.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._last_used[key_id] = now
        self._unwritten[key_id] = (cached.context.tenant_id, utcnow())
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = self.runtime.spawn(self._write_last_used(), name="guanxi-apikey-last-used")

    async def _write_last_used(self) -> None:
        """Write the pending ``last_used_at`` values, one transaction per tenant. A busy database
        keeps them for the next attempt (the next use of any key), with one warning line."""
        while self._rehash:
            rehash, self._rehash = self._rehash, {}
            for key_id, (tenant_id, old, new) in rehash.items():
                try:
                    async with self.runtime.write_session(tenant_id) as session:
                        # only the hash verified: a key revoked or replaced meanwhile is left alone
                        await session.execute(
                            update(ApiKey)
                            .where(ApiKey.key_id == key_id, ApiKey.secret_hash == old)
                            .values(secret_hash=new)
                            .execution_options(**{BOOKKEEPING: True})
                        )
                    log.info("API key %s re-hashed under the current server secret", key_id)
                except BusyError as exc:
                    log.warning("API key %s not re-hashed yet (%s); it will be at its next use", key_id, exc)
        while self._unwritten:
            pending, self._unwritten = self._unwritten, {}
            by_tenant: dict[uuid.UUID, list[tuple[str, dt.datetime]]] = {}
            for key_id, (tenant_id, at) in pending.items():
                by_tenant.setdefault(tenant_id, []).append((key_id, at))
            for tenant_id, keys in by_tenant.items():
                try:
                    async with self.runtime.write_session(tenant_id) as session:
                        for key_id, at in keys:
                            await session.execute(
                                update(ApiKey)
                                .where(ApiKey.key_id == key_id)
                                .values(last_used_at=at)
                                .execution_options(**{BOOKKEEPING: True})
                            )
                except BusyError as exc:
                    log.warning("API keys' last use not recorded yet (%s); kept for the next attempt", exc)
                    for key_id, at in keys:
                        self._unwritten.setdefault(key_id, (tenant_id, at))
                        self._last_used.pop(key_id, None)
                    return

    async def flush_last_used(self) -> None:
        """Wait until the ``last_used_at`` writes started so far are done (tests, shut-down)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _api_key(self, credential: str) -> tuple[RequestContext, str]:
        body = credential.removeprefix(KEY_PREFIX)
        key_id, sep, rest = body.partition("_")
        if not sep or not key_id or not rest or len(key_id) > 32:
            raise AuthenticationError("malformed API key")
        async with self.runtime.session(None) as session, unscoped(session):
            await session.connection(execution_options={BOOKKEEPING: True})  # a cache miss: not the request's own work
            row = (await session.scalars(select(ApiKey).where(ApiKey.key_id == key_id))).one_or_none()
            which = None if row is None else matching_secret(row.secret_hash, credential, self.secrets)
            if row is None or which is None:
                raise AuthenticationError("unknown API key")
            if which > 0:  # hashed under a previous server secret: re-hashed under the current one, beside the request
                self._rehash[key_id] = (row.tenant_id, row.secret_hash, hash_key(self.secret, credential))
                self._start_writer()
            if row.revoked_at is not None:
                raise AuthenticationError("this API key was revoked")
            user = await session.get(User, (row.tenant_id, row.user_id)) if row.user_id else None
            if row.user_id is not None and (user is None or not user.active):
                raise AuthenticationError("the API key's user is inactive")
            actor = Actor(
                kind="apikey",
                user_id=row.user_id,
                name=f"{user.email} (key {row.key_id})" if user else f"key {row.key_id} ({row.name})",
                roles=(row.role,),
            )
            owners = await _owners(session, row.tenant_id, actor, user)
        return RequestContext(tenant_id=row.tenant_id, actor=actor, owners=owners), f"apikey:{key_id}"

    async def _jwt(self, credential: str) -> tuple[RequestContext, str]:
        import jwt

        if not self.jwt_enabled:
            raise AuthenticationError("unknown credentials (JWT bearer tokens are not configured)")
        s = self.settings
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed bearer token") from None
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and s.jwt_secret:
            key = s.jwt_secret
        elif alg == "RS256" and self._jwks is not None:
            kid = header.get("kid")
            match = [k for k in self._jwks.keys if k.key_id == kid] if kid else list(self._jwks.keys)
            if len(match) != 1:
                raise AuthenticationError("the token's key id is not in the configured JWKS")
            key = match[0].key
        elif alg == "RS256" and self._jwt_key is not None:
            key = self._jwt_key
        else:
            raise AuthenticationError(f"token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                credential,
                key,
                algorithms=[alg],
                audience=s.jwt_audience or None,
                issuer=s.jwt_issuer or None,
                leeway=s.jwt_leeway_s,
                options={"require": ["exp", "sub", "tenant"], "verify_aud": bool(s.jwt_audience)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {type(exc).__name__}") from None
        roles = claims.get("roles") or []
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise AuthenticationError(f"the token's roles claim must list roles among {', '.join(ROLES)}")
        async with self.runtime.session(None) as session, unscoped(session):
            await session.connection(execution_options={BOOKKEEPING: True})  # a cache miss: not the request's own work
            tenant_id = (await session.execute(select(Tenant.id).where(Tenant.slug == str(claims["tenant"])))).scalar_one_or_none()
            if tenant_id is None:
                raise AuthenticationError("the token's tenant does not exist")
            user = await _user_by_subject(session, tenant_id, str(claims["sub"]))
            if user is None and any(r in ("sales", "manager") for r in roles):
                raise AuthenticationError("the token's subject is not an active user of the tenant")
            name = user.email if user else str(claims["sub"])
            actor = Actor(kind="user", user_id=user.id if user else None, name=name, roles=tuple(roles))
            owners = await _owners(session, tenant_id, actor, user)
        return RequestContext(tenant_id=tenant_id, actor=actor, owners=owners), f"jwt:{claims['tenant']}:{claims['sub']}"


def authenticator_of(runtime: Runtime) -> Authenticator:
    """The runtime's one :class:`Authenticator` (its key cache is shared by every request)."""
    found = runtime.state.get("authenticator")
    if found is None:
        found = runtime.state["authenticator"] = Authenticator(runtime)
    return found


async def _user_by_subject(session: TenantSession, tenant_id: uuid.UUID, sub: str) -> User | None:
    try:
        user = await session.get(User, (tenant_id, uuid.UUID(sub)))
    except ValueError:
        user = (await session.scalars(select(User).where(User.tenant_id == tenant_id, User.email == sub.lower()))).one_or_none()
    return user if user is not None and user.active else None


async def _owners(session: TenantSession, tenant_id: uuid.UUID, actor: Actor, user: User | None) -> frozenset[uuid.UUID] | None:
    """Whose customers the caller sees: None (all) unless every role is ownership-bound."""
    if any(r not in ("sales", "manager") for r in actor.roles):
        return None
    if user is None:
        return frozenset()
    if "manager" in actor.roles and user.team:
        team = await session.scalars(select(User.id).where(User.tenant_id == tenant_id, User.team == user.team, User.active.is_(True)))
        return frozenset({user.id, *team})
    return frozenset({user.id})


# -- platform operator ------------------------------------------------------------------------------

OPERATOR_PREFIX = "gxop_"


class OperatorKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


async def create_operator_key(runtime: Runtime, secret: bytes, *, name: str) -> tuple[OperatorKeyInfo, str]:
    """A platform-operator key ``gxop_<key_id>_<secret>`` (shown once): it manages tenants
    (list, create, suspend, resume, delete) on the operator endpoint and reads no tenant's data.
    Only its HMAC under the server secret is kept. Made with the CLI (``guanxi operator key``)."""
    if not name.strip() or len(name) > 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")
    key_id = secrets.token_hex(8)
    key = f"{OPERATOR_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    row = OperatorKey(key_id=key_id, secret_hash=hash_key(secret, key), name=name)
    async with runtime.write_session(None) as session:
        session.add(row)
        await session.flush()
        info = OperatorKeyInfo(key_id=row.key_id, name=row.name, created_at=row.created_at, revoked_at=None)
    log.info("operator key %s (%s) created", key_id, name)
    return info, key


async def revoke_operator_key(runtime: Runtime, key_id: str) -> None:
    async with runtime.write_session(None) as session:
        row = (await session.scalars(select(OperatorKey).where(OperatorKey.key_id == key_id))).one_or_none()
        if row is None:
            raise NotFoundError(f"operator key {key_id!r} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
    log.info("operator key %s revoked", key_id)


async def authenticate_operator(runtime: Runtime, secret: bytes, authorization: str | None) -> str:
    """The operator's principal (``operator:<key id>``) for ``Authorization: Bearer gxop_…``.

    :raises AuthenticationError: no credential, a tenant's credential (code FORBIDDEN: a tenant
        key is never an operator key), an unknown or revoked operator key.
    """
    if not authorization:
        raise AuthenticationError("operator credentials required: send 'Authorization: Bearer gxop_…'")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationError("the Authorization header must be 'Bearer <operator key>'")
    if not credential.startswith(OPERATOR_PREFIX):
        raise AuthenticationError("this endpoint takes operator keys only, not a tenant's credentials", code="FORBIDDEN")
    key_id, sep, rest = credential.removeprefix(OPERATOR_PREFIX).partition("_")
    if not sep or not key_id or not rest or len(key_id) > 32:
        raise AuthenticationError("malformed operator key")
    async with runtime.session(None) as session:
        row = (await session.scalars(select(OperatorKey).where(OperatorKey.key_id == key_id))).one_or_none()
    previous = [s.encode() for s in runtime.settings.auth.previous_secrets]
    if row is None or matching_secret(row.secret_hash, credential, [secret, *previous]) is None:
        raise AuthenticationError("unknown operator key")
    if row.revoked_at is not None:
        raise AuthenticationError("this operator key was revoked")
    return f"operator:{key_id}"
