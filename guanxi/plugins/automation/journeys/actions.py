"""Journey actions contributed by plugins (``guanxi_journey_actions``), per tenant."""

from __future__ import annotations

import uuid

from guanxi import JourneyAction, Runtime
from guanxi.core.hooks.manager import per_plugin


async def available(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, JourneyAction]:
    """The actions of the plugins the tenant has enabled, by name."""
    disabled = await runtime.disabled_plugins(tenant_id)
    found: dict[str, JourneyAction] = {}
    for plugin, actions in per_plugin(runtime.pm.hook.guanxi_journey_actions, runtime=runtime):
        if plugin in disabled:
            continue
        for action in actions:
            found[action.name] = action
    return found
