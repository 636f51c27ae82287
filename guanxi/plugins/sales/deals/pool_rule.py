"""The lead-pool return rule of contracts: "N days after the customer's last contract ended
without a new one". A self-contained SQL condition on a customer id column, to plug into the
pool's return rules (``sales/pool.py``, or the pool-rule hook of issue 20) next to "no follow-up
for N days"."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import and_, func, select
from sqlalchemy.sql import ColumnElement

from guanxi.plugins.sales.deals.models import SalesContract

RULE: Final = "contract_lapsed"


def rule_text(days: int) -> str:
    return f"{days} days after the last contract ended without a new one"


def contract_lapsed(tenant_id: Any, customer_id: Any, today: dt.date, days: int) -> ColumnElement[bool]:
    """True for a customer who had a contract, whose latest-ending contract ended more than
    ``days`` days before ``today``: no contract runs now or was signed to run later (it would end
    later). A customer without any contract is not matched. ``tenant_id`` and ``customer_id`` are
    the outer query's columns (e.g. ``SalesPoolLead.tenant_id``, ``SalesPoolLead.customer_id``)."""
    last_end = (
        select(func.max(SalesContract.ends_on))
        .where(and_(SalesContract.tenant_id == tenant_id, SalesContract.customer_id == customer_id))
        .correlate_except(SalesContract)
        .scalar_subquery()
    )
    return last_end < today - dt.timedelta(days=days)
