"""The ``[plugins.automation]`` config section and the part of it a tenant may override."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from guanxi.plugins.automation.journeys.settings import JourneySettings


class AutomationSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Deployment defaults of the automation plugin.

    ``bulk_requires_approval``: a bulk send waits for a manager's or admin's approval before it
    starts. ``bulk_rate_per_minute``: at most this many recipients of one bulk send are queued per
    minute (the channel's own rate limit in the outbox still applies). ``bulk_batch_size``: how
    many recipients one run of the send job queues (bounded memory and transaction size).
    ``segment_refresh_cron``: when dynamic segments are re-evaluated in full (conditions on time,
    such as "in the last 7 days", change without any event)."""

    bulk_requires_approval: bool = False
    bulk_rate_per_minute: Annotated[int, Meta(ge=1, le=100_000)] = 600
    bulk_batch_size: Annotated[int, Meta(ge=1, le=5_000)] = 200
    segment_refresh_cron: str = "*/15 * * * *"
    #: journeys: quiet hours, frequency cap, webhook hosts (:mod:`.journeys.settings`)
    journeys: JourneySettings = JourneySettings()


class AutomationTenantSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a tenant admin may override (``setTenantPluginSettings``)."""

    bulk_requires_approval: bool = False
    bulk_rate_per_minute: Annotated[int, Meta(ge=1, le=100_000)] = 600
    journeys: JourneySettings = JourneySettings()
