"""The referral plugin's tables. ``tenant_id`` leads every key; foreign keys to core tables are
composite (tenant, id), as core's own."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import PERSONAL, Base, CustomerOwned, TenantScoped, utcnow


def _fk(column: str, table: str, name: str | None = None) -> ForeignKeyConstraint:
    """A composite (tenant, id) foreign key; ``name`` where the conventional name would pass
    PostgreSQL's 63-character limit."""
    return ForeignKeyConstraint(["tenant_id", column], [f"{table}.tenant_id", f"{table}.id"], name=name)


class ReferralCampaign(TenantScoped, Base):
    """An invite-N campaign (裂变): ``goal`` qualified invites between ``starts_at`` and
    ``ends_at`` earn a reward; an invitee who leaves within ``reversal_days`` takes the credit back."""

    __tablename__ = "referral_campaigns"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    landing_url: Mapped[str] = mapped_column(String(1000))
    goal: Mapped[int] = mapped_column(Integer, default=0)  # 0: attribution only, no reward
    starts_at: Mapped[dt.datetime | None]
    ends_at: Mapped[dt.datetime | None]
    qualify_stage: Mapped[str | None] = mapped_column(String(64))  # None: an arrival qualifies
    reversal_days: Mapped[int] = mapped_column(Integer, default=7)
    reward_kind: Mapped[str | None] = mapped_column(String(16))  # coupon | points | task
    reward_points: Mapped[int] = mapped_column(Integer, default=0)
    reward_title: Mapped[str | None] = mapped_column(String(300))
    poster: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReferralToken(TenantScoped, Base):
    """An attribution token minted for one (campaign, inviter); the inviter is a staff user or a
    customer (``inviter_key`` is ``u:<id>`` or ``c:<id>``, one token per campaign and inviter).

    ``token`` is unique across tenants (a public link ``/r/{token}`` finds its tenant from the
    token alone): like API key ids, an exception to "every key starts with tenant_id"."""

    __tablename__ = "referral_tokens"
    __table_args__ = (
        UniqueConstraint("token"),
        UniqueConstraint("tenant_id", "campaign_id", "inviter_key"),
        _fk("campaign_id", "referral_campaigns"),
        _fk("inviter_user_id", "users"),
        _fk("inviter_customer_id", "customers"),
        Index(None, "tenant_id", "inviter_customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token: Mapped[str] = mapped_column(String(30))
    campaign_id: Mapped[uuid.UUID]
    inviter_key: Mapped[str] = mapped_column(String(40))
    inviter_user_id: Mapped[uuid.UUID | None]
    inviter_customer_id: Mapped[uuid.UUID | None]
    entry_points: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    anonymous_visits: Mapped[int] = mapped_column(Integer, default=0)
    known_visits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReferralAttribution(CustomerOwned, TenantScoped, Base):
    """Who brought this customer (``customer_id``, the invitee): one row per person.

    ``first_*`` and ``last_*`` keep the first and the latest touch; ``inviter_*`` is the one the
    configured attribution model picks. ``status`` is ``active`` or ``left`` (the invitee left
    within the campaign's reversal window). ``external_id`` is the channel account that arrived."""

    __tablename__ = "referral_attributions"
    __table_args__ = (
        _fk("customer_id", "customers"),
        _fk("inviter_customer_id", "customers", "fk_referral_attributions_inviter_customers"),
        _fk("campaign_id", "referral_campaigns", "fk_referral_attributions_campaign_id_campaigns"),
        Index(None, "tenant_id", "inviter_customer_id", "status"),
        Index(None, "tenant_id", "inviter_user_id", "status"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    inviter_customer_id: Mapped[uuid.UUID | None]
    inviter_user_id: Mapped[uuid.UUID | None]
    campaign_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(128), info=PERSONAL)
    status: Mapped[str] = mapped_column(String(16), default="active")
    first_token_id: Mapped[uuid.UUID]
    first_channel: Mapped[str] = mapped_column(String(32))
    first_at: Mapped[dt.datetime]
    last_token_id: Mapped[uuid.UUID]
    last_channel: Mapped[str] = mapped_column(String(32))
    last_at: Mapped[dt.datetime]
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    left_at: Mapped[dt.datetime | None]


class ReferralClosure(TenantScoped, Base):
    """The referral forest's transitive closure: one row per (ancestor, descendant) pair with the
    number of steps between them (1: a direct referral). An edge is an ``active`` attribution with
    a customer inviter; every write of attributions keeps these rows in the same transaction
    (:mod:`guanxi.plugins.referral.closure`), so a tree down to any depth is one index range scan.

    The key orders an inviter's descendants by depth, then id (the tree page's order); the second
    index finds a customer's ancestors (cycle check, maintenance)."""

    __tablename__ = "referral_closure"
    __table_args__ = (
        _fk("ancestor_id", "customers", "fk_referral_closure_ancestor_customers"),
        _fk("descendant_id", "customers", "fk_referral_closure_descendant_customers"),
        Index(None, "tenant_id", "descendant_id", "depth"),
    )

    ancestor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    depth: Mapped[int] = mapped_column(Integer, primary_key=True)
    descendant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class ReferralCredit(CustomerOwned, TenantScoped, Base):
    """One qualified invite (``customer_id``, the invitee) counted for an inviter in a campaign;
    ``reversed_at`` is set when the invitee left within the reversal window."""

    __tablename__ = "referral_credits"
    __table_args__ = (
        _fk("customer_id", "customers"),
        _fk("campaign_id", "referral_campaigns"),
        Index(None, "tenant_id", "campaign_id", "inviter_key"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    inviter_key: Mapped[str] = mapped_column(String(40))
    qualified_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reversed_at: Mapped[dt.datetime | None]


class ReferralReward(CustomerOwned, TenantScoped, Base):
    """The reward ledger: one row per reward earned by an inviter (``customer_id`` when the
    inviter is a customer, ``user_id`` when staff). ``status``: granted, redeemed or reversed."""

    __tablename__ = "referral_rewards"
    __table_args__ = (
        _fk("campaign_id", "referral_campaigns"),
        _fk("customer_id", "customers"),
        Index(None, "tenant_id", "campaign_id", "inviter_key"),
        Index(None, "tenant_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    campaign_id: Mapped[uuid.UUID]
    inviter_key: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(16), default="granted")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    redeemed_at: Mapped[dt.datetime | None]
    reversed_at: Mapped[dt.datetime | None]


class ReferralCoupon(TenantScoped, Base):
    """A campaign's pool of coupon codes; ``reward_id`` is set once a code is handed out."""

    __tablename__ = "referral_coupons"
    __table_args__ = (_fk("campaign_id", "referral_campaigns"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    reward_id: Mapped[uuid.UUID | None]


#: every table of the plugin (tenant export and purge)
TABLES: tuple[type, ...] = (
    ReferralCampaign,
    ReferralToken,
    ReferralAttribution,
    ReferralClosure,
    ReferralCredit,
    ReferralReward,
    ReferralCoupon,
)
