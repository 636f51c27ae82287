"""The automation plugin's hooks; each delegates to the subpackage that owns the feature
(``segments``, ``bulk``, ``journeys``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec

from guanxi import (
    CustomerCreated,
    CustomersMerged,
    CustomerUpdated,
    IdentityAttached,
    InteractionRecorded,
    JobKind,
    JobRun,
    Permission,
    Runtime,
    SegmentMembershipChanged,
    StageChanged,
    TagsChanged,
    hookimpl,
)
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.plugins.automation import settings
from guanxi.plugins.automation.bulk import models as bulk_models  # noqa: F401 - its tables
from guanxi.plugins.automation.journeys import hooks as journeys
from guanxi.plugins.automation.journeys import models as journey_models  # noqa: F401 - its tables
from guanxi.plugins.automation.segments import models as segment_models  # noqa: F401 - its tables


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return settings.AutomationSettings


@hookimpl
def guanxi_tenant_settings() -> type[msgspec.Struct]:
    return settings.AutomationTenantSettings


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_graphql(runtime: Runtime) -> GraphQLContribution:
    from guanxi.plugins.automation import graphql

    return graphql.contribution()


@hookimpl
def guanxi_permissions() -> list[Permission]:
    from guanxi.plugins.automation.permissions import all_permissions

    return all_permissions()


async def _refresh_segments(job: JobRun) -> None:
    from guanxi.plugins.automation.segments import service

    await service.refresh_all(job.runtime, job.tenant_id)


@hookimpl
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind]:
    from guanxi.plugins.automation.bulk import service as bulk
    from guanxi.plugins.automation.segments.service import REFRESH_JOB

    return [
        JobKind(name=REFRESH_JOB, run=_refresh_segments, description="Re-evaluate every dynamic segment of the tenant"),
        JobKind(name=bulk.JOB, run=bulk.run_job, description="Queue the next batch of a bulk send's recipients through the outbox"),
        *journeys.job_kinds(),
    ]


# --- a customer changed: dynamic segments follow (entry and exit events) --------------------


async def _customer_changed(runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    from guanxi.plugins.automation.segments import service

    await service.refresh_customer(runtime, tenant_id, customer_id)


@hookimpl
async def guanxi_customer_created(runtime: Runtime, event: CustomerCreated) -> None:
    await _customer_changed(runtime, event.tenant_id, event.customer.id)


@hookimpl
async def guanxi_customer_updated(runtime: Runtime, event: CustomerUpdated) -> None:
    await _customer_changed(runtime, event.tenant_id, event.customer.id)


@hookimpl
async def guanxi_tags_changed(runtime: Runtime, event: TagsChanged) -> None:
    await _customer_changed(runtime, event.tenant_id, event.customer_id)
    await journeys.on_tags_changed(runtime, event)


@hookimpl
async def guanxi_stage_changed(runtime: Runtime, event: StageChanged) -> None:
    await _customer_changed(runtime, event.tenant_id, event.customer_id)
    await journeys.on_stage_changed(runtime, event)


@hookimpl
async def guanxi_identity_attached(runtime: Runtime, event: IdentityAttached) -> None:
    await _customer_changed(runtime, event.tenant_id, event.customer_id)


@hookimpl
async def guanxi_interaction_recorded(runtime: Runtime, event: InteractionRecorded) -> None:
    await _customer_changed(runtime, event.tenant_id, event.customer_id)
    await journeys.on_interaction_recorded(runtime, event)


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    from guanxi.plugins.automation.segments import service

    await service.customers_merged(runtime, event.tenant_id, event.merged_id, event.survivor_id)
    await journeys.on_customers_merged(runtime, event)


@hookimpl
async def guanxi_export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    from guanxi.plugins.automation.bulk import service as bulk
    from guanxi.plugins.automation.segments import service

    data: dict[str, Any] = {
        "segments": await service.segments_of(session, customer_id),
        "bulk_sends": await bulk.received(session, customer_id),
        "journeys": await journeys.service.runs_of(session, customer_id),
    }
    return data if any(data.values()) else None


@hookimpl
async def guanxi_erase_customer(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int] | None:
    from guanxi.plugins.automation.bulk import service as bulk

    return {"bulk_recipients": await bulk.erase(session, customer_id)}


@hookimpl
async def guanxi_segment_membership_changed(runtime: Runtime, event: SegmentMembershipChanged) -> None:
    if event.entered:
        await journeys.on_segment_entered(runtime, event.tenant_id, event.segment_key, list(event.entered))
