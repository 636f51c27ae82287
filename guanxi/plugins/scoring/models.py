"""The scoring plugin's tables: current scores (each with the parts it is made of) and their history.

Every key starts with ``tenant_id``; every row belongs to one customer (``CustomerOwned``), so a
caller who may not see a customer sees none of its score rows either.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Float, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.domain.models import Base, CustomerOwned, TenantScoped


def _customer_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"])


class ScoringScore(TenantScoped, CustomerOwned, Base):
    """A customer's current score: the sum of its parts as of ``computed_at``. ``parts`` holds
    the explanation, one JSON object per rule or fact (:mod:`guanxi.plugins.scoring.parts`)."""

    __tablename__ = "scoring_scores"
    __table_args__ = (_customer_fk(), Index(None, "tenant_id", "total", "customer_id"))

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    total: Mapped[float] = mapped_column(Float)
    recorded_total: Mapped[float] = mapped_column(Float)  # the total of the latest history row
    computed_at: Mapped[dt.datetime]
    parts: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)


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
    ScoringHistory,
    ScoringAssignment,
)
