"""The materials plugin's tables. ``tenant_id`` leads every key; foreign keys to core tables are
composite (tenant, id), as core's own."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import PERSONAL, Base, TenantScoped, utcnow


def _fk(column: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", column], [f"{table}.tenant_id", f"{table}.id"])


class Material(TenantScoped, Base):
    """One piece of content: an ``article`` (sanitised HTML in ``body``), an ``image`` or a
    ``file`` (bytes in the core file store under ``file_key``), a ``video`` or a ``link`` (a URL,
    never fetched by the server). ``roles`` is ``,sales,marketing,`` (the roles that may see it;
    empty: every role)."""

    __tablename__ = "materials_materials"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        _fk("owner_id", "users"),
        Index(None, "tenant_id", "folder"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2000))
    file_key: Mapped[str | None] = mapped_column(String(64))
    #: an image's thumbnail (JPEG or PNG, at most 320 px) in the file store, made from the upload
    thumb_key: Mapped[str | None] = mapped_column(String(64))
    #: a mini-program card's app id (``wx`` + 16 hex) and page path; its cover is the upload
    appid: Mapped[str | None] = mapped_column(String(32))
    page_path: Mapped[str | None] = mapped_column(String(400))
    media_type: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    folder: Mapped[str] = mapped_column(String(200), default="")
    tags: Mapped[str] = mapped_column(String(1000), default="")
    roles: Mapped[str] = mapped_column(String(200), default="")
    owner_id: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: archived: out of the library's lists and not shared again; the links already sent stay open
    archived_at: Mapped[dt.datetime | None]


class MaterialShare(TenantScoped, Base):
    """A radar link: ``material_id`` shared by ``sharer_id`` (a user) with ``customer_id`` when
    known; ``parent_id`` is the share it was forwarded from (forwards stay the sharer's).

    ``id`` is unique across tenants (the public link finds its tenant from the token alone)."""

    __tablename__ = "materials_shares"
    __table_args__ = (
        _fk("material_id", "materials_materials"),
        _fk("sharer_id", "users"),
        _fk("customer_id", "customers"),
        Index(None, "id", unique=True),
        Index(None, "tenant_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    material_id: Mapped[uuid.UUID]
    sharer_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID | None]
    parent_id: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MaterialVisitor(TenantScoped, Base):
    """A browser that opened a radar link (its cookie ``vid``); ``customer_id`` once it is known
    who it is. Anonymous visitors are not core customers (they would distort counts and scores)."""

    __tablename__ = "materials_visitors"
    __table_args__ = (_fk("customer_id", "customers"), Index(None, "tenant_id", "customer_id"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID | None]
    user_agent: Mapped[str | None] = mapped_column(String(300), info=PERSONAL)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MaterialView(TenantScoped, Base):
    """One opening of a radar link: ``kind`` is ``view`` (a person) or ``preview`` (a bot or a
    link-preview crawler); ``read_ms`` grows with the page's visibility beacons."""

    __tablename__ = "materials_views"
    __table_args__ = (
        _fk("share_id", "materials_shares"),
        _fk("visitor_id", "materials_visitors"),
        _fk("customer_id", "customers"),
        Index(None, "tenant_id", "material_id"),
        Index(None, "tenant_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    share_id: Mapped[uuid.UUID]
    material_id: Mapped[uuid.UUID]
    sharer_id: Mapped[uuid.UUID]
    visitor_id: Mapped[uuid.UUID | None]
    customer_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(16))
    read_ms: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Script(TenantScoped, Base):
    """A reply snippet (话术) of a ``scene`` (first contact, price objection, after-sales…);
    ``text`` may hold ``{{name}}``-style variables filled from the customer when it is sent."""

    __tablename__ = "materials_scripts"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]), _fk("created_by", "users"), Index(None, "tenant_id", "scene"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    scene: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScriptUse(TenantScoped, Base):
    """How often ``user_id`` sent ``script_id`` (each message queued once counts once)."""

    __tablename__ = "materials_script_uses"
    __table_args__ = (_fk("script_id", "materials_scripts"), _fk("user_id", "users"))

    script_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
