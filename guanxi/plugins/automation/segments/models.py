"""The segments' tables: a segment (its definition) and its members."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.models import Base, CustomerOwned, TenantScoped, new_id, utcnow


class AutomationSegment(TenantScoped, Base):
    """A saved filter of the tenant's customers.

    ``kind``: ``dynamic`` (``definition`` is a condition tree, see
    :mod:`guanxi.plugins.automation.segments.definition`; members are whoever matches it now, and
    :class:`AutomationSegmentMember` keeps the last evaluated membership for entry and exit events)
    or ``static`` (a frozen list: the members rows are the segment)."""

    __tablename__ = "automation_segments"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: when a dynamic segment's membership was last evaluated in full
    refreshed_at: Mapped[dt.datetime | None]


class AutomationSegmentMember(CustomerOwned, TenantScoped, Base):
    """A customer in a segment since ``entered_at`` (a static segment's list; a dynamic segment's
    membership as last evaluated)."""

    __tablename__ = "automation_segment_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "segment_id"],
            ["automation_segments.tenant_id", "automation_segments.id"],
            name="fk_automation_segment_members_segment",
        ),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        Index(None, "tenant_id", "customer_id"),
    )

    segment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
