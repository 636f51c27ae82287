"""GraphQL object types of the referral plugin (the resolvers that read them are in
:mod:`guanxi.plugins.referral.graphql`, the mutations in :mod:`guanxi.plugins.referral.mutations`)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import strawberry
from strawberry.types import Info

from guanxi.graphql.ids import to_global_id
from guanxi.graphql.pagination import PageInfo
from guanxi.graphql.types import Customer, Node, User
from guanxi.plugins.referral import campaigns
from guanxi.plugins.referral.links import image_url, link_url
from guanxi.plugins.referral.models import ReferralCampaign, ReferralToken


async def customer_of(info: Info, customer_id: uuid.UUID | None) -> Customer | None:
    """Through the request's customer DataLoader: a list of N inviters costs one statement."""
    if customer_id is None:
        return None
    row = await info.context.loaders.customers.load(customer_id)
    return Customer.from_row(row, info.context) if row is not None else None


async def user_of(info: Info, user_id: uuid.UUID | None) -> User | None:
    if user_id is None:
        return None
    u = await info.context.loaders.users.load(user_id)
    return User.from_model(u) if u else None


@strawberry.type(description="An invite-N campaign (裂变).")
class ReferralCampaignType(Node):
    id: strawberry.ID
    uuid: strawberry.Private[uuid.UUID]
    key: str
    name: str
    landing_url: str
    goal: int = strawberry.field(description="qualified invites that earn the reward; 0 for attribution only")
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    qualify_stage: str | None = strawberry.field(description="stage an invitee must reach to count; null: arriving counts")
    reversal_days: int
    reward_kind: str | None = strawberry.field(description="coupon, points or task")
    reward_points: int
    active: bool

    @strawberry.field(description="Coupon codes not handed out yet (coupon campaigns).")
    async def coupons_left(self, info: Info) -> int:
        async with info.context.loaders.lock:
            return await campaigns.coupons_left(info.context.session, self.uuid)

    @classmethod
    def from_model(cls, c: ReferralCampaign) -> ReferralCampaignType:
        return cls(
            id=strawberry.ID(to_global_id("ReferralCampaign", c.id)),
            uuid=c.id,
            key=c.key,
            name=c.name,
            landing_url=c.landing_url,
            goal=c.goal,
            starts_at=c.starts_at,
            ends_at=c.ends_at,
            qualify_stage=c.qualify_stage,
            reversal_days=c.reversal_days,
            reward_kind=c.reward_kind,
            reward_points=c.reward_points,
            active=c.active,
        )


@strawberry.type(description="A way in offered by a channel for a token (a WeCom contact-way QR, a link).")
class ReferralEntryPoint:
    channel: str
    kind: str = strawberry.field(description="qr or link")
    url: str
    reference: str | None


@strawberry.type(description="An inviter's attribution token with its link, QR codes, poster and channel entry points.")
class ReferralShare:
    token: str
    campaign: str
    url: str = strawberry.field(description="the tracked link /r/{token}")
    qr_png_url: str
    qr_svg_url: str
    poster_url: str
    entry_points: list[ReferralEntryPoint]
    anonymous_visits: int
    known_visits: int

    @classmethod
    def from_model(cls, t: ReferralToken, campaign_key: str, public_url: str) -> ReferralShare:
        return cls(
            token=t.token,
            campaign=campaign_key,
            url=link_url(public_url, t.token),
            qr_png_url=image_url(public_url, t.token, "qr.png"),
            qr_svg_url=image_url(public_url, t.token, "qr.svg"),
            poster_url=image_url(public_url, t.token, "poster.png"),
            entry_points=[ReferralEntryPoint(**p) for p in t.entry_points],
            anonymous_visits=t.anonymous_visits,
            known_visits=t.known_visits,
        )


@strawberry.type(description="One touch: the token's campaign, the channel and when.")
class ReferralTouch:
    channel: str
    at: dt.datetime


@strawberry.enum(description="Whether a referred customer still counts for the inviter.")
class ReferralAttributionStatus(enum.Enum):
    ACTIVE = "active"
    LEFT = strawberry.enum_value("left", description="the invitee left within the campaign's reversal window")


@strawberry.enum(description="Where a referral reward stands.")
class ReferralRewardStatus(enum.Enum):
    GRANTED = "granted"
    REDEEMED = "redeemed"
    REVERSED = "reversed"


@strawberry.type(description="Who brought a customer in.")
class ReferralAttributionType:
    inviter_customer_uuid: strawberry.Private[uuid.UUID | None]
    inviter_user_uuid: strawberry.Private[uuid.UUID | None]
    channel: str
    referred_at: dt.datetime
    campaign: str
    status: ReferralAttributionStatus
    first_touch: ReferralTouch
    last_touch: ReferralTouch

    @strawberry.field(description="The inviting customer, if a customer invited.")
    async def customer(self, info: Info) -> Customer | None:
        return await customer_of(info, self.inviter_customer_uuid)

    @strawberry.field(description="The inviting staff member, if staff invited.")
    async def user(self, info: Info) -> User | None:
        return await user_of(info, self.inviter_user_uuid)


@strawberry.type
class ReferralEdge:
    cursor: str
    node: Customer
    depth: int = strawberry.field(description="1: brought in directly; 2: by someone they brought in; …")
    channel: str
    referred_at: dt.datetime


@strawberry.type
class ReferralConnection:
    edges: list[ReferralEdge]
    page_info: PageInfo


@strawberry.type(description="Counts of a customer's referral tree.")
class ReferralStats:
    direct: int
    indirect: int
    converted: int = strawberry.field(description="referrals at any depth in the configured converted stage")


@strawberry.type(description="An inviter's progress in an invite-N campaign.")
class ReferralProgressType:
    campaign: str
    qualified: int
    goal: int
    remaining: int
    rewarded: bool


@strawberry.type(description="An entry of the reward ledger.")
class ReferralRewardType(Node):
    id: strawberry.ID
    campaign: str
    kind: str
    points: int
    code: str | None
    status: ReferralRewardStatus
    created_at: dt.datetime
    redeemed_at: dt.datetime | None
    reversed_at: dt.datetime | None
    inviter_customer_uuid: strawberry.Private[uuid.UUID | None]
    inviter_user_uuid: strawberry.Private[uuid.UUID | None]
    task_uuid: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="Id of the hand-over task (task rewards).")
    def task_id(self) -> strawberry.ID | None:
        return strawberry.ID(to_global_id("Task", self.task_uuid)) if self.task_uuid else None

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        return await customer_of(info, self.inviter_customer_uuid)

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await user_of(info, self.inviter_user_uuid)

    @classmethod
    def from_model(cls, r: Any, campaign_key: str) -> ReferralRewardType:
        return cls(
            id=strawberry.ID(to_global_id("ReferralReward", r.id)),
            campaign=campaign_key,
            kind=r.kind,
            points=r.points,
            code=r.code,
            status=ReferralRewardStatus(r.status),
            created_at=r.created_at,
            redeemed_at=r.redeemed_at,
            reversed_at=r.reversed_at,
            inviter_customer_uuid=r.customer_id,
            inviter_user_uuid=r.user_id,
            task_uuid=r.task_id,
        )


@strawberry.type(description="An inviter's place in a campaign.")
class ReferralLeader:
    qualified: int
    rewarded: bool
    inviter_customer_uuid: strawberry.Private[uuid.UUID | None]
    inviter_user_uuid: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        return await customer_of(info, self.inviter_customer_uuid)

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await user_of(info, self.inviter_user_uuid)


@strawberry.type(description="A staff member's referrals: brought in by them, and by the customers they own.")
class ReferralStaffLeader:
    user: User
    direct: int
    via_customers: int
    total: int
