"""The insights plugin's tables. Every key starts with ``tenant_id``; every row belongs to one
customer (``CustomerOwned``), so a caller who may not see a customer sees none of its insights."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Float, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.domain.models import Base, CustomerOwned, TenantScoped


class InsightsSentiment(TenantScoped, CustomerOwned, Base):
    """The sentiment of one inbound interaction's text (interactions are append-only, so the
    score lives here): ``score`` in [-1, 1], ``label`` (pos, neg, neu), the text's ``language``,
    the ``model`` that scored it, and ``alert`` (the reason an alert was raised, if one was)."""

    __tablename__ = "insights_sentiments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "interaction_id"], ["interactions.tenant_id", "interactions.id"]),
        Index(None, "tenant_id", "customer_id", "occurred_at"),
    )

    interaction_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime]
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(64))
    alert: Mapped[str | None] = mapped_column(String(200))
