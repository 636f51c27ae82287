"""Who is acting, for which tenant: passed to every service call."""

from __future__ import annotations

import uuid

import msgspec


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """The caller: a staff user, an API key, a rule or a plugin. ``user_id`` is None for systems."""

    kind: str = "system"  # user | apikey | system | rule | plugin
    user_id: uuid.UUID | None = None
    name: str = "system"
    roles: tuple[str, ...] = ("admin",)


class RequestContext(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant and the caller. ``owners`` limits record ownership: the caller sees only
    customers owned by these users (and those customers' rows); None means every customer."""

    tenant_id: uuid.UUID
    actor: Actor = Actor()
    owners: frozenset[uuid.UUID] | None = None


SYSTEM = Actor()
