"""Refreshing a channel identity's profile from its provider (``Channel.fetch_profile``)."""

from __future__ import annotations

import uuid

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import NotFoundError
from guanxi.core.domain.channels import CapabilityError
from guanxi.core.domain.models import Identity
from guanxi.core.runtime import Runtime
from guanxi.core.services.identities import IdentityInput, attach_identity


async def refresh_profile(runtime: Runtime, ctx: RequestContext, identity_id: uuid.UUID) -> Identity:
    """Ask the identity's channel for the current profile and store it. The provider is called
    outside any database transaction."""
    async with runtime.session(ctx.tenant_id, ctx.owners) as session:
        identity = await session.get(Identity, (ctx.tenant_id, identity_id))
        if identity is None:
            raise NotFoundError("identity not found", field="identityId")
        channel, external_id, customer_id = identity.channel, identity.external_id, identity.customer_id
    adapter = await runtime.tenant_channel(ctx.tenant_id, channel)
    if adapter is None or not adapter.capabilities.profile_fetch:
        raise CapabilityError(f"channel {channel!r} cannot fetch profiles")
    profile = await adapter.fetch_profile(external_id, tenant_id=ctx.tenant_id)
    async with runtime.transaction(ctx) as tx:
        if profile is None:
            found = await tx.session.get(Identity, (ctx.tenant_id, identity_id))
            assert found is not None
            return found
        return await attach_identity(
            tx,
            customer_id,
            IdentityInput(
                channel=channel,
                external_id=external_id,
                union_id=profile.union_id,
                nickname=profile.nickname,
                avatar_url=profile.avatar_url,
                follower_count=profile.follower_count,
                profile=dict(profile.profile),
            ),
        )
