"""Hook implementations of the materials plugin: wiring only."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import msgspec

from guanxi import RequestContext, Runtime, hookimpl
from guanxi.core.base.context import Actor
from guanxi.core.domain.access import Permission
from guanxi.core.domain.contracts import ScoreComponent
from guanxi.core.domain.events import ContactArrived, CustomerReferred
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.plugins.materials import privacy, radar, scores
from guanxi.plugins.materials.models import MaterialVisitor
from guanxi.plugins.materials.routes import MANAGE_ROLES
from guanxi.plugins.materials.settings import MaterialsSettings

NAME = "materials"
ACTOR = Actor(kind="plugin", name=NAME)
ALL_ROLES = ("admin", "manager", "marketing", "sales", "service", "readonly")


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return MaterialsSettings


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_routes(runtime: Runtime) -> list[Any]:
    from guanxi.plugins.materials.routes import routes

    return routes(runtime)


@hookimpl
def guanxi_graphql(runtime: Runtime) -> GraphQLContribution:
    from guanxi.plugins.materials import graphql as g

    return GraphQLContribution(query=g.MaterialsQuery, mutation=g.MaterialsMutation, nodes=g.NODES)


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="materials.manage",
            roles=MANAGE_ROLES,
            fields=("Mutation.createMaterial", "Mutation.archiveMaterial", "Mutation.restoreMaterial", "Mutation.createScript"),
            description=(
                "Add articles, videos, link cards (uploads: POST /materials/upload) and scripts to the library; "
                "archive and restore materials"
            ),
        ),
        Permission(
            name="materials.share",
            roles=("admin", "manager", "marketing", "sales", "service"),
            fields=("Mutation.shareMaterial", "Mutation.sendScript"),
            description="Share a material with a customer as a radar link; send a script",
        ),
        Permission(
            name="materials.read",
            roles=ALL_ROLES,
            fields=("Query.materials", "Query.scripts", "Query.renderScript"),
            description="Read the material library (what the caller's roles may see) and the scripts",
        ),
        Permission(
            name="materials.report",
            roles=("admin", "manager", "marketing"),
            fields=("Query.materialReport",),
            description="Read content performance per material and per salesperson",
        ),
    ]


@hookimpl
async def guanxi_contact_arrived(runtime: Runtime, event: ContactArrived) -> None:
    """A contact arrived with a visitor's state (shown on the radar page): the anonymous visitor
    becomes that customer, with their earlier views."""
    visitor_id = radar.visitor_of_state(event.state)
    if visitor_id is None:
        return
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        if await tx.session.get(MaterialVisitor, (tx.tenant_id, visitor_id)) is None:
            return
        await radar.identify(tx, visitor_id, event.customer_id, runtime.plugin_settings(NAME))
        # someone who came through a forward was brought by whoever passed it on: tell the
        # plugins that count referrals (the referral plugin's forward_campaign)
        found = await radar.forward_referrer(tx, visitor_id, event.customer_id)
        if found is not None:
            link, referrer = found
            tx.emit(
                "guanxi_customer_referred",
                CustomerReferred(
                    tenant_id=tx.tenant_id,
                    actor=ACTOR,
                    customer_id=event.customer_id,
                    referrer_customer_id=referrer,
                    referrer_user_id=link.sharer_id,
                    source="materials.forward",
                    reference=str(link.id),
                    new_customer=event.new_customer,
                    occurred_at=event.occurred_at,
                ),
            )


@hookimpl
async def guanxi_score_components(
    runtime: Runtime, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent] | None:
    settings: MaterialsSettings = runtime.plugin_settings(NAME)
    return await scores.components(session, customer_ids, settings) or None


@hookimpl
async def guanxi_export_customer_data(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    return await privacy.export(session, customer_id)


@hookimpl
async def guanxi_erase_customer(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int] | None:
    return await privacy.erase(session, customer_id)
