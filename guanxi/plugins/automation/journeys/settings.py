"""Journey settings (the ``[plugins.automation.journeys]`` config section; a tenant may override
them): quiet hours, the per-customer frequency cap of journey sends, and the webhook hosts."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from guanxi import ConfigError

Clock = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class JourneySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``quiet_start``/``quiet_end``: local times (tenant's time zone, may span midnight) when no
    journey sends; a send due then waits for the end. ``frequency_cap``: at most this many journey
    sends to one customer per ``frequency_window_s`` (0: no cap); more are skipped with the reason.
    ``webhook_hosts``: the hosts journey webhooks may call (https only; public addresses only)."""

    quiet_start: Clock | None = None
    quiet_end: Clock | None = None
    frequency_cap: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    frequency_window_s: Annotated[int, msgspec.Meta(ge=60, le=366 * 86400)] = 86400
    webhook_hosts: list[str] = []
    #: runs claimed per batch of the journey worker
    batch: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 500


def journey_settings(runtime: Any, tenant_id: Any) -> JourneySettings:
    """The tenant's journey settings (defaults when the plugin's config has none)."""
    try:
        section = runtime.plugin_settings("automation", tenant_id)
    except ConfigError:  # the plugin's config declares no journeys section
        return JourneySettings()
    found = getattr(section, "journeys", None)
    return found if isinstance(found, JourneySettings) else JourneySettings()
