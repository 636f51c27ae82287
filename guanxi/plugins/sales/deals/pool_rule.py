"""The deals' lead-pool return rules, contributed through ``guanxi_pool_return_rules`` like any
other plugin's (the pool, ``sales/pool.py``, knows them only by that hook):

* ``sales.contract_lapsed``: "N days after the customer's last contract ended without a new one";
* ``sales.no_won_deal``: "no won deal N months after the first inquiry". The *first inquiry* is
  the customer's first inbound interaction (the customer writing, calling, filling a form: the
  customer asking), or, for a customer who never reached out (entered by hand, imported), its
  creation, the moment the lead became known.

Each is one SQL condition on the outer query's tenant and customer id columns."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any, Final

from sqlalchemy import and_, exists, func, select
from sqlalchemy.sql import ColumnElement

from guanxi import PoolReturnRule
from guanxi.core.domain.models import Customer, Interaction
from guanxi.plugins.sales.deals.models import SalesContract, SalesDeal

RULE: Final = "sales.contract_lapsed"
NO_WON_DEAL: Final = "sales.no_won_deal"


def rule_text(days: int) -> str:
    return f"{days} days after the last contract ended without a new one"


def no_won_deal_text(months: int) -> str:
    return f"no won deal {months} months after the first inquiry"


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


def months_before(at: dt.datetime, months: int) -> dt.datetime:
    """The same wall-clock time ``months`` calendar months earlier (31 March − 1 month: 28/29 Feb)."""
    index = at.year * 12 + at.month - 1 - months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def no_won_deal(tenant_id: Any, customer_id: Any, as_of: dt.datetime, months: int) -> ColumnElement[bool]:
    """True for a customer without any won deal whose first inquiry (first inbound interaction,
    else its creation) is more than ``months`` months before ``as_of``."""
    first_in = (
        select(func.min(Interaction.occurred_at))
        .where(Interaction.tenant_id == tenant_id, Interaction.customer_id == customer_id, Interaction.direction == "in")
        .correlate_except(Interaction)
        .scalar_subquery()
    )
    created = (
        select(Customer.created_at)
        .where(Customer.tenant_id == tenant_id, Customer.id == customer_id)
        .correlate_except(Customer)
        .scalar_subquery()
    )
    won = exists().where(SalesDeal.tenant_id == tenant_id, SalesDeal.customer_id == customer_id, SalesDeal.status == "won")
    cutoff = months_before(as_of, months).astimezone(dt.UTC)
    return and_(func.coalesce(first_in, created) < cutoff, ~won)


RULES: Final = (
    PoolReturnRule(
        key=RULE,
        text=rule_text,
        condition=lambda tenant_id, customer_id, as_of, days: contract_lapsed(tenant_id, customer_id, as_of.date(), days),
        unit="days",
        warning=lambda days: f"Its last contract ended {days} days ago tomorrow without a new one. Sign a renewal to keep the lead.",
        description="N days after the customer's last contract ended without a new one",
    ),
    PoolReturnRule(
        key=NO_WON_DEAL,
        text=no_won_deal_text,
        condition=no_won_deal,
        unit="months",
        max_value=120,
        warning=lambda months: f"No won deal {months} months after the first inquiry, tomorrow. Win a deal to keep the lead.",
        description="no won deal N months after the customer's first inquiry (first inbound interaction, else its creation)",
    ),
)
