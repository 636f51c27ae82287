"""CSV export of a filtered customer list (issue 20 item 8), streamed in pages: the caller's
ownership limit applies (a salesperson exports their own customers, a manager their team's), and
every live custom field is a column (its key as the header).

CSV injection: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
prefixed with ``'`` so a spreadsheet shows it as text instead of running it as a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, Final, cast

from sqlalchemy import Select, and_, select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer, Stage, User
from guanxi.core.runtime import Runtime
from guanxi.core.services import queries
from guanxi.core.services.audit import audit
from guanxi.core.services.fields import field_values_of, list_fields
from guanxi.graphql.ids import to_global_id

#: roles that may export (each within its ownership limit)
EXPORT_ROLES: Final = ("admin", "manager", "sales")
PAGE: Final = 500
BASE_COLUMNS: Final = ("id", "display_name", "company", "phones", "emails", "owner", "stage", "source", "created_at")
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")
#: a phone or a number: starts like a formula (+86…, -3) but a spreadsheet reads it as data
_NUMBER_LIKE: Final = re.compile(r"^[+-]?[\d][\d\s().-]*$")


def _cell(value: Any, users: dict[uuid.UUID, str]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return users.get(value, str(value))
    if isinstance(value, list):
        return ";".join(_cell(v, users) for v in value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) and not _NUMBER_LIKE.match(text) else text


def _line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(row)
    return out.getvalue()


async def export_rows(runtime: Runtime, ctx: RequestContext, flt: queries.CustomerFilter | None) -> AsyncIterator[str]:
    """The CSV text, a header line then a page of lines at a time (ordered by customer id). The
    filter is compiled before the first line, so a bad filter fails before anything streams."""
    async with runtime.transaction(ctx) as tx:
        defs = await list_fields(tx.session)
        probe = await queries.apply_filter(tx.session, select(Customer.id), flt)
        audit(tx, "sales.customers.export", "tenant", ctx.tenant_id, {"format": "csv"})
    yield _line([*BASE_COLUMNS, *(d.key for d in defs)])
    if probe is None:
        return
    after: uuid.UUID | None = None
    while True:
        async with runtime.session(ctx.tenant_id, ctx.owners) as s:
            base = cast(
                "Select[Any]",
                select(Customer, Stage.key).outerjoin(Stage, and_(Stage.tenant_id == Customer.tenant_id, Stage.id == Customer.stage_id)),
            )
            stmt = await queries.apply_filter(s, base, flt)
            assert stmt is not None
            if after is not None:
                stmt = stmt.where(Customer.id > after)
            rows = (await s.execute(stmt.order_by(Customer.id).limit(PAGE))).all()
            if not rows:
                return
            ids = [c.id for c, _ in rows]
            values = await field_values_of(s, ids)
            people = {c.owner_id for c, _ in rows if c.owner_id} | {
                v for per in values.values() for d, v in per if d.kind == "user" and isinstance(v, uuid.UUID)
            }
            users = {u.id: u.email for u in (await s.scalars(select(User).where(User.id.in_(people)))).all()} if people else {}
        lines = []
        for customer, stage_key in rows:
            by_key = {d.key: v for d, v in values.get(customer.id, [])}
            base_cells = [
                to_global_id("Customer", customer.id),
                customer.display_name,
                customer.company,
                customer.phones,
                customer.emails,
                customer.owner_id,
                stage_key,
                customer.source,
                customer.created_at,
            ]
            lines.append(_line([_cell(v, users) for v in base_cells] + [_cell(by_key.get(d.key), users) for d in defs]))
        yield "".join(lines)
        after = rows[-1][0].id
