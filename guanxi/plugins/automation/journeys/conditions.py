"""Journey conditions compiled to SQL through core's customer filter
(:func:`guanxi.core.services.queries.apply_filter`): branches test a batch of customers in one
statement, scheduled triggers page through their audience by keyset (bounded memory)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from sqlalchemy import Select, select

from guanxi.core.domain.models import CustomerTag, Interaction, Tag
from guanxi.core.services.fields import FieldCondition
from guanxi.core.services.queries import CustomerFilter, apply_filter
from guanxi.core.services.tags import split_tag
from guanxi.models import Customer, utcnow
from guanxi.plugins.automation.journeys.definition import Condition


def field_conditions(cond: Condition, where: str = "condition.fields") -> list[FieldCondition]:
    out = []
    for i, raw in enumerate(cond.fields or []):
        data = {("in_" if k == "in" else k): v for k, v in raw.items()}
        out.append(msgspec.convert({**data, "where": f"{where}[{i}]"}, FieldCondition))
    return out


async def compile_condition(
    session: Any, stmt: Select[Any], cond: Condition | None, *, now: dt.datetime | None = None
) -> Select[Any] | None:
    """``stmt`` (a select over customers) with the condition's parts added; None when it can
    match nobody (a tag that does not exist)."""
    if cond is None:
        return await apply_filter(session, stmt, None)
    flt = CustomerFilter(
        stages=cond.stages, tags_any=cond.tags_any, tags_all=cond.tags_all, channels=cond.channels, fields=field_conditions(cond) or None
    )
    found = await apply_filter(session, stmt, flt)
    if found is None:
        return None
    if cond.tags_none:
        ids = []
        for label in cond.tags_none:
            group, name = split_tag(label)
            ids.append(select(Tag.id).where(Tag.group_name == group, Tag.name == name).scalar_subquery())
        found = found.where(Customer.id.not_in(select(CustomerTag.customer_id).where(CustomerTag.tag_id.in_(ids))))
    if cond.interaction_kind:
        touched = select(Interaction.customer_id).where(Interaction.kind == cond.interaction_kind)
        if cond.interaction_within_s is not None:
            touched = touched.where(Interaction.occurred_at >= (now or utcnow()) - dt.timedelta(seconds=cond.interaction_within_s))
        found = found.where(Customer.id.in_(touched))
    return found


async def matching(session: Any, cond: Condition, customer_ids: Sequence[uuid.UUID], *, now: dt.datetime | None = None) -> set[uuid.UUID]:
    """Which of these customers match now (one statement)."""
    if not customer_ids:
        return set()
    stmt = await compile_condition(session, select(Customer.id).where(Customer.id.in_(list(customer_ids))), cond, now=now)
    if stmt is None:
        return set()
    return set((await session.execute(stmt)).scalars())


async def audience(session: Any, cond: Condition | None, *, batch: int = 1000, extra: Any = None) -> AsyncIterator[list[uuid.UUID]]:
    """The ids of every customer matching ``cond`` (and ``extra``, a where clause), in batches by
    keyset on the id: memory stays bounded whatever the number of customers."""
    last: uuid.UUID | None = None
    while True:
        stmt = select(Customer.id)
        if extra is not None:
            stmt = stmt.where(extra)
        if last is not None:
            stmt = stmt.where(Customer.id > last)
        compiled = await compile_condition(session, stmt, cond)
        if compiled is None:
            return
        ids = list((await session.execute(compiled.order_by(Customer.id).limit(batch))).scalars())
        if not ids:
            return
        yield ids
        last = ids[-1]
