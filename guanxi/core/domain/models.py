"""Core tables (SQLAlchemy 2.0 declarative).

Every row carries ``tenant_id``; every primary key, unique key and index starts with it, so one
database can serve many companies and can later be sharded by tenant (e.g. Citus) without a
redesign. Ids are UUIDv7 made by the application (:mod:`guanxi.core.base.ids`).

Plugins declare their own tables on :class:`Base` (names prefixed with the plugin's name) and
ship an Alembic version folder for them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from guanxi.core.base.ids import new_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (use it for defaults of timestamp columns)."""
    return dt.datetime.now(dt.UTC)


#: A tenant's states (GraphQL ``TenantStatus``): suspended keys get 403, webhooks are stored, not processed.
TENANT_STATUSES = ("active", "suspended")
#: A scheduled job's states (GraphQL ``JobStatus``).
JOB_STATUSES = ("scheduled", "running", "done", "failed", "cancelled")
#: Where a message status entry came from (GraphQL ``StatusSource``): the outbox worker or
#: ``sendMessage``, or a provider's receipt.
STATUS_SOURCES = ("outbox", "receipt")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp that always reads back as UTC (SQLite stores naive text).
    Naive values are refused on the way in: every time in Guanxi carries its zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a time zone")
        return value.astimezone(dt.UTC) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """The declarative base of core's and plugins' tables: one metadata with core's naming
    conventions; ``Mapped[dt.datetime]`` maps to :class:`UTCDateTime`, ``Mapped[uuid.UUID]`` to
    ``Uuid`` and ``Mapped[dict[str, Any]]`` / ``Mapped[list[str]]`` to ``JSON``."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class TenantScoped:
    """Mixin of every tenant-owned table. The tenant filter is added in one place:
    :mod:`guanxi.core.storage.tenancy` (never by hand in a query)."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-100)


PERSONAL: dict[str, Any] = {"personal": True}
"""``mapped_column(..., info=PERSONAL)`` marks a column that holds personal data (a name, a phone,
a message text). A plugin whose tables have such columns must implement the export and erase
hooks (``guanxi plugins --check`` reports one that does not). (The audit trail masks values by
field name, see ``PERSONAL_FIELDS`` in :mod:`guanxi.core.services.audit`.)"""


class CustomerOwned:
    """Mixin of tables whose rows belong to one customer, through a ``customer_id`` column.

    Record ownership is enforced in :mod:`guanxi.core.storage.tenancy` for these tables as for customers:
    a caller who may not see a customer (a salesperson, for another's customer) sees none of
    its rows either, in any query. Plugin tables keyed by customer use it too.
    """


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: IANA time zone of the company: schedules, reminders, reports by day
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai", server_default="Asia/Shanghai")
    #: ISO 4217 code of amounts without a currency (deals, receivables, reports)
    currency: Mapped[str] = mapped_column(String(3), default="CNY", server_default="CNY")
    #: BCP 47 language tag of texts the system writes for the tenant (notifications, e-mails)
    locale: Mapped[str] = mapped_column(String(35), default="zh-CN", server_default="zh-CN")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: active | suspended (its keys get 403, its webhooks are stored but not processed)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    suspended_at: Mapped[dt.datetime | None]
    #: the operator's quota overrides of the deployment's ``[quotas]`` (only the limits it set)
    quotas: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class OperatorKey(Base):
    """A platform operator's key (``gxop_<key_id>_<secret>``): manages tenants, reads none of
    their data. Stored like API keys: only an HMAC keyed with the server secret."""

    __tablename__ = "operator_keys"
    __table_args__ = (UniqueConstraint("key_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key_id: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


def _fk(cols: list[str], table: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    refs = [f"{table}.tenant_id"] + [f"{table}.id"] * (len(cols) - 1)
    return ForeignKeyConstraint(["tenant_id", *cols[1:]], refs, ondelete=ondelete)


class User(TenantScoped, Base):
    """A staff member: sales, marketing, service, manager or admin. Owner of customers."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32), default="sales")
    team: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: IANA time zone of the person (quiet hours, "due today"); None: the tenant's
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiKey(TenantScoped, Base):
    """An API key: ``gx_<key_id>_<secret>``, shown once. Only an HMAC of the whole key is kept
    (keyed with the server secret), so a copy of the database does not yield usable keys.

    ``key_id`` is unique across tenants (the tenant is not known before the key is found):
    like the queue claim indexes, an exception to "every key starts with tenant_id".
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("key_id"),
        _fk(["tenant_id", "user_id"], "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key_id: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class TenantPlugin(TenantScoped, Base):
    """A tenant's choice about one loaded plugin: enabled or not, and its setting overrides.

    No row means the default: every plugin the deployment loads is enabled for every tenant with
    the deployment's settings. ``settings`` holds only the keys the tenant overrides (validated
    against the plugin's ``guanxi_tenant_settings`` struct)."""

    __tablename__ = "tenant_plugins"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),)

    plugin: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TenantUsage(TenantScoped, Base):
    """A quota counter: ``used`` units of ``metric`` (``customers``, ``requests``,
    ``messages:<channel>``) in ``window`` (a second, a day of the tenant's time zone, or "" for
    all time). Incremented in the database, so a limit holds across every process."""

    __tablename__ = "tenant_usage"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),)

    metric: Mapped[str] = mapped_column(String(80), primary_key=True)
    window: Mapped[str] = mapped_column(String(32), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class ChannelAccount(TenantScoped, Base):
    """A tenant's account on a channel: a WeCom corp, a Douyin app, a mailbox.

    ``key`` names it in webhook URLs (``/wecom/callback/<key>``) and is unique per channel across
    the deployment, since a webhook finds its tenant through it; ``provider_id`` (the corp id, the
    app id) is unique per channel across tenants too: two tenants cannot connect the same corp.
    ``settings`` are the public settings (the plugin's declared struct); ``secrets`` is one
    AES-GCM sealed JSON object (:mod:`guanxi.core.base.sealing`), never plaintext; ``fingerprints``
    tell which secret fields are set, and whether one changed, without revealing them."""

    __tablename__ = "channel_accounts"
    __table_args__ = (
        UniqueConstraint("channel", "key"),
        UniqueConstraint("channel", "provider_id"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    provider_id: Mapped[str] = mapped_column(String(128))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)
    fingerprints: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Pipeline(TenantScoped, Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the arrival rule: a new customer whose source (a channel's name for customers a channel
    #: brings) is one of these starts in this pipeline; others start in the default pipeline
    sources: Mapped[list[str]] = mapped_column(default=list, server_default="[]")


class Stage(TenantScoped, Base):
    """One lifecycle stage. ``category`` is open, won, lost, retained or churned."""

    __tablename__ = "stages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "pipeline_id", "key"),
        _fk(["tenant_id", "pipeline_id"], "pipelines"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    pipeline_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(16), default="open")
    #: an archived stage takes no customers and leaves lists and the funnel; its history stays
    archived_at: Mapped[dt.datetime | None]


class Customer(TenantScoped, Base):
    """One person or company. ``merged_into_id`` set means a tombstone left by a merge."""

    __tablename__ = "customers"
    __table_args__ = (
        _fk(["tenant_id", "owner_id"], "users"),
        _fk(["tenant_id", "stage_id"], "stages"),
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "tenant_id", "owner_id"),
        Index(None, "tenant_id", "stage_id"),
        Index(None, "tenant_id", "display_name"),
        # counting a tenant's live customers (totalCount) reads this index, not the rows
        Index(None, "tenant_id", "merged_into_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(200), info=PERSONAL)
    company: Mapped[str | None] = mapped_column(String(200), info=PERSONAL)
    phones: Mapped[list[str]] = mapped_column(default=list, info=PERSONAL)
    emails: Mapped[list[str]] = mapped_column(default=list, info=PERSONAL)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict, info=PERSONAL)
    owner_id: Mapped[uuid.UUID | None]
    stage_id: Mapped[uuid.UUID | None]
    source: Mapped[str | None] = mapped_column(String(64))
    search_text: Mapped[str] = mapped_column(Text, default="", info=PERSONAL)
    merged_into_id: Mapped[uuid.UUID | None]
    merged_at: Mapped[dt.datetime | None]
    erased_at: Mapped[dt.datetime | None]
    last_interaction_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustomerCount(TenantScoped, Base):
    """A tenant's live customers (not merged away), kept by triggers on ``customers`` (migrations
    ``0023_counts``, ``0024_count_deltas``), so an unfiltered ``totalCount`` reads a few rows
    whatever the tenant's size: the count is ``sum(n)`` of the tenant's rows. Never written by the
    application.

    On PostgreSQL each trigger firing appends a row with a random ``slot`` (two that draw the
    same one add up in it; a fold puts a tenant's sum in slot 0): no writer waits on another, no
    transaction updates one row again and again (a per-row ``executemany`` of customers would
    walk ever more row versions), each transaction's rows commit or roll back with its customers
    (so a snapshot's sum is exactly its count); inserts and deletes are counted once per statement (transition tables), merges and
    unmerges once per row whose liveness changed. The job ``core.counts_fold`` folds a tenant's
    rows into one (:mod:`guanxi.core.services.counts`). On SQLite (one writer at a time) every
    change updates slot 0 in place."""

    __tablename__ = "customer_counts"

    slot: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ContactPoint(CustomerOwned, TenantScoped, Base):
    """A normalised phone or email of a customer, indexed for identity resolution."""

    __tablename__ = "contact_points"
    __table_args__ = (
        _fk(["tenant_id", "customer_id"], "customers"),
        Index(None, "tenant_id", "kind", "value", "customer_id"),  # covering: lookups read the customer id
        {"sqlite_with_rowid": False},  # the row is its key: stored once (migration 0022_import)
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True, info=PERSONAL)


class Identity(CustomerOwned, TenantScoped, Base):
    """A customer's account on one channel; (channel, external id) is unique per tenant."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "external_id"),
        _fk(["tenant_id", "customer_id"], "customers"),
        # with the channel: a customer's identities grouped per channel (scoring's social
        # component) are a range of this index; SQLite, without statistics, otherwise chose the
        # unique (tenant, channel, external id) index for the GROUP BY order and read every
        # identity of the tenant (migration 0022_import)
        Index(None, "tenant_id", "customer_id", "channel"),
        Index(None, "tenant_id", "union_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128), info=PERSONAL)
    union_id: Mapped[str | None] = mapped_column(String(128), info=PERSONAL)
    nickname: Mapped[str | None] = mapped_column(String(200), info=PERSONAL)
    avatar_url: Mapped[str | None] = mapped_column(String(1000), info=PERSONAL)
    follower_count: Mapped[int | None]
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict, info=PERSONAL)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Set by a failure receipt that says the account is gone (``Receipt.unreachable``); the
    #: outbox refuses to send to it until the account writes in again, which clears it.
    unreachable_at: Mapped[dt.datetime | None]


class Interaction(CustomerOwned, TenantScoped, Base):
    """One touchpoint on the append-only timeline. ``dedupe_key`` makes replays harmless."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key"),
        _fk(["tenant_id", "customer_id"], "customers"),
        Index(None, "tenant_id", "customer_id", "occurred_at", "id"),
        Index(None, "tenant_id", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    identity_id: Mapped[uuid.UUID | None]
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8))
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    text: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, info=PERSONAL)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    actor_id: Mapped[uuid.UUID | None]


class StageChange(CustomerOwned, TenantScoped, Base):
    """History of stage moves: from, to, when, by whom or by which rule, and why."""

    __tablename__ = "stage_changes"
    __table_args__ = (
        _fk(["tenant_id", "customer_id"], "customers"),
        Index(None, "tenant_id", "customer_id", "changed_at"),
        Index(None, "tenant_id", "to_stage_id", "changed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    from_stage_id: Mapped[uuid.UUID | None]
    to_stage_id: Mapped[uuid.UUID]
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    rule: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)


class Tag(TenantScoped, Base):
    """A label. ``group_name`` groups tags (e.g. WeCom corp tag groups); names are unique per group."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("tenant_id", "group_name", "name"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    group_name: Mapped[str] = mapped_column(String(100), default="")
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustomerTag(CustomerOwned, TenantScoped, Base):
    __tablename__ = "customer_tags"
    __table_args__ = (
        _fk(["tenant_id", "customer_id"], "customers"),
        _fk(["tenant_id", "tag_id"], "tags"),
        Index(None, "tenant_id", "tag_id"),
        {"sqlite_with_rowid": False},  # the row is its key: stored once (migration 0022_import)
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tagged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]


class FieldDefinition(TenantScoped, Base):
    """A custom field of the tenant's customers (``grade``, ``budget``, ``contract_date``).

    ``kind`` is text, number, money, date, single_choice, multi_choice, user or boolean;
    ``choices`` lists the allowed values of the choice kinds. Archived fields keep their values
    but accept no new ones and leave ``Customer.fields``."""

    __tablename__ = "field_definitions"
    __table_args__ = (UniqueConstraint("tenant_id", "entity", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    entity: Mapped[str] = mapped_column(String(32), default="customer")
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    choices: Mapped[list[str]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustomerFieldValue(CustomerOwned, TenantScoped, Base):
    """One typed value of a custom field of a customer (a multi-choice field has a row per
    choice). The value sits in the column of its kind, so conditions and orderings on a field
    use an index on (tenant, field, value) without any schema change per field."""

    __tablename__ = "customer_field_values"
    __table_args__ = (
        _fk(["tenant_id", "customer_id"], "customers"),
        _fk(["tenant_id", "field_id"], "field_definitions"),
        Index(None, "tenant_id", "customer_id"),
        Index(None, "tenant_id", "field_id", "text_value"),
        Index(None, "tenant_id", "field_id", "number_value"),
        Index(None, "tenant_id", "field_id", "date_value"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    field_id: Mapped[uuid.UUID]
    #: text, single and multi choice, user (the user id's text), boolean ("true"/"false")
    text_value: Mapped[str | None] = mapped_column(String(1000), info=PERSONAL)
    #: number and money
    number_value: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    date_value: Mapped[dt.date | None] = mapped_column(Date)


class Task(CustomerOwned, TenantScoped, Base):
    """A follow-up for a staff member about a customer."""

    __tablename__ = "tasks"
    __table_args__ = (
        _fk(["tenant_id", "customer_id"], "customers"),
        Index(None, "tenant_id", "customer_id"),
        Index(None, "tenant_id", "assignee_id", "done_at", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    assignee_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    due_at: Mapped[dt.datetime | None]
    done_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[uuid.UUID | None]


class Consent(CustomerOwned, TenantScoped, Base):
    """Whether a customer agreed to be contacted on a channel (PIPL / GDPR, unsubscribe)."""

    __tablename__ = "consents"
    __table_args__ = (_fk(["tenant_id", "customer_id"], "customers"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(200))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CustomerMerge(TenantScoped, Base):
    """One merge, with what it takes to undo it: ``record`` holds the ids of the rows it moved,
    the rows it deleted (tags, consents, values the survivor had already), the survivor's fields
    before, and each plugin's own record (``guanxi_merge_record``). ``undone_at`` set: undone."""

    __tablename__ = "customer_merges"
    __table_args__ = (
        _fk(["tenant_id", "survivor_id"], "customers"),
        _fk(["tenant_id", "merged_id"], "customers"),
        Index(None, "tenant_id", "merged_id"),
        Index(None, "tenant_id", "survivor_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survivor_id: Mapped[uuid.UUID]
    merged_id: Mapped[uuid.UUID]
    merged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    record: Mapped[dict[str, Any]] = mapped_column(default=dict, info=PERSONAL)
    undone_at: Mapped[dt.datetime | None]


class AuditEvent(TenantScoped, Base):
    """Who changed what, when; written in the same transaction as the change."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "tenant_id", "occurred_at"),
        Index(None, "tenant_id", "object_type", "object_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[uuid.UUID | None]
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class InboxEvent(TenantScoped, Base):
    """A channel event received by a webhook, kept until it is processed (durable inbox).

    One row per (tenant, channel, provider event id): a provider's retry of the same delivery
    is acknowledged and ignored. Queue tables are the one place with an index that does not
    start with ``tenant_id``: workers claim due rows across tenants.
    """

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "provider_event_id"),
        Index("ix_inbox_events_claim", "status", "next_attempt_at"),
        # a claim of one tenant's rows: without it SQLite took (tenant_id, received_at) and read
        # every inbox row the tenant ever received (the soak's growing statement, migration 0021_perf)
        Index("ix_inbox_events_tenant_claim", "tenant_id", "status", "next_attempt_at"),
        Index(None, "tenant_id", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | processing | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    event: Mapped[dict[str, Any]] = mapped_column(default=dict, info=PERSONAL)
    processed_at: Mapped[dt.datetime | None]
    customer_id: Mapped[uuid.UUID | None]
    interaction_id: Mapped[uuid.UUID | None]
    # W3C traceparent of the request that stored the event (tracing on), continued by the worker
    trace_context: Mapped[str | None] = mapped_column(String(64))


class OutboxMessage(CustomerOwned, TenantScoped, Base):
    """A message to deliver through a channel (durable outbox), written in the same transaction
    as its outbound interaction. ``idempotency_key`` is unique per tenant."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        _fk(["tenant_id", "customer_id"], "customers"),
        Index("ix_outbox_messages_claim", "status", "next_attempt_at"),
        Index(None, "tenant_id", "customer_id", "created_at"),
        Index(None, "tenant_id", "channel", "provider_message_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(128), info=PERSONAL)
    interaction_id: Mapped[uuid.UUID | None]
    text: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, info=PERSONAL)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    #: queued | sending | sent | delivered | read | failed | bounced | complained
    #: (``guanxi.core.domain.channels.MESSAGE_STATUSES``)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    actor_id: Mapped[uuid.UUID | None]
    #: Every transition, oldest first: ``{"status", "at" (ISO 8601), "source" ("outbox" or
    #: "receipt"), "error"?, "provider_code"?}``; a receipt that does not move the status on (a
    #: late "delivered" after "read") is kept here too, with ``"applied": false``.
    status_history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    # W3C traceparent of the request or hook that queued the message, continued by the sender
    trace_context: Mapped[str | None] = mapped_column(String(64))


class ScheduledJob(TenantScoped, Base):
    """A durable job of the scheduler: run once at ``next_attempt_at``, or on a cron schedule
    (``cron``, in the tenant's time zone). Claimed like the inbox (one worker runs a run once).

    ``key`` is unique per tenant: scheduling the same key again replaces the pending job (a task's
    reminder moves with its due date). ``slot_at`` is the time the current run is for; the run's
    idempotency key is ``<id>:<slot_at>``, the same when a run is retried or re-run after a crash.
    ``catch_up``: after downtime, run every missed cron slot (default: one run for all of them).
    """

    __tablename__ = "scheduled_jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        Index("ix_scheduled_jobs_claim", "status", "next_attempt_at"),
        Index(None, "tenant_id", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cron: Mapped[str | None] = mapped_column(String(100))
    catch_up: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # one of JOB_STATUSES
    slot_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    last_run_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class Notification(TenantScoped, Base):
    """A notification to a staff member (in-app; never lost whatever its deliveries do).

    ``dedupe_key`` is unique per tenant: the same reminder is recorded (and sent) once. ``link_type``
    and ``link_id`` point at the object it is about (customer, task, message, deal)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key"),
        _fk(["tenant_id", "user_id"], "users"),
        Index(None, "tenant_id", "user_id", "read_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300), info=PERSONAL)
    body: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    link_type: Mapped[str | None] = mapped_column(String(32))
    link_id: Mapped[uuid.UUID | None]
    dedupe_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]


class NotificationDelivery(TenantScoped, Base):
    """One notification on one staff channel (the staff delivery queue, separate from the
    customer outbox: no consent, no timeline). ``digest`` rows wait for the user's digest time
    and leave together as one message."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "notification_id", "channel"),
        _fk(["tenant_id", "notification_id"], "notifications"),
        Index("ix_notification_deliveries_claim", "status", "next_attempt_at"),
        Index(None, "tenant_id", "user_id", "channel", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    notification_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(200), info=PERSONAL)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class NotificationSettings(TenantScoped, Base):
    """A staff member's notification preferences (no row: the defaults).

    ``channels``: the staff channels to deliver on (None: every channel that can reach the user).
    ``kinds``: per kind, ``{"channels": [...], "digest": bool, "muted": bool}`` overriding the
    defaults. Quiet hours (``"22:00"`` to ``"08:00"``) and the digest time are in the user's time
    zone (the tenant's when the user has none)."""

    __tablename__ = "notification_settings"
    __table_args__ = (_fk(["tenant_id", "user_id"], "users"),)

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    kinds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    digest_at: Mapped[str] = mapped_column(String(5), default="09:00")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FileRef(TenantScoped, Base):
    """One use of a file of the core file store (:mod:`guanxi.core.storage.files`) by a tenant's
    row: an outbox ``message``, an ``interaction`` (an inbound mail's attachment), a ``material``.
    Keys are content-addressed, so tenants share bytes; the bytes go when the last reference of
    any tenant does (:mod:`guanxi.core.services.files`). ``customer_id`` is the person the file
    belongs to (exported and erased with them), None for a tenant's own files (materials)."""

    __tablename__ = "file_refs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "owner_kind", "owner_id", "file_key"),
        Index(None, "file_key"),
        Index(None, "tenant_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    file_key: Mapped[str] = mapped_column(String(64))
    owner_kind: Mapped[str] = mapped_column(String(16))  # message | interaction | material
    owner_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID | None]
    name: Mapped[str | None] = mapped_column(String(255), info=PERSONAL)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
