"""Hook implementations of the referral plugin: wiring only."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi import RequestContext, Runtime, hookimpl
from guanxi.core.base.context import Actor
from guanxi.core.domain.access import Permission
from guanxi.core.domain.contracts import Arrival, ScoreComponent
from guanxi.core.domain.events import ContactArrived, ContactLeft, CustomerReferred, CustomersMerged, StageChanged
from guanxi.core.domain.models import utcnow
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.plugins.referral import attribution, ledger, merges, privacy, social
from guanxi.plugins.referral.models import ReferralAttribution
from guanxi.plugins.referral.poster import cache_dir
from guanxi.plugins.referral.settings import ReferralSettings, ReferralTenantSettings

NAME = "referral"
ACTOR = Actor(kind="plugin", name=NAME)
ALL_ROLES = ("admin", "manager", "marketing", "sales", "service", "readonly")

log = logging.getLogger("guanxi.referral")


def _settings(runtime: Runtime) -> ReferralSettings:
    settings: ReferralSettings = runtime.plugin_settings(NAME)
    return settings


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return ReferralSettings


@hookimpl
def guanxi_tenant_settings() -> type[msgspec.Struct]:
    return ReferralTenantSettings


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_routes(runtime: Runtime) -> list[Any]:
    from guanxi.plugins.referral.routes import ROUTES

    return list(ROUTES)


@hookimpl
def guanxi_graphql(runtime: Runtime) -> GraphQLContribution:
    from guanxi.plugins.referral import graphql as g
    from guanxi.plugins.referral.mutations import ReferralMutation

    return GraphQLContribution(
        query=g.ReferralQuery,
        mutation=ReferralMutation,
        extend={"Customer": g.CustomerReferrals, "User": g.UserReferrals},
        nodes=g.NODES,
    )


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="referral.manage",
            roles=("admin", "manager", "marketing"),
            fields=("Mutation.createReferralCampaign", "Mutation.updateReferralCampaign"),
            description="Create and change referral campaigns",
        ),
        Permission(
            name="referral.share",
            roles=("admin", "manager", "marketing", "sales", "service"),
            fields=("Mutation.mintReferralToken",),
            description="Mint an inviter's token, link, QR code and poster",
        ),
        Permission(
            name="referral.read",
            roles=ALL_ROLES,
            fields=(
                "Customer.referredBy",
                "Customer.referrals",
                "Customer.referralStats",
                "Customer.referralProgress",
                "Customer.referralRewards",
                "User.referralProgress",
                "Query.referralCampaigns",
                "Query.referralLeaderboard",
                "Query.referralStaffLeaderboard",
                "Query.referralRewards",
            ),
            description="Read the referral graph, campaigns, leaderboards and the reward ledger",
        ),
        Permission(
            name="referral.redeem",
            roles=("admin", "manager", "service"),
            fields=("Mutation.redeemReferralReward",),
            description="Mark a referral reward handed over",
        ),
    ]


@hookimpl
async def guanxi_contact_arrived(runtime: Runtime, event: ContactArrived) -> None:
    """A contact arrived with a state: attribute it if the state is one of our tokens."""
    if not event.state:
        return
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        await attribution.attribute(tx, event, runtime.plugin_settings(NAME, tx.tenant_id))


@hookimpl
async def guanxi_customer_referred(runtime: Runtime, event: CustomerReferred) -> None:
    """Another plugin learned who brought a customer (a forwarded radar link): with the tenant's
    ``forward_campaign`` set, attribute them to the referrer there, through the referrer's token
    of that campaign and the usual rules. The referrer is the customer who passed the link on,
    else the staff member whose link it was."""
    settings = runtime.plugin_settings(NAME, event.tenant_id)
    if not settings.forward_campaign:
        return
    from guanxi.core.base.errors import NotFoundError, ValidationError
    from guanxi.plugins.referral.campaigns import campaign_by_key, mint_token

    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        settings = runtime.plugin_settings(NAME, tx.tenant_id)
        try:
            campaign = await campaign_by_key(tx.session, settings.forward_campaign)
            if event.referrer_customer_id is not None:
                token = await mint_token(tx, campaign, customer_id=event.referrer_customer_id)
            elif event.referrer_user_id is not None:
                token = await mint_token(tx, campaign, user_id=event.referrer_user_id)
            else:
                return
        except (NotFoundError, ValidationError) as exc:  # no such campaign; an inactive staff referrer
            log.warning("referral: %s from %s not attributed: %s", event.customer_id, event.source, exc)
            return
        arrival = attribution.Arrival(
            customer_id=event.customer_id,
            channel=event.source,
            external_id=event.reference,
            state=token.token,
            new_customer=event.new_customer,
            occurred_at=event.occurred_at,
        )
        await attribution.attribute(tx, arrival, settings)


@hookimpl
async def guanxi_assign_owner(session: TenantSession, arrival: Arrival | None) -> uuid.UUID | None:
    """A customer who arrives through a salesperson's poster (their token as the channel's
    ``state``) is that salesperson's, unless a rule of another plugin answers first."""
    from guanxi.plugins.referral.owners import poster_owner

    return await poster_owner(session, arrival)


@hookimpl
async def guanxi_contact_left(runtime: Runtime, event: ContactLeft) -> None:
    """An invitee left: reverse the credit (and the unredeemed reward) within the window."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        found = (
            await tx.session.execute(select(ReferralAttribution).where(ReferralAttribution.customer_id == event.customer_id))
        ).scalar_one_or_none()
        if found is not None:
            await ledger.reverse(tx, found, event.occurred_at)


@hookimpl
async def guanxi_stage_changed(runtime: Runtime, event: StageChanged) -> None:
    """An invitee reached a stage: it may qualify them in a campaign that waits for it."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        await attribution.on_stage(tx, event.customer_id, event.to_stage, utcnow())


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    """The survivor takes the merged customer's place in the referral graph and the ledger."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        await merges.follow_merge(tx, event.survivor_id, event.merged_id)


@hookimpl
async def guanxi_merge_record(session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> dict[str, Any] | None:
    """What the merge hook above will change in the referral graph, so an undo gives it back."""
    return await merges.merge_record(session, survivor_id, merged_id)


@hookimpl
async def guanxi_merge_undone(
    session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID, record: dict[str, Any]
) -> dict[str, int]:
    return await merges.merge_undone(session, survivor_id, merged_id, record)


@hookimpl
async def guanxi_score_components(
    runtime: Runtime, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent] | None:
    return await social.components(session, customer_ids, runtime.plugin_settings(NAME, session.tenant_id)) or None


@hookimpl
async def guanxi_export_customer_data(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    return await privacy.export(session, customer_id)


@hookimpl
async def guanxi_erase_customer(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int] | None:
    return await privacy.erase(session, customer_id, cache_dir(_settings(runtime).poster_cache_dir))


@hookimpl
async def guanxi_export_tenant(runtime: Runtime, session: TenantSession) -> dict[str, Any]:
    """Every row of the plugin's tables for the tenant (before the operator deletes it)."""
    from guanxi.core.services.tenants import dump_models
    from guanxi.plugins.referral.models import TABLES

    return await dump_models(session, TABLES)


@hookimpl
async def guanxi_purge_tenant(runtime: Runtime, session: TenantSession) -> dict[str, int]:
    """Remove every row of the plugin's tables for the tenant (the operator deletes it), and the
    posters cached on disk for its tokens (they show its staff's and customers' names)."""
    from guanxi.core.services.tenants import purge_models
    from guanxi.plugins.referral.models import TABLES, ReferralToken
    from guanxi.plugins.referral.poster import forget

    tokens = list((await session.execute(select(ReferralToken.id))).scalars())
    counts = await purge_models(session, TABLES)
    cache = cache_dir(_settings(runtime).poster_cache_dir)
    files = sum(forget(cache, str(t)) for t in tokens)
    log.info("referral: %d cached poster files of the purged tenant's %d tokens deleted", files, len(tokens))
    return counts
