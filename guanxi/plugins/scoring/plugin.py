"""Hook implementations of the scoring plugin: wiring only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click
import msgspec

from guanxi.core.domain.access import Permission
from guanxi.core.domain.events import (
    ContactArrived,
    ContactLeft,
    CustomerCreated,
    CustomersMerged,
    CustomerUpdated,
    IdentityAttached,
    InteractionRecorded,
    ReferralProgress,
    TagsChanged,
)
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.scoring.recompute import rescore, rescore_merge
from guanxi.plugins.scoring.settings import ScoringSettings, ScoringTenantSettings
from guanxi.plugins.scoring.sql import ensure_sqlite_math

#: Customer fields that the profile-fit component reads.
PROFILE_FIELDS = frozenset({"company", "phones", "emails", "source", "attributes"})


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return ScoringSettings


@hookimpl
def guanxi_tenant_settings() -> type[msgspec.Struct]:
    return ScoringTenantSettings


@hookimpl
def guanxi_startup(runtime: Runtime) -> None:
    ensure_sqlite_math(runtime.engine)


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_graphql(runtime: Runtime) -> Any:
    from guanxi.plugins.scoring.graphql import contribution

    return contribution()


@hookimpl
def guanxi_cli(group: click.Group) -> None:
    from guanxi.plugins.scoring.cli import scoring

    group.add_command(scoring)


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="scoring.priorityQueue",
            roles=("sales", "manager", "admin"),
            fields=("Query.myPriorityQueue",),
            description="see one's own sales priority queue",
        )
    ]


@hookimpl
async def guanxi_interaction_recorded(runtime: Runtime, event: InteractionRecorded) -> None:
    """The incremental path: the customer's score is recomputed after the interaction commits."""
    await rescore(runtime, event.tenant_id, event.customer_id, f"interaction:{event.kind}@{event.channel}")


@hookimpl
async def guanxi_customer_created(runtime: Runtime, event: CustomerCreated) -> None:
    """A new customer gets a score at once (profile fit, other plugins' components)."""
    await rescore(runtime, event.tenant_id, event.customer.id, "created")


@hookimpl
async def guanxi_customer_updated(runtime: Runtime, event: CustomerUpdated) -> None:
    if PROFILE_FIELDS & event.changed.keys():
        await rescore(runtime, event.tenant_id, event.customer.id, "profile")


@hookimpl
async def guanxi_identity_attached(runtime: Runtime, event: IdentityAttached) -> None:
    await rescore(runtime, event.tenant_id, event.customer_id, f"identity:{event.channel}")


@hookimpl
async def guanxi_contact_left(runtime: Runtime, event: ContactLeft) -> None:
    """The channel records the departure as an interaction (``contact_removed``, ``unfollow``),
    which carries the negative points; recomputing here also covers a channel that reports the
    event before the interaction's own hook ran."""
    await rescore(runtime, event.tenant_id, event.customer_id, f"contact_left:{event.reason}")


@hookimpl
async def guanxi_contact_arrived(runtime: Runtime, event: ContactArrived) -> None:
    """A new contact on a channel: other plugins' components (referral credit) may have changed."""
    await rescore(runtime, event.tenant_id, event.customer_id, f"contact_arrived:{event.channel}")


@hookimpl
async def guanxi_referral_progress(runtime: Runtime, event: ReferralProgress) -> None:
    """An inviting customer's referral count changed: the referral plugin's component with it."""
    if event.inviter_customer_id is not None:
        await rescore(runtime, event.tenant_id, event.inviter_customer_id, "referral")


@hookimpl
async def guanxi_tags_changed(runtime: Runtime, event: TagsChanged) -> None:
    """A customer's tags changed: components that count tags (the insights plugin's rule tags)
    may have changed with them."""
    await rescore(runtime, event.tenant_id, event.customer_id, "tags")


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    """The survivor's score now counts the merged customer's interactions; the tombstone's current
    score and parts go (its history stays, as the tombstone does)."""
    await rescore_merge(runtime, event.tenant_id, event.survivor_id, event.merged_id)


@hookimpl
async def guanxi_merge_record(session: TenantSession, merged_id: uuid.UUID) -> dict[str, Any]:
    """Nothing to keep (scores are computed from the rows core gives back), but an answer asks
    core to call ``guanxi_merge_undone`` on an undo: the merged customer's total is noted."""
    from guanxi.plugins.scoring.models import ScoringScore

    row = await session.get(ScoringScore, (session.tenant_id, merged_id))
    return {"merged_total": row.total if row is not None else None}


@hookimpl
async def guanxi_merge_undone(runtime: Runtime, session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> dict[str, int]:
    """A merge was undone: both customers' scores are recomputed from their own timelines again."""
    from guanxi.plugins.scoring.recompute import rescore_unmerge

    return await rescore_unmerge(runtime, session, survivor_id, merged_id)


@hookimpl
async def guanxi_export_customer_data(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    from guanxi.plugins.scoring.privacy import export_customer

    return await export_customer(session, customer_id)


@hookimpl
async def guanxi_erase_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
    from guanxi.plugins.scoring.privacy import erase_customer

    return await erase_customer(session, customer_id)


@hookimpl
async def guanxi_export_tenant(runtime: Runtime, session: TenantSession) -> dict[str, Any]:
    """Every row of the plugin's tables for the tenant (before the operator deletes it)."""
    from guanxi.core.services.tenants import dump_models
    from guanxi.plugins.scoring.models import TABLES

    return await dump_models(session, TABLES)


@hookimpl
async def guanxi_purge_tenant(runtime: Runtime, session: TenantSession) -> dict[str, int]:
    """Remove every row of the plugin's tables for the tenant (the operator deletes it)."""
    from guanxi.core.services.tenants import purge_models
    from guanxi.plugins.scoring.models import TABLES

    return await purge_models(session, TABLES)
