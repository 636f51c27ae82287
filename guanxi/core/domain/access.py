"""Roles and permissions: declared here (core's) and by plugins through
:func:`guanxi.core.hooks.specs.guanxi_permissions`."""

from __future__ import annotations

import msgspec

ROLES = ("admin", "manager", "marketing", "sales", "service", "readonly")


class Permission(msgspec.Struct, frozen=True, kw_only=True):
    """A named right, the roles that hold it, and the GraphQL fields it guards.

    ``fields`` are schema coordinates, ``"Mutation.wecomMassSend"`` or ``"Customer.wecom"``; a
    caller whose roles hold none of ``roles`` gets a ``FORBIDDEN`` error for them. Name a plugin's
    permissions after the plugin: ``wecom.massSend``.
    """

    name: str
    roles: tuple[str, ...]
    fields: tuple[str, ...] = ()
    description: str = ""
