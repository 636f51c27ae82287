"""The tables of deals and receivables: deal pipelines and their stages (with a probability),
products, deals with their product lines and stage moves, contracts, instalments and payments.

Deals, contracts, instalments and payments carry their customer (:class:`CustomerOwned`): a
salesperson sees those of their own customers only, a manager their team's, in every query."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import Date, ForeignKeyConstraint, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.models import PERSONAL, Base, CustomerOwned, TenantScoped, new_id, utcnow

MONEY = Numeric(18, 2)


def _customer_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"])


class SalesDealPipeline(TenantScoped, Base):
    """A deal pipeline (new business, renewal…): the stages a deal moves through. Not a
    customer's lifecycle pipeline."""

    __tablename__ = "sales_deal_pipelines"
    __table_args__ = (UniqueConstraint("tenant_id", "key"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesDealStage(TenantScoped, Base):
    """A stage of a deal pipeline: ``category`` open, won or lost; ``probability`` (0–100) weighs
    the open deals in it for the weighted pipeline value. An archived stage (``archived_at``)
    takes no deal; the deals and moves that name it keep it."""

    __tablename__ = "sales_deal_stages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "pipeline_id", "key"),
        ForeignKeyConstraint(["tenant_id", "pipeline_id"], ["sales_deal_pipelines.tenant_id", "sales_deal_pipelines.id"]),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    pipeline_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(8), default="open")
    probability: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[dt.datetime | None]


class SalesProduct(TenantScoped, Base):
    """A product of the catalogue, with its list price in ``currency``."""

    __tablename__ = "sales_products"
    __table_args__ = (UniqueConstraint("tenant_id", "sku"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    archived_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesDeal(CustomerOwned, TenantScoped, Base):
    """A customer's deal (opportunity). ``status`` follows its stage's category (open, won,
    lost); ``closed_at`` is set when it is won or lost, ``lost_reason`` when lost."""

    __tablename__ = "sales_deals"
    __table_args__ = (
        _customer_fk(),
        ForeignKeyConstraint(["tenant_id", "stage_id"], ["sales_deal_stages.tenant_id", "sales_deal_stages.id"]),
        Index(None, "tenant_id", "customer_id"),
        Index(None, "tenant_id", "status", "closed_at"),
        Index(None, "tenant_id", "owner_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    pipeline_id: Mapped[uuid.UUID]
    stage_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    owner_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(8), default="open")
    expected_close: Mapped[dt.date | None] = mapped_column(Date)
    closed_at: Mapped[dt.datetime | None]
    lost_reason: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesDealLine(CustomerOwned, TenantScoped, Base):
    """A product on a deal: quantity × unit price (the list price unless agreed otherwise)."""

    __tablename__ = "sales_deal_lines"
    __table_args__ = (
        _customer_fk(),
        ForeignKeyConstraint(["tenant_id", "deal_id"], ["sales_deals.tenant_id", "sales_deals.id"]),
        Index(None, "tenant_id", "deal_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    deal_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID]
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(MONEY)


class SalesDealMove(CustomerOwned, TenantScoped, Base):
    """A deal entering a stage (its first stage on creation: ``from_stage_id`` None)."""

    __tablename__ = "sales_deal_moves"
    __table_args__ = (_customer_fk(), Index(None, "tenant_id", "deal_id", "at"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    deal_id: Mapped[uuid.UUID]
    from_stage_id: Mapped[uuid.UUID | None]
    to_stage_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID | None]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesContract(CustomerOwned, TenantScoped, Base):
    """A contract made from a won deal, running ``starts_on`` to ``ends_on``, its amount the
    sum of its instalments."""

    __tablename__ = "sales_contracts"
    __table_args__ = (
        _customer_fk(),
        UniqueConstraint("tenant_id", "deal_id"),
        ForeignKeyConstraint(["tenant_id", "deal_id"], ["sales_deals.tenant_id", "sales_deals.id"]),
        Index(None, "tenant_id", "customer_id", "ends_on"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    deal_id: Mapped[uuid.UUID]
    number: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[uuid.UUID | None]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    signed_on: Mapped[dt.date] = mapped_column(Date)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SalesInstalment(CustomerOwned, TenantScoped, Base):
    """One instalment of a contract's payment plan: ``amount`` due on ``due_on``; ``paid`` is
    the net of the payments against it (refunds subtract); ``notified_at`` when its owner was
    told it is overdue."""

    __tablename__ = "sales_instalments"
    __table_args__ = (
        _customer_fk(),
        ForeignKeyConstraint(["tenant_id", "contract_id"], ["sales_contracts.tenant_id", "sales_contracts.id"]),
        Index(None, "tenant_id", "due_on"),
        Index(None, "tenant_id", "contract_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    contract_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    due_on: Mapped[dt.date] = mapped_column(Date)
    paid: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0"))
    notified_at: Mapped[dt.datetime | None]


class SalesPayment(CustomerOwned, TenantScoped, Base):
    """Money received against an instalment (``amount`` > 0) or refunded (< 0), in the
    contract's currency; ``interaction_id`` is the ``payment`` interaction on the timeline."""

    __tablename__ = "sales_payments"
    __table_args__ = (
        _customer_fk(),
        ForeignKeyConstraint(["tenant_id", "instalment_id"], ["sales_instalments.tenant_id", "sales_instalments.id"]),
        Index(None, "tenant_id", "contract_id"),
        Index(None, "tenant_id", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID]
    contract_id: Mapped[uuid.UUID]
    instalment_id: Mapped[uuid.UUID]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    received_at: Mapped[dt.datetime]
    note: Mapped[str | None] = mapped_column(Text, info=PERSONAL)
    user_id: Mapped[uuid.UUID | None]
    interaction_id: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


#: the tables whose rows belong to a customer (a merge moves them to the survivor)
CUSTOMER_TABLES = (SalesDeal, SalesDealLine, SalesDealMove, SalesContract, SalesInstalment, SalesPayment)
