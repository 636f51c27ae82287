"""Contracts and receivables (合同回款): a won deal becomes a contract with a payment plan
(instalments with amounts and due dates); payments are recorded against an instalment — partial,
more than due (over-payment), or negative (a refund, at most what was paid). Each payment is also
a ``payment`` interaction on the customer's timeline, which scoring's purchase component counts
as money received (its ``amount`` in the tenant's currency). A daily job tells each contract's
owner about instalments that fell due unpaid (core notifications), once per instalment.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, Final

import msgspec
from sqlalchemy import and_, select

from guanxi import Runtime
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.domain.models import Customer, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.core.services.notifications import NotificationInput, notify
from guanxi.core.services.schedule import schedule_job, tenant_zone
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.deals.models import SalesContract, SalesInstalment, SalesPayment
from guanxi.plugins.sales.deals.service import get_deal, money, tenant_currency

OVERDUE_JOB: Final = "sales.receivables_overdue"
#: every day at 09:00 in the tenant's time zone
OVERDUE_CRON: Final = "0 9 * * *"
OVERDUE_NOTICE: Final = "sales.receivable_overdue"
ACTOR: Final = Actor(kind="rule", name=OVERDUE_JOB)
#: the interaction kind and channel of a payment on the timeline
PAYMENT_KIND: Final = "payment"
PAYMENT_CHANNEL: Final = "sales"


class InstalmentInput(msgspec.Struct, kw_only=True):
    amount: Any
    due_on: dt.date


class ContractInput(msgspec.Struct, kw_only=True):
    deal_id: uuid.UUID
    number: str
    signed_on: dt.date
    starts_on: dt.date
    ends_on: dt.date
    instalments: list[InstalmentInput]


def instalment_status(i: SalesInstalment, today: dt.date) -> str:
    """paid, overpaid, partial, due or overdue."""
    if i.paid > i.amount:
        return "overpaid"
    if i.paid == i.amount:
        return "paid"
    if i.due_on < today:
        return "overdue"
    return "partial" if i.paid > 0 else "due"


async def create_contract(tx: Tx, data: ContractInput) -> SalesContract:
    """A contract from a won deal (one per deal), its amount the sum of its instalments."""
    session = tx.session
    deal = await get_deal(session, data.deal_id)
    if deal.status != "won":
        raise ValidationError("only a won deal becomes a contract (move it to a won stage first)", field="dealId")
    number = data.number.strip()
    if not 0 < len(number) <= 64:
        raise ValidationError("number must be 1 to 64 characters", field="number")
    if data.ends_on < data.starts_on:
        raise ValidationError("endsOn is before startsOn", field="endsOn")
    if not 1 <= len(data.instalments) <= 120:
        raise ValidationError("a payment plan has 1 to 120 instalments", field="instalments")
    amounts = [money(i.amount, "instalments.amount") for i in data.instalments]
    if any(a <= 0 for a in amounts):
        raise ValidationError("every instalment's amount must be positive", field="instalments.amount")
    if (await session.execute(select(SalesContract.id).where(SalesContract.deal_id == deal.id))).first() is not None:
        raise ConflictError("this deal has a contract already", field="dealId")
    contract = SalesContract(
        customer_id=deal.customer_id,
        deal_id=deal.id,
        number=number,
        owner_id=deal.owner_id,
        amount=sum(amounts, Decimal("0.00")),
        currency=deal.currency,
        signed_on=data.signed_on,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
    )
    session.add(contract)
    await session.flush()
    plan = sorted(zip(data.instalments, amounts, strict=True), key=lambda p: p[0].due_on)
    for seq, (inst, amount) in enumerate(plan, start=1):
        session.add(
            SalesInstalment(
                customer_id=deal.customer_id, contract_id=contract.id, seq=seq, amount=amount, due_on=inst.due_on, paid=Decimal("0.00")
            )
        )
    await session.flush()
    await schedule_job(tx, OVERDUE_JOB, OVERDUE_JOB, cron=OVERDUE_CRON)
    audit(
        tx,
        "sales.contract.create",
        "salesContract",
        contract.id,
        {"deal_id": deal.id, "amount": str(contract.amount), "instalments": len(plan)},
    )
    return contract


async def record_payment(
    tx: Tx, instalment_id: uuid.UUID, amount: Any, received_at: dt.datetime | None = None, note: str | None = None
) -> SalesPayment:
    """Money received against an instalment (more than due is kept as an over-payment), or a
    refund (a negative amount, at most what was paid on it). The payment lands on the timeline as
    a ``payment`` interaction; its ``amount`` is in the payload when the contract is in the
    tenant's currency (scoring counts it), else ``original_amount`` (no exchange rates here)."""
    session = tx.session
    inst = (await session.execute(select(SalesInstalment).where(SalesInstalment.id == instalment_id))).scalar_one_or_none()
    if inst is None:
        raise NotFoundError("no such instalment", field="instalmentId")
    value = money(amount, "amount")
    if value == 0:
        raise ValidationError("amount must not be zero (a refund is negative)", field="amount")
    if value < 0 and inst.paid + value < 0:
        raise ValidationError(f"a refund cannot exceed what was paid on the instalment ({inst.paid})", field="amount")
    note = (note or "").strip() or None
    if note is not None and len(note) > 1000:
        raise ValidationError("note is longer than 1000 characters", field="note")
    contract = (await session.execute(select(SalesContract).where(SalesContract.id == inst.contract_id))).scalar_one()
    at = (received_at or utcnow()).astimezone(dt.UTC)
    if at > utcnow() + dt.timedelta(minutes=5):
        raise ValidationError("receivedAt is in the future", field="receivedAt")
    inst.paid = inst.paid + value
    payment = SalesPayment(
        customer_id=inst.customer_id,
        contract_id=contract.id,
        instalment_id=inst.id,
        amount=value,
        received_at=at,
        note=note,
        user_id=tx.ctx.actor.user_id,
    )
    session.add(payment)
    await session.flush()
    payload: dict[str, Any] = {
        "currency": contract.currency,
        "contract": contract.number,
        "instalment": inst.seq,
        "payment_id": str(payment.id),
    }
    payload["amount" if contract.currency == await tenant_currency(session) else "original_amount"] = float(value)
    row, _created = await record_interaction(
        tx,
        InteractionInput(
            customer_id=inst.customer_id,
            channel=PAYMENT_CHANNEL,
            kind=PAYMENT_KIND,
            direction="in",
            occurred_at=at,
            text=f"{'Refund' if value < 0 else 'Payment'} {value} {contract.currency} · {contract.number} #{inst.seq}",
            payload=payload,
            dedupe_key=f"sales.payment:{payment.id}",
        ),
    )
    payment.interaction_id = row.id
    await session.flush()
    audit(
        tx,
        "sales.payment.refund" if value < 0 else "sales.payment.record",
        "salesContract",
        contract.id,
        {"instalment": inst.seq, "amount": str(value)},
    )
    return payment


async def list_contracts(session: TenantSession, *, customer_id: uuid.UUID | None = None, first: int = 50) -> list[SalesContract]:
    stmt = select(SalesContract).order_by(SalesContract.signed_on.desc(), SalesContract.id.desc()).limit(first)
    if customer_id is not None:
        stmt = stmt.where(SalesContract.customer_id == customer_id)
    return list((await session.scalars(stmt)).all())


async def get_contract(session: TenantSession, contract_id: uuid.UUID) -> SalesContract:
    found = (await session.execute(select(SalesContract).where(SalesContract.id == contract_id))).scalar_one_or_none()
    if found is None:
        raise NotFoundError("no such contract", field="contractId")
    return found


async def instalments_of(session: TenantSession, contract_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[SalesInstalment]]:
    out: dict[uuid.UUID, list[SalesInstalment]] = {c: [] for c in contract_ids}
    for i in await session.scalars(
        select(SalesInstalment).where(SalesInstalment.contract_id.in_(contract_ids)).order_by(SalesInstalment.seq)
    ):
        out[i.contract_id].append(i)
    return out


async def payments_of(session: TenantSession, contract_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[SalesPayment]]:
    out: dict[uuid.UUID, list[SalesPayment]] = {c: [] for c in contract_ids}
    stmt = select(SalesPayment).where(SalesPayment.contract_id.in_(contract_ids)).order_by(SalesPayment.received_at, SalesPayment.id)
    for p in await session.scalars(stmt):
        out[p.contract_id].append(p)
    return out


async def today_of(session: TenantSession, now: dt.datetime) -> dt.date:
    return now.astimezone(await tenant_zone(session)).date()


async def notify_overdue(runtime: Runtime, tenant_id: uuid.UUID, now: dt.datetime) -> int:
    """Tell each contract's owner (an active user) about its instalments that fell due before
    today (the tenant's day) and are not fully paid: one notification per instalment, found in
    one SQL statement. Returns how many were sent."""
    sent = 0
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        session = tx.session
        today = await today_of(session, now)
        stmt = (
            select(SalesInstalment, SalesContract.number, SalesContract.currency, SalesContract.owner_id, Customer.display_name)
            .join(
                SalesContract, and_(SalesContract.tenant_id == SalesInstalment.tenant_id, SalesContract.id == SalesInstalment.contract_id)
            )
            .join(Customer, and_(Customer.tenant_id == SalesInstalment.tenant_id, Customer.id == SalesInstalment.customer_id))
            .join(User, and_(User.tenant_id == SalesContract.tenant_id, User.id == SalesContract.owner_id, User.active.is_(True)))
            .where(SalesInstalment.due_on < today, SalesInstalment.paid < SalesInstalment.amount, SalesInstalment.notified_at.is_(None))
            .order_by(SalesInstalment.due_on, SalesInstalment.id)
        )
        for inst, number, currency, owner_id, name in (await session.execute(stmt)).all():
            inst.notified_at = now
            if owner_id is None:  # the join on an active user rules it out; for the type checker
                continue
            await notify(
                tx,
                NotificationInput(
                    user_id=owner_id,
                    kind=OVERDUE_NOTICE,
                    title=f"{name}: instalment {inst.seq} of contract {number} is overdue",
                    body=f"{inst.amount - inst.paid} {currency} of {inst.amount} {currency} was due on {inst.due_on.isoformat()}.",
                    dedupe_key=f"{OVERDUE_NOTICE}:{inst.id}",
                    link_type="customer",
                    link_id=inst.customer_id,
                ),
            )
            sent += 1
        await session.flush()
    return sent
