"""Deals, deal pipelines and products: the logic behind the GraphQL fields (no pluggy, no GraphQL).

A deal belongs to a customer the caller may see; it stands in one stage of a deal pipeline and
its ``status`` follows the stage's category: moving it to a ``won`` stage wins it, to a ``lost``
stage loses it (a reason required). Every move is a :class:`SalesDealMove` (the funnel's time in
stage) and an audit entry. The weighted pipeline value is Σ amount × probability of open deals,
computed in SQL.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

import msgspec
from sqlalchemy import and_, func, select

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.domain.models import Tenant, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.deals.models import SalesDeal, SalesDealLine, SalesDealMove, SalesDealPipeline, SalesDealStage, SalesProduct

_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
CATEGORIES: Final = ("open", "won", "lost")
CENT = Decimal("0.01")
MAX_MONEY = Decimal("9999999999999999.99")
#: the pipeline a tenant gets with its first deal when it made none
DEFAULT_PIPELINE: Final = ("new-business", "New business 新业务")
DEFAULT_STAGES: Final = (
    ("qualify", "Qualify 需求确认", "open", 10),
    ("proposal", "Proposal 方案报价", "open", 40),
    ("negotiation", "Negotiation 商务谈判", "open", 70),
    ("won", "Won 赢单", "won", 100),
    ("lost", "Lost 输单", "lost", 0),
)


class StageInput(msgspec.Struct, kw_only=True):
    key: str
    name: str
    probability: int
    category: str = "open"


class LineInput(msgspec.Struct, kw_only=True):
    product_id: uuid.UUID
    quantity: int = 1
    unit_price: Decimal | None = None


class DealInput(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    title: str
    amount: Decimal | None = None
    currency: str | None = None
    pipeline: str | None = None
    stage: str | None = None
    owner_id: uuid.UUID | None = None
    expected_close: dt.date | None = None
    lines: list[LineInput] = msgspec.field(default_factory=list)


def money(value: Any, field: str) -> Decimal:
    """A money amount rounded to cents, or VALIDATION naming ``field``."""
    try:
        amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{field} must be a number", field=field) from None
    if not amount.is_finite() or abs(amount) > MAX_MONEY:
        raise ValidationError(f"{field} is out of range", field=field)
    return amount


def _key(value: str, field: str) -> str:
    if not _KEY.match(value):
        raise ValidationError(f"{field} must be lower case letters, digits, '-' or '_' (e.g. new-business), not {value!r}", field=field)
    return value


def _name(value: str, field: str = "name") -> str:
    value = value.strip()
    if not 0 < len(value) <= 200:
        raise ValidationError(f"{field} must be 1 to 200 characters", field=field)
    return value


async def tenant_currency(session: TenantSession) -> str:
    return str((await session.execute(select(Tenant.currency).where(Tenant.id == session.tenant_id))).scalar_one())


def _currency(value: str, field: str = "currency") -> str:
    if not _CURRENCY.match(value):
        raise ValidationError(f"{field} must be an ISO 4217 code of three capital letters (e.g. CNY), not {value!r}", field=field)
    return value


# -- pipelines ------------------------------------------------------------------------------------


async def create_pipeline(tx: Tx, key: str, name: str, stages: list[StageInput]) -> SalesDealPipeline:
    """A deal pipeline with its stages in order; at least one open stage, one won and one lost."""
    session = tx.session
    key, name = _key(key, "key"), _name(name)
    if not stages:
        raise ValidationError("a deal pipeline needs stages", field="stages")
    keys = [_key(s.key, "stages.key") for s in stages]
    if len(set(keys)) != len(keys):
        raise ValidationError("stage keys must differ", field="stages.key")
    for s in stages:
        if s.category not in CATEGORIES:
            raise ValidationError(f"category must be one of {list(CATEGORIES)}", field="stages.category")
        if not 0 <= s.probability <= 100:
            raise ValidationError(f"probability of {s.key!r} must be 0 to 100", field="stages.probability")
    if {s.category for s in stages} != set(CATEGORIES):
        raise ValidationError("a deal pipeline needs open stages, a won stage and a lost stage", field="stages.category")
    if (await session.execute(select(SalesDealPipeline.id).where(SalesDealPipeline.key == key))).first() is not None:
        raise ConflictError(f"a deal pipeline {key!r} exists already", field="key")
    pipeline = SalesDealPipeline(key=key, name=name)
    session.add(pipeline)
    await session.flush()
    for i, s in enumerate(stages):
        session.add(
            SalesDealStage(
                pipeline_id=pipeline.id,
                key=s.key,
                name=_name(s.name, "stages.name"),
                position=i,
                category=s.category,
                probability=s.probability,
            )
        )
    await session.flush()
    audit(tx, "sales.deal_pipeline.create", "salesDealPipeline", pipeline.id, {"key": key, "stages": keys})
    return pipeline


async def list_pipelines(session: TenantSession) -> list[SalesDealPipeline]:
    return list((await session.scalars(select(SalesDealPipeline).order_by(SalesDealPipeline.created_at, SalesDealPipeline.key))).all())


async def stages_of(
    session: TenantSession, pipeline_ids: list[uuid.UUID], *, archived: bool = False
) -> dict[uuid.UUID, list[SalesDealStage]]:
    """The pipelines' stages in order; archived ones (placed last) only with ``archived``."""
    stmt = select(SalesDealStage).where(SalesDealStage.pipeline_id.in_(pipeline_ids)).order_by(SalesDealStage.position)
    if not archived:
        stmt = stmt.where(SalesDealStage.archived_at.is_(None))
    rows = await session.scalars(stmt)
    out: dict[uuid.UUID, list[SalesDealStage]] = {p: [] for p in pipeline_ids}
    for s in rows:
        out[s.pipeline_id].append(s)
    return out


async def pipeline_by_key(tx: Tx, key: str | None) -> SalesDealPipeline:
    """The pipeline ``key``; without a key the tenant's first pipeline, made (the default
    stages) when the tenant has none yet."""
    session = tx.session
    if key is not None:
        found = (await session.execute(select(SalesDealPipeline).where(SalesDealPipeline.key == key))).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"no deal pipeline {key!r}", field="pipeline")
        return found
    pipelines = await list_pipelines(session)
    if pipelines:
        return pipelines[0]
    return await create_pipeline(
        tx,
        DEFAULT_PIPELINE[0],
        DEFAULT_PIPELINE[1],
        [StageInput(key=k, name=n, category=c, probability=p) for k, n, c, p in DEFAULT_STAGES],
    )


# -- products -------------------------------------------------------------------------------------


async def create_product(tx: Tx, sku: str, name: str, price: Any, currency: str | None) -> SalesProduct:
    session = tx.session
    sku = sku.strip()
    if not 0 < len(sku) <= 64:
        raise ValidationError("sku must be 1 to 64 characters", field="sku")
    amount = money(price, "price")
    if amount < 0:
        raise ValidationError("price must not be negative", field="price")
    cur = _currency(currency) if currency else await tenant_currency(session)
    if (await session.execute(select(SalesProduct.id).where(SalesProduct.sku == sku))).first() is not None:
        raise ConflictError(f"a product {sku!r} exists already", field="sku")
    product = SalesProduct(sku=sku, name=_name(name), price=amount, currency=cur)
    session.add(product)
    await session.flush()
    audit(tx, "sales.product.create", "salesProduct", product.id, {"sku": sku, "price": str(amount), "currency": cur})
    return product


async def list_products(session: TenantSession, include_archived: bool = False) -> list[SalesProduct]:
    stmt = select(SalesProduct).order_by(SalesProduct.sku)
    if not include_archived:
        stmt = stmt.where(SalesProduct.archived_at.is_(None))
    return list((await session.scalars(stmt)).all())


async def get_product(session: TenantSession, product_id: uuid.UUID, field: str = "productId") -> SalesProduct:
    found = (await session.execute(select(SalesProduct).where(SalesProduct.id == product_id))).scalar_one_or_none()
    if found is None:
        raise NotFoundError("no such product in the catalogue", field=field)
    return found


async def archive_product(tx: Tx, product_id: uuid.UUID, archived: bool = True) -> SalesProduct:
    """Archive a product (no new deal may take it; the deals that have it keep it, and reports
    still count them) or bring it back."""
    product = await get_product(tx.session, product_id)
    if (product.archived_at is not None) != archived:
        product.archived_at = utcnow() if archived else None
        await tx.session.flush()
        audit(tx, f"sales.product.{'archive' if archived else 'restore'}", "salesProduct", product.id, {"sku": product.sku})
    return product


# -- deals ----------------------------------------------------------------------------------------


async def _user(session: TenantSession, user_id: uuid.UUID, field: str) -> uuid.UUID:
    found = (await session.execute(select(User.id).where(User.id == user_id, User.active.is_(True)))).scalar_one_or_none()
    if found is None:
        raise NotFoundError("no active staff user with this id", field=field)
    return found


async def create_deal(tx: Tx, data: DealInput) -> SalesDeal:
    """A deal of a customer the caller may see, in the pipeline's given (or first) stage. The
    amount defaults to the sum of its product lines; the currency to the tenant's; the owner to
    the caller (a staff user) or else the customer's owner."""
    session = tx.session
    customer = await get_customer(session, data.customer_id)
    title = _name(data.title, "title")
    pipeline = await pipeline_by_key(tx, data.pipeline)
    stages = (await stages_of(session, [pipeline.id]))[pipeline.id]
    if data.stage is None:
        stage = next(s for s in stages if s.category == "open")
    else:
        stage = next((s for s in stages if s.key == data.stage), None)  # type: ignore[assignment]
        if stage is None:
            raise NotFoundError(
                f"no live stage {data.stage!r} in deal pipeline {pipeline.key!r} (archived stages take no deal)", field="stage"
            )
    if stage.category != "open":
        raise ValidationError("a new deal starts in an open stage (move it to won or lost after)", field="stage")
    currency = _currency(data.currency) if data.currency else await tenant_currency(session)
    lines: list[SalesDealLine] = []
    if data.lines:
        ids = {line.product_id for line in data.lines}
        products = {p.id: p for p in (await session.scalars(select(SalesProduct).where(SalesProduct.id.in_(ids)))).all()}
        for line in data.lines:
            product = products.get(line.product_id)
            if product is None:
                raise NotFoundError("no such product in the catalogue", field="lines.productId")
            if product.archived_at is not None:
                raise ConflictError(
                    f"product {product.sku!r} is archived: new deals cannot take it (restore it, or pick another)", field="lines.productId"
                )
            if not 1 <= line.quantity <= 1_000_000:
                raise ValidationError("quantity must be 1 to 1000000", field="lines.quantity")
            if line.unit_price is None and product.currency != currency:
                raise ValidationError(
                    f"product {product.sku!r} is priced in {product.currency}: give the unit price in {currency}", field="lines.unitPrice"
                )
            price = product.price if line.unit_price is None else money(line.unit_price, "lines.unitPrice")
            if price < 0:
                raise ValidationError("a unit price must not be negative", field="lines.unitPrice")
            lines.append(SalesDealLine(customer_id=customer.id, product_id=product.id, quantity=line.quantity, unit_price=price))
    if data.amount is not None:
        amount = money(data.amount, "amount")
    else:
        amount = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
    if amount < 0:
        raise ValidationError("amount must not be negative", field="amount")
    owner = await _user(session, data.owner_id, "ownerId") if data.owner_id else tx.ctx.actor.user_id or customer.owner_id
    now = utcnow()
    deal = SalesDeal(
        customer_id=customer.id,
        pipeline_id=pipeline.id,
        stage_id=stage.id,
        title=title,
        amount=amount,
        currency=currency,
        owner_id=owner,
        status="open",
        expected_close=data.expected_close,
        created_at=now,
        updated_at=now,
    )
    session.add(deal)
    await session.flush()
    for row in lines:
        row.deal_id = deal.id
        session.add(row)
    session.add(
        SalesDealMove(
            customer_id=customer.id, deal_id=deal.id, from_stage_id=None, to_stage_id=stage.id, user_id=tx.ctx.actor.user_id, at=now
        )
    )
    await session.flush()
    audit(
        tx,
        "sales.deal.create",
        "salesDeal",
        deal.id,
        {"customer_id": customer.id, "amount": str(amount), "currency": currency, "stage": stage.key},
    )
    return deal


async def get_deal(session: TenantSession, deal_id: uuid.UUID, field: str = "dealId") -> SalesDeal:
    """A deal of a customer the caller may see (else NOT_FOUND)."""
    deal = (await session.execute(select(SalesDeal).where(SalesDeal.id == deal_id))).scalar_one_or_none()
    if deal is None:
        raise NotFoundError("no such deal", field=field)
    return deal


async def move_deal(tx: Tx, deal_id: uuid.UUID, stage_key: str, reason: str | None = None, at: dt.datetime | None = None) -> SalesDeal:
    """Move a deal to another stage of its pipeline: a won stage wins it, a lost stage loses it
    (``reason`` required); moving a closed deal back to an open stage reopens it."""
    session = tx.session
    deal = await get_deal(session, deal_id)
    stage = (
        await session.execute(select(SalesDealStage).where(SalesDealStage.pipeline_id == deal.pipeline_id, SalesDealStage.key == stage_key))
    ).scalar_one_or_none()
    if stage is None:
        raise NotFoundError(f"no stage {stage_key!r} in the deal's pipeline", field="stage")
    if stage.archived_at is not None:
        raise ConflictError(f"stage {stage_key!r} is archived: deals cannot enter it", field="stage")
    if stage.id == deal.stage_id:
        raise ValidationError(f"the deal is in {stage_key!r} already", field="stage")
    reason = (reason or "").strip() or None
    if stage.category == "lost" and not reason:
        raise ValidationError("say why the deal was lost", field="reason")
    if reason is not None and len(reason) > 1000:
        raise ValidationError("reason is longer than 1000 characters", field="reason")
    now = at or utcnow()
    previous = deal.stage_id
    deal.stage_id, deal.status, deal.updated_at = stage.id, stage.category, now
    deal.closed_at = now if stage.category != "open" else None
    deal.lost_reason = reason if stage.category == "lost" else None
    session.add(
        SalesDealMove(
            customer_id=deal.customer_id,
            deal_id=deal.id,
            from_stage_id=previous,
            to_stage_id=stage.id,
            user_id=tx.ctx.actor.user_id,
            at=now,
        )
    )
    await session.flush()
    audit(
        tx,
        f"sales.deal.{'move' if stage.category == 'open' else stage.category}",
        "salesDeal",
        deal.id,
        {"stage": stage.key, "reason": reason},
    )
    return deal


async def list_deals(
    session: TenantSession,
    *,
    customer_id: uuid.UUID | None = None,
    status: str | None = None,
    pipeline_id: uuid.UUID | None = None,
    first: int = 50,
) -> list[SalesDeal]:
    stmt = select(SalesDeal).order_by(SalesDeal.created_at.desc(), SalesDeal.id.desc()).limit(first)
    if customer_id is not None:
        stmt = stmt.where(SalesDeal.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(SalesDeal.status == status)
    if pipeline_id is not None:
        stmt = stmt.where(SalesDeal.pipeline_id == pipeline_id)
    return list((await session.scalars(stmt)).all())


async def lines_of(session: TenantSession, deal_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple[SalesDealLine, SalesProduct]]]:
    rows = await session.execute(
        select(SalesDealLine, SalesProduct)
        .join(SalesProduct, and_(SalesProduct.tenant_id == SalesDealLine.tenant_id, SalesProduct.id == SalesDealLine.product_id))
        .where(SalesDealLine.deal_id.in_(deal_ids))
        .order_by(SalesProduct.sku)
    )
    out: dict[uuid.UUID, list[tuple[SalesDealLine, SalesProduct]]] = {d: [] for d in deal_ids}
    for line, product in rows.all():
        out[line.deal_id].append((line, product))
    return out


async def pipeline_value(session: TenantSession, pipeline_id: uuid.UUID, currency: str) -> list[Any]:
    """Per stage of the pipeline: open deals in ``currency``, their amount, and the amount
    weighted by the stage's probability — one grouped SQL statement. Rows of (key, name,
    probability, deals, amount, weighted), in stage order."""
    weighted = func.sum(SalesDeal.amount * SalesDealStage.probability / 100.0)
    stmt = (
        select(
            SalesDealStage.key,
            SalesDealStage.name,
            SalesDealStage.probability,
            func.count(SalesDeal.id),
            func.coalesce(func.sum(SalesDeal.amount), 0),
            func.coalesce(weighted, 0),
        )
        .outerjoin(
            SalesDeal,
            and_(
                SalesDeal.tenant_id == SalesDealStage.tenant_id,
                SalesDeal.stage_id == SalesDealStage.id,
                SalesDeal.status == "open",
                SalesDeal.currency == currency,
            ),
        )
        .where(SalesDealStage.pipeline_id == pipeline_id, SalesDealStage.category == "open", SalesDealStage.archived_at.is_(None))
        .group_by(SalesDealStage.key, SalesDealStage.name, SalesDealStage.probability, SalesDealStage.position)
        .order_by(SalesDealStage.position)
    )
    return list((await session.execute(stmt)).all())
