"""Helpers of the automation plugin's tests: staff with GraphQL callers (the sales tests' team),
customers with tags, stages and channel accounts."""

from __future__ import annotations

import uuid
from typing import Any

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers
from guanxi.graphql.ids import to_global_id
from tests.plugins.sales.conftest import Caller, Team, http, team

__all__ = ["Caller", "Team", "http", "new_customer", "team"]


async def new_customer(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    name: str,
    *,
    stage: str | None = None,
    owner: uuid.UUID | None = None,
    emails: list[str] | None = None,
    **extra: Any,
) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        c = await customers.create_customer(
            tx, customers.CustomerInput(display_name=name, stage=stage, owner_id=owner, emails=emails or [], **extra)
        )
    return c.id


def gid(kind: str, value: uuid.UUID) -> str:
    return to_global_id(kind, value)
