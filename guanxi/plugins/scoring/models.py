"""The scoring plugin's tables: current scores, the parts they are made of, and their history.

Every key starts with ``tenant_id``; every row belongs to one customer (``CustomerOwned``), so a
caller who may not see a customer sees none of its score rows either.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, Float, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.domain.models import Base, CustomerOwned, TenantScoped


def _customer_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"])


class ScoringScore(TenantScoped, CustomerOwned, Base):
    """A customer's current score: the sum of its parts as of ``computed_at``."""

    __tablename__ = "scoring_scores"
    __table_args__ = (_customer_fk(), Index(None, "tenant_id", "total", "customer_id"))

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    total: Mapped[float] = mapped_column(Float)
    recorded_total: Mapped[float] = mapped_column(Float)  # the total of the latest history row
    computed_at: Mapped[dt.datetime]


class ScoringPart(TenantScoped, CustomerOwned, Base):
    """One line of a score's explanation: ``component`` (engagement, profile, social, purchase,
    or a plugin's ``<plugin>.<part>``), ``item`` (the rule or fact: ``message_in@wecom``,
    ``followers@douyin``, ``recency``), how many events ``count`` (and how many were over a cap,
    ``skipped``), the quantity measured (``measure``: followers, an engagement rate, the amount
    spent), the time span of those events, and the points. ``reasons`` holds the words of a
    plugin-contributed component."""

    __tablename__ = "scoring_parts"
    __table_args__ = (_customer_fk(),)

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    item: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[float] = mapped_column(Float)
    measure: Mapped[float | None] = mapped_column(Float)  # followers, engagement rate, amount spent
    first_at: Mapped[dt.datetime | None]
    last_at: Mapped[dt.datetime | None]
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)


class ScoringHistory(TenantScoped, CustomerOwned, Base):
    """A change of a customer's total: when, from what to what, and what caused the recompute
    (``interaction:<kind>@<channel>``, ``recompute``, ``merge``)."""

    __tablename__ = "scoring_history"
    __table_args__ = (_customer_fk(),)

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(primary_key=True)
    total: Mapped[float] = mapped_column(Float)
    previous: Mapped[float | None] = mapped_column(Float)
    cause: Mapped[str] = mapped_column(String(200))


class ScoringAssignment(TenantScoped, Base):
    """When a staff user last received a lead from a stage rule (round-robin assignment)."""

    __tablename__ = "scoring_assignments"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),)

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_assigned_at: Mapped[dt.datetime]


#: every table of the plugin (tenant export and purge)
TABLES: tuple[type, ...] = (
    ScoringScore,
    ScoringPart,
    ScoringHistory,
    ScoringAssignment,
)
