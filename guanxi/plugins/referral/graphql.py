"""The referral plugin's reads in the GraphQL schema: fields on ``Customer`` and ``User``, and
``Query`` fields. Types are in :mod:`guanxi.plugins.referral.api_types`."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry
from sqlalchemy import desc, func, select
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import Customer as CustomerModel
from guanxi.core.domain.models import User as UserModel
from guanxi.graphql.contrib import NodeType
from guanxi.graphql.pagination import PageInfo, check_page_size, decode_cursor, encode_cursor
from guanxi.graphql.types import Customer, User
from guanxi.plugins.referral import campaigns, graph
from guanxi.plugins.referral.api_types import (
    ReferralAttributionStatus,
    ReferralAttributionType,
    ReferralCampaignType,
    ReferralConnection,
    ReferralEdge,
    ReferralLeader,
    ReferralProgressType,
    ReferralRewardStatus,
    ReferralRewardType,
    ReferralStaffLeader,
    ReferralStats,
    ReferralTouch,
)
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCampaign, ReferralCredit, ReferralReward
from guanxi.plugins.referral.settings import ReferralSettings

DEFAULT_PAGE, MAX_PAGE = 20, 100


def settings_of(info: Info) -> ReferralSettings:
    settings: ReferralSettings = info.context.rt.plugin_settings("referral", info.context.tenant_id)
    return settings


async def _rows(info: Info, stmt: Any) -> Any:
    return await info.context.loaders.execute(stmt)


async def _campaign(info: Info, key: str) -> ReferralCampaign:
    """A campaign by key on the request session (under the loaders' lock: resolvers run
    concurrently, the session takes one statement at a time)."""
    async with info.context.loaders.lock:
        return await campaigns.campaign_by_key(info.context.session, key)


def _inviter(key: str) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    kind, _, raw = key.partition(":")
    return (uuid.UUID(raw), None) if kind == "c" else (None, uuid.UUID(raw))


async def _progress(info: Info, campaign_key: str, key: str) -> ReferralProgressType:
    campaign = await _campaign(info, campaign_key)
    qualified = (
        await _rows(
            info,
            select(func.count()).where(
                ReferralCredit.campaign_id == campaign.id, ReferralCredit.inviter_key == key, ReferralCredit.reversed_at.is_(None)
            ),
        )
    ).scalar_one()
    rewarded = (
        await _rows(
            info,
            select(func.count()).where(
                ReferralReward.campaign_id == campaign.id, ReferralReward.inviter_key == key, ReferralReward.status != "reversed"
            ),
        )
    ).scalar_one()
    return ReferralProgressType(
        campaign=campaign.key, qualified=qualified, goal=campaign.goal, remaining=max(campaign.goal - qualified, 0), rewarded=rewarded > 0
    )


@strawberry.type
class CustomerReferrals:
    @strawberry.field(description="Who brought this customer in (null if nobody did).")
    async def referred_by(self, info: Info) -> ReferralAttributionType | None:
        ra = ReferralAttribution
        row = (
            await _rows(
                info,
                select(ra, ReferralCampaign.key)
                .join(ReferralCampaign, ReferralCampaign.id == ra.campaign_id)
                .where(ra.customer_id == self.uuid),  # type: ignore[attr-defined]
            )
        ).first()
        if row is None:
            return None
        a, key = row
        return ReferralAttributionType(
            inviter_customer_uuid=a.inviter_customer_id,
            inviter_user_uuid=a.inviter_user_id,
            channel=a.channel,
            referred_at=a.first_at,
            campaign=key,
            status=ReferralAttributionStatus(a.status),
            first_touch=ReferralTouch(channel=a.first_channel, at=a.first_at),
            last_touch=ReferralTouch(channel=a.last_channel, at=a.last_at),
        )

    @strawberry.field(description="The customers this customer brought in, down to `depth` levels (one query).")
    async def referrals(self, info: Info, depth: int = 1, first: int | None = None, after: str | None = None) -> ReferralConnection:
        settings = settings_of(info)
        if not 1 <= depth <= settings.max_depth:
            raise ValidationError(f"depth must be between 1 and {settings.max_depth}", field="depth")
        size = check_page_size(first, DEFAULT_PAGE, MAX_PAGE)
        start: tuple[int, uuid.UUID] | None = None
        if after:
            value, last = decode_cursor(after, "referrals")
            start = (int(value), last)
        limited = info.context.session.owners is not None
        rows = (await _rows(info, graph.referrals_page(self.uuid, depth, size, start, limited=limited))).all()  # type: ignore[attr-defined]
        page = rows[:size]
        edges = [
            ReferralEdge(
                cursor=encode_cursor("referrals", str(r.referral_depth), r.id),
                node=Customer.from_row(r, info.context),
                depth=r.referral_depth,
                channel=r.referral_channel,
                referred_at=r.referred_at,
            )
            for r in page
        ]
        return ReferralConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(description="Direct, indirect and converted referrals (one query).")
    async def referral_stats(self, info: Info) -> ReferralStats:
        settings = settings_of(info)
        async with info.context.loaders.lock:
            found = await graph.stats_of(info.context.session, [self.uuid], settings.max_depth, settings.converted_stage)  # type: ignore[attr-defined]
        s = found.get(self.uuid, graph.Stats())  # type: ignore[attr-defined]
        return ReferralStats(direct=s.direct, indirect=s.indirect, converted=s.converted)

    @strawberry.field(description="This customer's progress as an inviter in a campaign.")
    async def referral_progress(self, info: Info, campaign: str) -> ReferralProgressType:
        return await _progress(info, campaign, f"c:{self.uuid}")  # type: ignore[attr-defined]

    @strawberry.field(description="Rewards this customer earned as an inviter.")
    async def referral_rewards(self, info: Info) -> list[ReferralRewardType]:
        rows = await _rows(
            info,
            select(ReferralReward, ReferralCampaign.key)
            .join(ReferralCampaign, ReferralCampaign.id == ReferralReward.campaign_id)
            .where(ReferralReward.customer_id == self.uuid)  # type: ignore[attr-defined]
            .order_by(ReferralReward.created_at),
        )
        return [ReferralRewardType.from_model(r, k) for r, k in rows.all()]


@strawberry.type
class UserReferrals:
    @strawberry.field(description="This staff member's progress as an inviter in a campaign.")
    async def referral_progress(self, info: Info, campaign: str) -> ReferralProgressType:
        return await _progress(info, campaign, f"u:{self.uuid}")  # type: ignore[attr-defined]


@strawberry.type
class ReferralQuery:
    @strawberry.field(description="Referral campaigns, newest first.")
    async def referral_campaigns(self, info: Info) -> list[ReferralCampaignType]:
        rows = await _rows(info, select(ReferralCampaign).order_by(desc(ReferralCampaign.created_at)))
        return [ReferralCampaignType.from_model(c) for c in rows.scalars()]

    @strawberry.field(description="Inviters of a campaign by qualified invites, most first.")
    async def referral_leaderboard(self, info: Info, campaign: str, first: int | None = None) -> list[ReferralLeader]:
        size = check_page_size(first, 10, MAX_PAGE)
        c = await _campaign(info, campaign)
        rewarded = (
            select(func.count())
            .where(
                ReferralReward.campaign_id == c.id,
                ReferralReward.inviter_key == ReferralCredit.inviter_key,
                ReferralReward.status != "reversed",
            )
            .correlate(ReferralCredit)
            .scalar_subquery()
        )
        qualified = func.count().label("qualified")
        rows = await _rows(
            info,
            select(ReferralCredit.inviter_key, qualified, rewarded.label("rewarded"))
            .where(ReferralCredit.campaign_id == c.id, ReferralCredit.reversed_at.is_(None))
            .group_by(ReferralCredit.inviter_key)
            .order_by(desc(qualified), ReferralCredit.inviter_key)
            .limit(size),
        )
        out = []
        for key, count, won in rows.all():
            customer_id, user_id = _inviter(key)
            out.append(ReferralLeader(qualified=count, rewarded=won > 0, inviter_customer_uuid=customer_id, inviter_user_uuid=user_id))
        return out

    @strawberry.field(
        description="Staff members by referrals (in one campaign, or all): brought in by them directly, and by the customers they own."
    )
    async def referral_staff_leaderboard(
        self, info: Info, campaign: str | None = None, first: int | None = None
    ) -> list[ReferralStaffLeader]:
        size = check_page_size(first, 10, MAX_PAGE)
        ra = ReferralAttribution
        scope = [ra.status == "active"]
        if campaign is not None:
            scope.append(ra.campaign_id == (await _campaign(info, campaign)).id)
        direct = (
            select(ra.inviter_user_id.label("user_id"), func.count().label("direct"), func.sum(0).label("via"))
            .where(ra.inviter_user_id.is_not(None), *scope)
            .group_by(ra.inviter_user_id)
        )
        via = (
            select(CustomerModel.owner_id.label("user_id"), func.sum(0).label("direct"), func.count().label("via"))
            .join(ra, ra.inviter_customer_id == CustomerModel.id)
            .where(CustomerModel.owner_id.is_not(None), *scope)
            .group_by(CustomerModel.owner_id)
        )
        both = direct.union_all(via).subquery()
        per_user = (
            select(both.c.user_id, func.sum(both.c.direct).label("direct"), func.sum(both.c.via).label("via"))
            .group_by(both.c.user_id)
            .subquery()
        )
        total = (per_user.c.direct + per_user.c.via).label("total")
        rows = await _rows(
            info,
            select(UserModel, per_user.c.direct, per_user.c.via, total)
            .join(per_user, per_user.c.user_id == UserModel.id)
            .order_by(desc(total), UserModel.email)
            .limit(size),
        )
        return [
            ReferralStaffLeader(user=User.from_model(u), direct=int(d or 0), via_customers=int(v or 0), total=int(t or 0))
            for u, d, v, t in rows.all()
        ]

    @strawberry.field(description="The reward ledger, newest first (optionally one campaign, one status).")
    async def referral_rewards(
        self, info: Info, campaign: str | None = None, status: ReferralRewardStatus | None = None
    ) -> list[ReferralRewardType]:
        stmt = select(ReferralReward, ReferralCampaign.key).join(ReferralCampaign, ReferralCampaign.id == ReferralReward.campaign_id)
        if campaign is not None:
            stmt = stmt.where(ReferralCampaign.key == campaign)
        if status is not None:
            stmt = stmt.where(ReferralReward.status == status.value)
        rows = await _rows(info, stmt.order_by(desc(ReferralReward.created_at)).limit(MAX_PAGE))
        return [ReferralRewardType.from_model(r, k) for r, k in rows.all()]


async def _campaigns_by_id(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, ReferralCampaignType]:
    rows = await _rows(info, select(ReferralCampaign).where(ReferralCampaign.id.in_(ids)))
    return {c.id: ReferralCampaignType.from_model(c) for c in rows.scalars()}


async def _rewards_by_id(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, ReferralRewardType]:
    stmt = (
        select(ReferralReward, ReferralCampaign.key)
        .join(ReferralCampaign, ReferralCampaign.id == ReferralReward.campaign_id)
        .where(ReferralReward.id.in_(ids))
    )
    return {r.id: ReferralRewardType.from_model(r, k) for r, k in (await _rows(info, stmt)).all()}


#: what node(id:) fetches of this plugin (campaigns and rewards have global ids)
NODES = (
    NodeType("ReferralCampaign", _campaigns_by_id, guard="Query.referralCampaigns"),
    NodeType("ReferralReward", _rewards_by_id, guard="Query.referralRewards"),
)
