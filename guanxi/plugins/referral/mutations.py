"""The referral plugin's mutations, their inputs and payloads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import strawberry
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.referral import campaigns, ledger
from guanxi.plugins.referral.api_types import ReferralCampaignType, ReferralRewardType, ReferralShare
from guanxi.plugins.referral.graphql import settings_of
from guanxi.plugins.referral.poster import PosterLayout


@strawberry.input
class BoxInput:
    x: int
    y: int
    size: int


@strawberry.input
class TextBoxInput:
    x: int
    y: int
    size: int = 32
    color: str = "#222222"


@strawberry.input(description="Where the QR code, the inviter's name and avatar go on the poster.")
class PosterLayoutInput:
    background: str | None = None
    width: int = 750
    height: int = 1334
    background_color: str = "#ffffff"
    qr: BoxInput | None = None
    name: TextBoxInput | None = None
    avatar: BoxInput | None = None


@strawberry.input
class CreateReferralCampaignInput:
    key: str
    name: str
    landing_url: str
    goal: int = 0
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    qualify_stage: str | None = None
    reversal_days: int = 7
    reward_kind: str | None = None
    reward_points: int = 0
    reward_title: str | None = None
    coupon_codes: list[str] = strawberry.field(default_factory=list)
    poster: PosterLayoutInput | None = None


@strawberry.input(description="Fields to change; leave one out to keep it. Goal, reward and qualification cannot change.")
class UpdateReferralCampaignInput:
    name: str | None = strawberry.UNSET
    landing_url: str | None = strawberry.UNSET
    starts_at: dt.datetime | None = strawberry.UNSET
    ends_at: dt.datetime | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    poster: PosterLayoutInput | None = strawberry.UNSET
    add_coupon_codes: list[str] = strawberry.field(default_factory=list)


def _given(value: Any, field: str, *, nullable: bool = True) -> Any:
    if value is strawberry.UNSET:
        return msgspec.UNSET
    if value is None and not nullable:
        raise ValidationError(f"{field} cannot be null", field=field)
    return value


@strawberry.type
class ReferralCampaignPayload:
    campaign: ReferralCampaignType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ReferralSharePayload:
    share: ReferralShare | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ReferralRewardPayload:
    reward: ReferralRewardType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _layout(value: PosterLayoutInput | None) -> PosterLayout | None:
    if value is None:
        return None
    raw: dict[str, Any] = {k: v for k, v in strawberry.asdict(value).items() if v is not None}
    try:
        return msgspec.convert(raw, PosterLayout)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"poster layout: {exc}", field="poster") from None


@strawberry.type
class ReferralMutation:
    @strawberry.mutation(description="Create an invite-N campaign (or an attribution-only one with goal 0).")
    async def create_referral_campaign(self, info: Info, input: CreateReferralCampaignInput) -> ReferralCampaignPayload:
        async def run() -> ReferralCampaignPayload:
            data = campaigns.CampaignInput(
                key=input.key,
                name=input.name,
                landing_url=input.landing_url,
                goal=input.goal,
                starts_at=input.starts_at,
                ends_at=input.ends_at,
                qualify_stage=input.qualify_stage,
                reversal_days=input.reversal_days,
                reward_kind=input.reward_kind,
                reward_points=input.reward_points,
                reward_title=input.reward_title,
                coupon_codes=list(input.coupon_codes),
                poster=_layout(input.poster),
            )
            async with info.context.transaction() as tx:
                c = await campaigns.create_campaign(tx, data, settings_of(info))
            return ReferralCampaignPayload(campaign=ReferralCampaignType.from_model(c))

        return await as_payload(run, ReferralCampaignPayload)

    @strawberry.mutation(description="Change a campaign: pause it, move its window, swap the poster, top up the coupon pool.")
    async def update_referral_campaign(self, info: Info, key: str, input: UpdateReferralCampaignInput) -> ReferralCampaignPayload:
        async def run() -> ReferralCampaignPayload:
            patch = campaigns.CampaignPatch(
                name=_given(input.name, "name", nullable=False),
                landing_url=_given(input.landing_url, "landingUrl", nullable=False),
                starts_at=_given(input.starts_at, "startsAt"),
                ends_at=_given(input.ends_at, "endsAt"),
                active=_given(input.active, "active", nullable=False),
                poster=msgspec.UNSET if input.poster is strawberry.UNSET else _layout(input.poster),
                add_coupon_codes=list(input.add_coupon_codes),
            )
            async with info.context.transaction() as tx:
                c = await campaigns.update_campaign(tx, key, patch, settings_of(info))
            return ReferralCampaignPayload(campaign=ReferralCampaignType.from_model(c))

        return await as_payload(run, ReferralCampaignPayload)

    @strawberry.mutation(description="The inviter's token in a campaign (minted on first ask) with its link, QR codes and poster.")
    async def mint_referral_token(
        self, info: Info, campaign: str, inviter_customer_id: strawberry.ID | None = None, inviter_user_id: strawberry.ID | None = None
    ) -> ReferralSharePayload:
        async def run() -> ReferralSharePayload:
            if (inviter_customer_id is None) == (inviter_user_id is None):
                raise ValidationError("give exactly one of inviterCustomerId and inviterUserId", field="inviterCustomerId")
            customer_id = from_global_id(inviter_customer_id, "Customer", field="inviterCustomerId") if inviter_customer_id else None
            user_id = from_global_id(inviter_user_id, "User", field="inviterUserId") if inviter_user_id else None
            async with info.context.transaction() as tx:
                c = await campaigns.campaign_by_key(tx.session, campaign)
                token = await campaigns.mint_token(tx, c, user_id=user_id, customer_id=customer_id)
            return ReferralSharePayload(share=ReferralShare.from_model(token, c.key, settings_of(info).public_url))

        return await as_payload(run, ReferralSharePayload)

    @strawberry.mutation(description="Mark a reward handed over; a redeemed reward is no longer reversed when an invitee leaves.")
    async def redeem_referral_reward(self, info: Info, id: strawberry.ID) -> ReferralRewardPayload:
        async def run() -> ReferralRewardPayload:
            async with info.context.transaction() as tx:
                reward = await ledger.redeem(tx, from_global_id(id, "ReferralReward"))
                key = (await campaigns.campaign_of(tx.session, reward.campaign_id)).key
            return ReferralRewardPayload(reward=ReferralRewardType.from_model(reward, key))

        return await as_payload(run, ReferralRewardPayload)
