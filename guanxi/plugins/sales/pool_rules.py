"""The lead pool's contributed return rules: every rule the tenant's plugins offer through
``guanxi_pool_return_rules`` (the sales plugin's own deals rules among them, registered the same
way), and the check of a pool's rule settings against them."""

from __future__ import annotations

import re
import uuid
from typing import Final

from guanxi import PluginError, PoolReturnRule, Runtime, ValidationError
from guanxi.core.hooks.manager import per_plugin
from guanxi.core.storage.tenancy import TenantSession

UNITS: Final = ("days", "months")
_KEY = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_.-]{0,62}$")


async def available_rules(runtime: Runtime, tenant_id: uuid.UUID, session: TenantSession | None = None) -> dict[str, PoolReturnRule]:
    """The return rules of the plugins the tenant enabled, by key (a malformed rule, or a key two
    plugins offer, fails naming the plugins)."""
    hooks = await runtime.hooks(tenant_id, session=session)
    found: dict[str, tuple[str, PoolReturnRule]] = {}
    for plugin, rules in per_plugin(hooks.guanxi_pool_return_rules, runtime=runtime):
        for rule in rules:
            if not isinstance(rule, PoolReturnRule):
                raise PluginError(f"plugin {plugin!r}: guanxi_pool_return_rules must return PoolReturnRule values")
            if not _KEY.match(rule.key) or not rule.key.startswith(f"{plugin}."):
                raise PluginError(f"plugin {plugin!r}: pool return rule {rule.key!r} must be named {plugin}.<rule> (lower case)")
            if rule.unit not in UNITS or not 1 <= rule.min_value <= rule.max_value:
                raise PluginError(f"plugin {plugin!r}: pool return rule {rule.key!r} needs a unit in {UNITS} and 1 <= min <= max")
            if rule.key in found:
                raise PluginError(f"pool return rule {rule.key!r} is offered by both {found[rule.key][0]!r} and {plugin!r}")
            found[rule.key] = (plugin, rule)
    return {key: rule for key, (_, rule) in sorted(found.items())}


def check_rules(given: dict[str, int] | None, available: dict[str, PoolReturnRule], field: str = "returnRules") -> dict[str, int] | None:
    """A pool's rule settings ``{rule key: parameter}``, checked: every key a rule of the tenant's
    plugins, every parameter in its rule's range. Empty → None (no contributed rule)."""
    if not given:
        return None
    out: dict[str, int] = {}
    for key, value in sorted(given.items()):
        rule = available.get(key)
        if rule is None:
            known = ", ".join(available) or "none"
            raise ValidationError(f"{field}: no return rule {key!r} (the tenant's plugins offer: {known})", field=field)
        if isinstance(value, bool) or not isinstance(value, int) or not rule.min_value <= value <= rule.max_value:
            raise ValidationError(f"{field}: {key} takes {rule.min_value} to {rule.max_value} {rule.unit}, not {value!r}", field=field)
        out[key] = value
    return out
