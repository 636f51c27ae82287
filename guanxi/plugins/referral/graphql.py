"""The referral plugin's part of the GraphQL schema."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import strawberry
from sqlalchemy import desc, func, select
from strawberry.types import Info

from guanxi.core.errors import ValidationError
from guanxi.core.models import Customer as CustomerModel
from guanxi.core.models import User as UserModel
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.pagination import PageInfo, check_page_size, decode_cursor, encode_cursor
from guanxi.graphql.types import Customer, User
from guanxi.plugins.referral import campaigns, graph, ledger
from guanxi.plugins.referral.links import image_url, link_url
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCampaign, ReferralCredit, ReferralReward, ReferralToken
from guanxi.plugins.referral.poster import PosterLayout
from guanxi.plugins.referral.settings import ReferralSettings

DEFAULT_PAGE, MAX_PAGE = 20, 100


def _settings(info: Info) -> ReferralSettings:
    settings: ReferralSettings = info.context.rt.plugin_settings("referral")
    return settings


async def _rows(info: Info, stmt: Any) -> Any:
    return await info.context.loaders.execute(stmt)


async def _campaign(info: Info, key: str) -> ReferralCampaign:
    """A campaign by key on the request session (under the loaders' lock: resolvers run
    concurrently, the session takes one statement at a time)."""
    async with info.context.loaders.lock:
        return await campaigns.campaign_by_key(info.context.session, key)


async def _customer(info: Info, customer_id: uuid.UUID | None) -> Customer | None:
    """Through the request's customer DataLoader: a list of N inviters costs one statement."""
    if customer_id is None:
        return None
    row = await info.context.loaders.customers.load(customer_id)
    return Customer.from_row(row, info.context) if row is not None else None


async def _user(info: Info, user_id: uuid.UUID | None) -> User | None:
    if user_id is None:
        return None
    u = await info.context.loaders.users.load(user_id)
    return User.from_model(u) if u else None


@strawberry.type(description="An invite-N campaign (裂变).")
class ReferralCampaignType:
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


@strawberry.type(description="Who brought a customer in.")
class ReferralAttributionType:
    inviter_customer_uuid: strawberry.Private[uuid.UUID | None]
    inviter_user_uuid: strawberry.Private[uuid.UUID | None]
    channel: str
    referred_at: dt.datetime
    campaign: str
    status: str = strawberry.field(description="active, or left (left within the reversal window)")
    first_touch: ReferralTouch
    last_touch: ReferralTouch

    @strawberry.field(description="The inviting customer, if a customer invited.")
    async def customer(self, info: Info) -> Customer | None:
        return await _customer(info, self.inviter_customer_uuid)

    @strawberry.field(description="The inviting staff member, if staff invited.")
    async def user(self, info: Info) -> User | None:
        return await _user(info, self.inviter_user_uuid)


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
class ReferralRewardType:
    id: strawberry.ID
    campaign: str
    kind: str
    points: int
    code: str | None
    status: str = strawberry.field(description="granted, redeemed or reversed")
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
        return await _customer(info, self.inviter_customer_uuid)

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await _user(info, self.inviter_user_uuid)

    @classmethod
    def from_model(cls, r: Any, campaign_key: str) -> ReferralRewardType:
        return cls(
            id=strawberry.ID(to_global_id("ReferralReward", r.id)),
            campaign=campaign_key,
            kind=r.kind,
            points=r.points,
            code=r.code,
            status=r.status,
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
        return await _customer(info, self.inviter_customer_uuid)

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await _user(info, self.inviter_user_uuid)


@strawberry.type(description="A staff member's referrals: brought in by them, and by the customers they own.")
class ReferralStaffLeader:
    user: User
    direct: int
    via_customers: int
    total: int


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
            status=a.status,
            first_touch=ReferralTouch(channel=a.first_channel, at=a.first_at),
            last_touch=ReferralTouch(channel=a.last_channel, at=a.last_at),
        )

    @strawberry.field(description="The customers this customer brought in, down to `depth` levels (one recursive query).")
    async def referrals(self, info: Info, depth: int = 1, first: int | None = None, after: str | None = None) -> ReferralConnection:
        settings = _settings(info)
        if not 1 <= depth <= settings.max_depth:
            raise ValidationError(f"depth must be between 1 and {settings.max_depth}", field="depth")
        size = check_page_size(first, DEFAULT_PAGE, MAX_PAGE)
        start: tuple[int, uuid.UUID] | None = None
        if after:
            value, last = decode_cursor(after, "referrals")
            start = (int(value), last)
        rows = (await _rows(info, graph.referrals_page(self.uuid, depth, size, start))).all()  # type: ignore[attr-defined]
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

    @strawberry.field(description="Direct, indirect and converted referrals (one recursive query).")
    async def referral_stats(self, info: Info) -> ReferralStats:
        settings = _settings(info)
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
    async def referral_rewards(self, info: Info, campaign: str | None = None, status: str | None = None) -> list[ReferralRewardType]:
        stmt = select(ReferralReward, ReferralCampaign.key).join(ReferralCampaign, ReferralCampaign.id == ReferralReward.campaign_id)
        if campaign is not None:
            stmt = stmt.where(ReferralCampaign.key == campaign)
        if status is not None:
            stmt = stmt.where(ReferralReward.status == status)
        rows = await _rows(info, stmt.order_by(desc(ReferralReward.created_at)).limit(MAX_PAGE))
        return [ReferralRewardType.from_model(r, k) for r, k in rows.all()]


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


def _tx(info: Info) -> Any:
    info.context.reset_reads()
    return info.context.rt.transaction(info.context.ctx)


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
            async with _tx(info) as tx:
                c = await campaigns.create_campaign(tx, data, _settings(info))
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
            async with _tx(info) as tx:
                c = await campaigns.update_campaign(tx, key, patch, _settings(info))
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
            async with _tx(info) as tx:
                c = await campaigns.campaign_by_key(tx.session, campaign)
                token = await campaigns.mint_token(tx, c, user_id=user_id, customer_id=customer_id)
            return ReferralSharePayload(share=ReferralShare.from_model(token, c.key, _settings(info).public_url))

        return await as_payload(run, ReferralSharePayload)

    @strawberry.mutation(description="Mark a reward handed over; a redeemed reward is no longer reversed when an invitee leaves.")
    async def redeem_referral_reward(self, info: Info, id: strawberry.ID) -> ReferralRewardPayload:
        async def run() -> ReferralRewardPayload:
            async with _tx(info) as tx:
                reward = await ledger.redeem(tx, from_global_id(id, "ReferralReward"))
                key = (await campaigns.campaign_of(tx.session, reward.campaign_id)).key
            return ReferralRewardPayload(reward=ReferralRewardType.from_model(reward, key))

        return await as_payload(run, ReferralRewardPayload)
