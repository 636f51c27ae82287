"""The sales plugin's tables: lead pools, the leads in them, the moves of a lead, and the
recurring follow-up plans with their runs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Date, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.models import PERSONAL, Base, CustomerOwned, TenantScoped, new_id, utcnow


class SalesPool(TenantScoped, Base):
    """A lead pool (公海) of the tenant, e.g. by region or product line.

    ``hold_limit``: how many leads of this pool one salesperson may hold at once (None: no limit).
    ``return_after_days``: a held lead without any interaction for that many days goes back to
    the pool (None: never); its holder is notified a day before. ``return_rules``: the
    contributed return rules it applies, each with its parameter."""

    __tablename__ = "sales_pools"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    hold_limit: Mapped[int | None] = mapped_column(Integer)
    return_after_days: Mapped[int | None] = mapped_column(Integer)
    #: the return rules other plugins contribute (``guanxi_pool_return_rules``) this pool applies,
    #: with their parameter: ``{"sales.contract_lapsed": 30}`` (None: none)
    return_rules: Mapped[dict[str, Any] | None]
    #: who may claim: users with one of these roles (None: sales, manager and admin)
    claim_roles: Mapped[list[str] | None]
    #: and/or users of one of these teams (None: any team)
    claim_teams: Mapped[list[str] | None]
    #: how many leads of this pool a user of each role may claim per day (the tenant's day), by role
    daily_claim_limits: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesPoolLead(CustomerOwned, TenantScoped, Base):
    """A customer's place in a pool: ``open`` (unowned, claimable) or ``held`` by ``holder_id``
    since ``held_at``. A customer is in at most one pool."""

    __tablename__ = "sales_pool_leads"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "pool_id"], ["sales_pools.tenant_id", "sales_pools.id"]),
        Index(None, "tenant_id", "pool_id", "status", "entered_at"),
        Index(None, "tenant_id", "holder_id", "status"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    pool_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(8))
    holder_id: Mapped[uuid.UUID | None]
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    held_at: Mapped[dt.datetime | None]
    #: when the holder was told the lead returns to the pool tomorrow (once per hold)
    warned_at: Mapped[dt.datetime | None]


class SalesPoolMove(CustomerOwned, TenantScoped, Base):
    """One move of a lead: ``enter`` (put in the pool), ``claim``, ``release`` or ``return`` (by a
    return rule), by whom and why."""

    __tablename__ = "sales_pool_moves"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index(None, "tenant_id", "customer_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    pool_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[uuid.UUID | None]
    rule: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesFollowUpPlan(TenantScoped, Base):
    """A recurring follow-up plan: every ``every_days`` days, each owned customer matching
    ``filter`` (stages, tags, custom-field conditions) gets a task ``task_title`` for its owner,
    due ``due_days`` days later (core's task reminders remind the owner)."""

    __tablename__ = "sales_followup_plans"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    every_days: Mapped[int] = mapped_column(Integer)
    due_days: Mapped[int] = mapped_column(Integer)
    task_title: Mapped[str] = mapped_column(String(300))
    filter: Mapped[dict[str, Any]]
    #: the day period 0 starts (the tenant's day the plan was made)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesFollowUpRun(CustomerOwned, TenantScoped, Base):
    """A plan's task for one customer in one period: the row that makes the plan idempotent."""

    __tablename__ = "sales_followup_runs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["sales_followup_plans.tenant_id", "sales_followup_plans.id"]),
    )

    plan_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[uuid.UUID]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesGradeRule(TenantScoped, Base):
    """The tenant's rule deriving a grade (a single-choice custom field, e.g. ``grade``) from the
    scoring total: ``bands`` ``[{"grade": "A", "min": 70}, …]`` highest first; a score below
    every band gets ``otherwise`` (None: the field is cleared). One per tenant."""

    __tablename__ = "sales_grade_rules"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),)

    field_key: Mapped[str] = mapped_column(String(64))
    bands: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    otherwise: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
