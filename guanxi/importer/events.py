"""After the import's commit: the created and updated events, as the customer service fires them."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from guanxi.core.base.context import Actor
from guanxi.core.domain.events import CustomerCreated
from guanxi.core.domain.models import Customer
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import snapshot
from guanxi.importer.matching import chunks
from guanxi.importer.writing import Writer


async def fire_events(runtime: Runtime, tenant_id: uuid.UUID, actor: Actor, writer: Writer) -> None:
    """The created and updated events, for the plugins that listen (and that the tenant enabled)."""
    hook = await runtime.hooks(tenant_id)
    for chunk in chunks(writer.created_ids):
        async with runtime.session(tenant_id) as session:
            customers = (await session.execute(select(Customer).where(Customer.id.in_(chunk)))).scalars().all()
            snapshots = {c.id: snapshot(c) for c in customers}
        for cid in chunk:
            if cid in snapshots:
                event = CustomerCreated(tenant_id=tenant_id, actor=actor, customer=snapshots[cid])
                await plugins.fire(hook.guanxi_customer_created, runtime=runtime, event=event)
    for updated in writer.updated_events:
        await plugins.fire(hook.guanxi_customer_updated, runtime=runtime, event=updated)
