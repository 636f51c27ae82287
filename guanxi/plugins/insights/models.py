"""The insights plugin's tables. Every key starts with ``tenant_id``; every row belongs to one
customer (``CustomerOwned``), so a caller who may not see a customer sees none of its insights."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, Boolean, Float, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.domain.models import Base, CustomerOwned, TenantScoped, new_id, utcnow


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


class InsightsTagRule(TenantScoped, Base):
    """A rule that tags customers (tenant data, managed in GraphQL), with the rule as the reason.

    ``kind``: ``keyword`` (an inbound text containing one of ``keywords``, as a word of its
    segmentation), ``at_least`` (``min_count`` or more interactions matching ``interaction_kind``,
    ``channel`` and ``direction``, each optional, in the last ``window_days``) or ``none_for`` (no
    such interaction in the last ``window_days``, for customers older than that). Keyword rules
    count the hits of the last ``window_days`` (null: all time). ``remove_when_false``: the tag
    goes when the rule no longer holds (else it stays until someone removes it). ``score_points``:
    what holding the rule's tag adds to the score (component ``insights.tags``; may be negative)."""

    __tablename__ = "insights_tag_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    tag: Mapped[str] = mapped_column(String(201))
    kind: Mapped[str] = mapped_column(String(16))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    interaction_kind: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str | None] = mapped_column(String(8))
    min_count: Mapped[int] = mapped_column(Integer, default=1)
    window_days: Mapped[int | None] = mapped_column(Integer)
    remove_when_false: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    score_points: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InsightsKeywordHit(TenantScoped, CustomerOwned, Base):
    """A keyword of a rule found in one inbound text: the customer's interests, and the evidence
    of the keyword rule's tag."""

    __tablename__ = "insights_keyword_hits"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["insights_tag_rules.tenant_id", "insights_tag_rules.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "customer_id", "occurred_at"),
        Index(None, "tenant_id", "rule_id", "occurred_at"),
    )

    interaction_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    keyword: Mapped[str] = mapped_column(String(50), primary_key=True)
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime]


class InsightsRuleTag(TenantScoped, CustomerOwned, Base):
    """A tag a rule gave a customer: since when, and why (the reason shown in the profile)."""

    __tablename__ = "insights_rule_tags"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["insights_tag_rules.tenant_id", "insights_tag_rules.id"], ondelete="CASCADE"),
        Index(None, "tenant_id", "rule_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(201))
    reason: Mapped[str] = mapped_column(String(300))
    since: Mapped[dt.datetime] = mapped_column(default=utcnow)
