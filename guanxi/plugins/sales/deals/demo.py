"""Demo deals, contracts and payments for the demo tenant (``guanxi demo`` calls it when the
sales plugin is enabled): every customer past the first stages gets a deal; won customers a won
deal, a contract of one to three instalments and payments (some partial, some late, one
refund), each payment also a ``payment`` interaction like :func:`~.contracts.record_payment`
writes. Written with bulk inserts in the caller's transaction; the same seed gives the same data."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from guanxi.core.domain.models import Customer, Interaction, Stage
from guanxi.models import new_id
from guanxi.plugins.sales.deals import contracts as csvc
from guanxi.plugins.sales.deals import service as svc
from guanxi.plugins.sales.deals.models import (
    SalesContract,
    SalesDeal,
    SalesDealMove,
    SalesInstalment,
    SalesPayment,
    SalesProduct,
)

PRODUCTS = (
    ("crm-std", "CRM 标准版", "12800"),
    ("crm-pro", "CRM 专业版", "36000"),
    ("scrm-wecom", "企微 SCRM", "9800"),
    ("impl", "实施服务", "5000"),
)
LOST_REASONS = ("budget cut 预算不足", "chose a competitor 选了竞品", "no decision 无决策")


async def add_demo_deals(tx: Any, seed: int, now: dt.datetime) -> dict[str, int]:
    """Deals, contracts, instalments and payments for the tenant's customers; returns counts."""
    session = tx.session
    rng = random.Random(seed * 7919 + 21)
    pipeline = await svc.pipeline_by_key(tx, None)
    stages = (await svc.stages_of(session, [pipeline.id]))[pipeline.id]
    opens = [s for s in stages if s.category == "open"]
    won_stage = next(s for s in stages if s.category == "won")
    lost_stage = next(s for s in stages if s.category == "lost")
    currency = await svc.tenant_currency(session)
    known = {p.sku for p in await svc.list_products(session, include_archived=True)}
    for sku, name, price in PRODUCTS:
        if sku not in known:
            session.add(SalesProduct(sku=sku, name=name, price=Decimal(price), currency=currency))
    rows = (
        await session.execute(
            select(Customer.id, Customer.owner_id, Customer.created_at, Stage.category, Stage.position)
            .join(Stage, and_(Stage.tenant_id == Customer.tenant_id, Stage.id == Customer.stage_id))
            .where(Customer.merged_into_id.is_(None))
            .order_by(Customer.created_at, Customer.id)
        )
    ).all()
    deals: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    contracts: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    interactions: list[dict[str, Any]] = []
    number = 0
    for cid, owner, joined, category, position in rows:
        if category == "open" and position < 1:
            continue
        created = max(joined, now - dt.timedelta(days=170))
        span = max((now - created).total_seconds(), 3600.0)
        at = created + dt.timedelta(seconds=rng.uniform(0.05, 0.3) * span)
        amount = Decimal(rng.choice(PRODUCTS)[2]) * rng.choice((1, 1, 2, 3))
        if category in ("won", "retained"):
            path, final = opens, won_stage
        elif category in ("lost", "churned"):
            path, final = opens[: rng.randint(1, len(opens))], lost_stage
        else:
            path, final = opens[: min(position, len(opens))], None
        did = new_id()
        previous = None
        for stage in [*path, *([final] if final else [])]:
            moves.append(
                {
                    "id": new_id(),
                    "customer_id": cid,
                    "deal_id": did,
                    "from_stage_id": previous,
                    "to_stage_id": stage.id,
                    "user_id": owner,
                    "at": at,
                }
            )
            previous = stage.id
            at = min(at + dt.timedelta(days=rng.uniform(1, 12)), now)
        last = path[-1] if final is None else final
        closed = at if final else None
        deals.append(
            {
                "id": did, "customer_id": cid, "pipeline_id": pipeline.id, "stage_id": last.id, "title": "CRM 项目", "amount": amount,
                "currency": currency, "owner_id": owner, "status": last.category, "expected_close": (now + dt.timedelta(days=30)).date(),
                "closed_at": closed, "lost_reason": rng.choice(LOST_REASONS) if last is lost_stage else None, "created_at": created,
                "updated_at": at,
            }
        )  # fmt: skip
        if last is not won_stage or closed is None:
            continue
        number += 1
        signed = closed.date()
        kid = new_id()
        n = rng.choice((1, 2, 3))
        contracts.append(
            {"id": kid, "customer_id": cid, "deal_id": did, "number": f"HT-{signed:%Y%m}-{number:04d}", "owner_id": owner, "amount": amount,
             "currency": currency, "signed_on": signed, "starts_on": signed, "ends_on": signed + dt.timedelta(days=365),
             "created_at": closed}
        )  # fmt: skip
        part = (amount / n).quantize(svc.CENT)
        for seq in range(1, n + 1):
            due = signed + dt.timedelta(days=30 * seq)
            value = part if seq < n else amount - part * (n - 1)
            iid = new_id()
            paid = Decimal("0.00")
            if due <= now.date() + dt.timedelta(days=10) and rng.random() < 0.85:
                got = value if rng.random() < 0.8 else (value / 2).quantize(svc.CENT)
                when = dt.datetime.combine(due, dt.time(10), tzinfo=dt.UTC) + dt.timedelta(days=rng.randint(-5, 20))
                when = min(when, now)
                pays = [(got, when)]
                if rng.random() < 0.05:
                    pays.append((-(got / 10).quantize(svc.CENT), min(when + dt.timedelta(days=3), now)))
                for value_paid, when_paid in pays:
                    pid, xid = new_id(), new_id()
                    paid += value_paid
                    payments.append(
                        {"id": pid, "customer_id": cid, "contract_id": kid, "instalment_id": iid, "amount": value_paid,
                         "received_at": when_paid,
                         "note": None, "user_id": owner, "interaction_id": xid, "created_at": when_paid}
                    )  # fmt: skip
                    interactions.append(
                        {"id": xid, "customer_id": cid, "identity_id": None, "channel": csvc.PAYMENT_CHANNEL, "kind": csvc.PAYMENT_KIND,
                         "direction": "in", "occurred_at": when_paid, "recorded_at": when_paid,
                         "text": f"Payment {value_paid} {currency} · HT #{seq}", "dedupe_key": f"sales.payment:{pid}", "actor_id": owner,
                         "payload": {"amount": float(value_paid), "currency": currency, "instalment": seq, "payment_id": str(pid)}}
                    )  # fmt: skip
            plans.append(
                {
                    "id": iid,
                    "customer_id": cid,
                    "contract_id": kid,
                    "seq": seq,
                    "amount": value,
                    "due_on": due,
                    "paid": paid,
                    "notified_at": None,
                }
            )
    await session.flush()
    for model, batch in (
        (SalesDeal, deals),
        (SalesDealMove, moves),
        (SalesContract, contracts),
        (SalesInstalment, plans),
        (SalesPayment, payments),
        (Interaction, interactions),
    ):
        if batch:
            await session.execute(insert(model), batch, execution_options={"render_nulls": True})
    if interactions:
        newest = select(func.max(Interaction.occurred_at)).where(Interaction.customer_id == Customer.id).scalar_subquery()
        paying = {row["customer_id"] for row in interactions}
        await session.execute(
            update(Customer).where(Customer.id.in_(paying)).values(last_interaction_at=newest).execution_options(synchronize_session=False)
        )
    if contracts:
        await csvc.schedule_job(tx, csvc.OVERDUE_JOB, csvc.OVERDUE_JOB, cron=csvc.OVERDUE_CRON)
    return {"deals": len(deals), "contracts": len(contracts), "payments": len(payments)}
