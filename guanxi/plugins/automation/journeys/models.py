"""The journeys' tables: journeys, their versions (the definitions), each customer's run of a
version, and the steps each run took (the ledger that makes a step happen once)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.models import Base, CustomerOwned, TenantScoped, new_id, utcnow


class AutomationJourney(TenantScoped, Base):
    """A journey of the tenant: ``status`` draft | active | paused | archived; ``version`` is the
    current (latest published) version, whose trigger lets customers in while active."""

    __tablename__ = "automation_journeys"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: trigger of the current version, for finding the journeys an event starts: its type and value
    trigger_type: Mapped[str] = mapped_column(String(32))
    trigger_value: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AutomationJourneyVersion(TenantScoped, Base):
    """One version of a journey's definition (immutable once written)."""

    __tablename__ = "automation_journey_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "journey_id"],
            ["automation_journeys.tenant_id", "automation_journeys.id"],
            name="fk_automation_journey_versions_journey",
        ),
    )

    journey_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class AutomationJourneyRun(CustomerOwned, TenantScoped, Base):
    """A customer's run of one journey version: at ``step`` (None once finished), due at
    ``next_attempt_at`` while ``waiting``; claimed (``running``, leased) by one worker at a time.
    Ends ``done``, ``converted`` (the goal was reached), ``exited`` (left: moved to a version
    without its step, erased, stopped) or ``failed``. One run per customer per version."""

    __tablename__ = "automation_journey_runs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "journey_id", "version", "customer_id", name="uq_automation_journey_runs_version_customer"),
        ForeignKeyConstraint(
            ["tenant_id", "journey_id"],
            ["automation_journeys.tenant_id", "automation_journeys.id"],
            name="fk_automation_journey_runs_journey",
        ),
        Index("ix_automation_journey_runs_claim", "status", "next_attempt_at"),
        Index(None, "tenant_id", "customer_id", "status"),
        Index(None, "tenant_id", "journey_id", "status", "step"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    journey_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[uuid.UUID]
    step: Mapped[str | None] = mapped_column(String(48))
    #: steps taken so far: the next step's number in the run's ledger
    seq: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: while at a wait step: when the wait began; for ``wait_event``, whether the event came
    waiting_since: Mapped[dt.datetime | None]
    event_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class AutomationJourneyStep(CustomerOwned, TenantScoped, Base):
    """One step a run took: unique per run and step number, written in the same transaction as
    the step's effects, so a step happens once however often a worker dies and retries.
    ``outcome``: done | sent | skipped | failed | waited | converted; ``reason`` for a skip."""

    __tablename__ = "automation_journey_steps"
    __table_args__ = (
        UniqueConstraint("tenant_id", "run_id", "seq"),
        Index(None, "tenant_id", "journey_id", "step", "outcome"),
        Index(None, "tenant_id", "journey_id", "at"),
        Index(None, "tenant_id", "customer_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID]
    journey_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(48))
    step_type: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
