"""Campaigns and the tokens minted for their inviters."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import func, select

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.contracts import EntryPoint, EntryPointRequest
from guanxi.core.domain.models import Customer, User, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.plugins.referral.models import ReferralCampaign, ReferralCoupon, ReferralToken
from guanxi.plugins.referral.poster import PosterLayout, background_path
from guanxi.plugins.referral.settings import ReferralSettings
from guanxi.plugins.referral.tokens import inviter_key, new_token

KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
REWARD_KINDS = ("coupon", "points", "task")


class CampaignInput(msgspec.Struct, kw_only=True):
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
    coupon_codes: list[str] = msgspec.field(default_factory=list)
    poster: PosterLayout | None = None


def check_landing_url(url: str, settings: ReferralSettings) -> None:
    """Only absolute http(s) URLs, on an allowed host when ``landing_hosts`` is set."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("landing URL must be an absolute http(s) URL", field="landingUrl")
    if settings.landing_hosts and parts.hostname not in settings.landing_hosts:
        raise ValidationError(f"landing URL host {parts.hostname!r} is not in landing_hosts", field="landingUrl")


def _check_window(starts_at: dt.datetime | None, ends_at: dt.datetime | None) -> None:
    for field, value in (("startsAt", starts_at), ("endsAt", ends_at)):
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{field} must carry a time zone", field=field)
    if starts_at and ends_at and ends_at <= starts_at:
        raise ValidationError("the window ends before it starts", field="endsAt")


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > 200:
        raise ValidationError("name must be 1 to 200 characters", field="name")


def _validate(data: CampaignInput, settings: ReferralSettings) -> None:
    if not data.key or len(data.key) > 64 or not set(data.key) <= KEY_CHARS:
        raise ValidationError("key must be 1 to 64 characters of a-z, 0-9, - and _", field="key")
    _check_name(data.name)
    check_landing_url(data.landing_url, settings)
    if data.goal < 0:
        raise ValidationError("goal must not be negative", field="goal")
    if data.goal and data.reward_kind not in REWARD_KINDS:
        raise ValidationError(f"a campaign with a goal needs a reward kind: one of {', '.join(REWARD_KINDS)}", field="rewardKind")
    if data.reward_kind == "points" and data.reward_points <= 0:
        raise ValidationError("a points reward needs rewardPoints > 0", field="rewardPoints")
    if data.reward_kind == "coupon" and not data.coupon_codes:
        raise ValidationError("a coupon reward needs a pool of coupon codes", field="couponCodes")
    if data.reversal_days < 0:
        raise ValidationError("reversalDays must not be negative", field="reversalDays")
    _check_window(data.starts_at, data.ends_at)
    _check_poster(data.poster, settings)


def _check_poster(poster: PosterLayout | None, settings: ReferralSettings) -> None:
    if poster is not None and poster.background is not None:
        background_path(poster.background, settings.poster_backgrounds_dir)


async def create_campaign(tx: Tx, data: CampaignInput, settings: ReferralSettings) -> ReferralCampaign:
    _validate(data, settings)
    if (await tx.session.execute(select(ReferralCampaign.id).where(ReferralCampaign.key == data.key))).first():
        raise ConflictError(f"a campaign with key {data.key!r} exists", field="key")
    campaign = ReferralCampaign(
        id=new_id(),
        key=data.key,
        name=data.name.strip(),
        landing_url=data.landing_url,
        goal=data.goal,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        qualify_stage=data.qualify_stage,
        reversal_days=data.reversal_days,
        reward_kind=data.reward_kind,
        reward_points=data.reward_points,
        reward_title=data.reward_title,
        poster=msgspec.to_builtins(data.poster) if data.poster else {},
        active=True,
        created_at=utcnow(),
    )
    tx.session.add(campaign)
    await tx.session.flush()
    for code in dict.fromkeys(data.coupon_codes):
        tx.session.add(ReferralCoupon(campaign_id=campaign.id, code=code))
    audit(tx, "referral.campaign.create", "referral_campaign", campaign.id, {"key": data.key, "goal": data.goal})
    return campaign


class CampaignPatch(msgspec.Struct, kw_only=True):
    """Fields to change; ``UNSET`` leaves one as it is."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    landing_url: str | msgspec.UnsetType = msgspec.UNSET
    starts_at: dt.datetime | msgspec.UnsetType | None = msgspec.UNSET
    ends_at: dt.datetime | msgspec.UnsetType | None = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    poster: PosterLayout | msgspec.UnsetType | None = msgspec.UNSET
    add_coupon_codes: list[str] = msgspec.field(default_factory=list)


async def update_campaign(tx: Tx, key: str, patch: CampaignPatch, settings: ReferralSettings) -> ReferralCampaign:
    """Change a campaign (pause it, move its window, swap the poster, top up the coupon pool).
    Goal, reward and qualification stay as created: progress already counted depends on them."""
    campaign = await campaign_by_key(tx.session, key)
    if not isinstance(patch.name, msgspec.UnsetType):
        _check_name(patch.name)
        campaign.name = patch.name.strip()
    if not isinstance(patch.landing_url, msgspec.UnsetType):
        check_landing_url(patch.landing_url, settings)
        campaign.landing_url = patch.landing_url
    starts_at = campaign.starts_at if isinstance(patch.starts_at, msgspec.UnsetType) else patch.starts_at
    ends_at = campaign.ends_at if isinstance(patch.ends_at, msgspec.UnsetType) else patch.ends_at
    _check_window(starts_at, ends_at)
    campaign.starts_at, campaign.ends_at = starts_at, ends_at
    if not isinstance(patch.active, msgspec.UnsetType):
        campaign.active = patch.active
    if not isinstance(patch.poster, msgspec.UnsetType):
        _check_poster(patch.poster, settings)
        campaign.poster = msgspec.to_builtins(patch.poster) if patch.poster else {}
    known = set((await tx.session.execute(select(ReferralCoupon.code).where(ReferralCoupon.campaign_id == campaign.id))).scalars())
    added = [c for c in dict.fromkeys(patch.add_coupon_codes) if c not in known]
    for code in added:
        tx.session.add(ReferralCoupon(campaign_id=campaign.id, code=code))
    audit(tx, "referral.campaign.update", "referral_campaign", campaign.id, {"key": key, "coupons_added": len(added)})
    await tx.session.flush()
    return campaign


async def coupons_left(session: Any, campaign_id: uuid.UUID) -> int:
    stmt = select(func.count()).where(ReferralCoupon.campaign_id == campaign_id, ReferralCoupon.reward_id.is_(None))
    return int((await session.execute(stmt)).scalar_one())


async def campaign_by_key(session: Any, key: str) -> ReferralCampaign:
    campaign = (await session.execute(select(ReferralCampaign).where(ReferralCampaign.key == key))).scalar_one_or_none()
    if campaign is None:
        raise NotFoundError(f"referral campaign {key!r} not found", field="campaign")
    return campaign


async def campaign_of(session: Any, campaign_id: uuid.UUID) -> ReferralCampaign:
    campaign = (await session.execute(select(ReferralCampaign).where(ReferralCampaign.id == campaign_id))).scalar_one_or_none()
    if campaign is None:
        raise NotFoundError(f"referral campaign {campaign_id} not found", field="campaign")
    return campaign


def in_window(campaign: ReferralCampaign, at: dt.datetime) -> bool:
    return (
        campaign.active and (campaign.starts_at is None or at >= campaign.starts_at) and (campaign.ends_at is None or at < campaign.ends_at)
    )


async def mint_token(
    tx: Tx, campaign: ReferralCampaign, *, user_id: uuid.UUID | None = None, customer_id: uuid.UUID | None = None
) -> ReferralToken:
    """The token of this (campaign, inviter), minted on first ask. A new token is offered to
    every channel (``guanxi_entry_points``) and their entry points are kept with it."""
    key = inviter_key(user_id=user_id, customer_id=customer_id)
    existing = (
        await tx.session.execute(select(ReferralToken).where(ReferralToken.campaign_id == campaign.id, ReferralToken.inviter_key == key))
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    staff: uuid.UUID | None = user_id
    if user_id is not None:
        user = await tx.session.get(User, (tx.tenant_id, user_id))
        if user is None or not user.active:
            raise ValidationError(f"inviter {user_id} is not an active user of this tenant", field="inviterUserId")
    else:
        assert customer_id is not None
        customer: Customer = await get_customer(tx.session, customer_id)
        customer_id, staff = customer.id, customer.owner_id
        if inviter_key(customer_id=customer_id) != key:  # a merged customer: the survivor's token, if minted
            return await mint_token(tx, campaign, customer_id=customer_id)
    token = ReferralToken(
        id=new_id(),
        token=new_token(),
        campaign_id=campaign.id,
        inviter_key=key,
        inviter_user_id=user_id,
        inviter_customer_id=customer_id,
        entry_points=[],
        anonymous_visits=0,
        known_visits=0,
        created_at=utcnow(),
    )
    request = EntryPointRequest(
        token=token.token,
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        inviter_user_id=user_id,
        inviter_customer_id=customer_id,
        staff_user_id=staff,
    )
    answers = await plugins.collect((await tx.hooks()).guanxi_entry_points, runtime=tx.runtime, session=tx.session, request=request)
    found: list[dict[str, Any]] = []
    for _plugin, points in answers:
        for point in points:
            found.append(msgspec.to_builtins(msgspec.convert(msgspec.to_builtins(point), EntryPoint)))
    token.entry_points = found
    tx.session.add(token)
    await tx.session.flush()
    audit(tx, "referral.token.mint", "referral_token", token.id, {"campaign": campaign.key, "inviter": key})
    return token


async def token_by_value(session: Any, value: str) -> ReferralToken | None:
    return (await session.execute(select(ReferralToken).where(ReferralToken.token == value))).scalar_one_or_none()
