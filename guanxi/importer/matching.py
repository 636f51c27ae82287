"""Finding the customers a batch's rows belong to: one lookup per key kind and batch.

A row's keys (identity, emails, phones) are looked up for the whole batch at once: one statement
per channel for identities and one per kind for contact points, whatever the batch size. The
values go to the database as ONE parameter (:func:`one_of`: a JSON array read by ``json_each`` on
SQLite, an array compared with ``= ANY`` on PostgreSQL), not as an ``IN`` list of a parameter per
value, which SQLAlchemy expanded and processed value by value (a third of the lookups' time) and
which made each statement's text depend on the number of values. The contact point lookup is covered by the
``(tenant_id, kind, value, customer_id)`` index (migration ``0015_perf``), so its cost depends on
the batch, not on the size of the tenant.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import JSON, String, and_, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from guanxi.core.domain.models import ContactPoint, Customer, Identity
from guanxi.core.storage.statistics import refresh_statistics as analyze
from guanxi.core.storage.tenancy import TenantSession
from guanxi.importer.validation import Row

log = logging.getLogger("guanxi.import")
#: the tables whose statistics an import refreshes as it grows
IMPORT_TABLES = ("customers", "contact_points", "identities", "customer_tags")
CHUNK = 1000  # values per IN (...) list, well under every driver's parameter limit

#: a matching key: ("i", channel, external id), ("email", value) or ("phone", value)
Key = tuple[str, ...]


def chunks(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def one_of(column: Any, values: list[str], dialect: str) -> ColumnElement[bool]:
    """``column IN values`` with the values bound as one parameter (see the module docs)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    each = func.json_each(bindparam(None, values, type_=JSON)).table_valued("value")
    return column.in_(select(each.c.value))


async def existing_keys(session: TenantSession, rows: list[Row]) -> tuple[dict[Key, uuid.UUID], set[tuple[str, str]]]:
    """Key -> customer for every key of the batch already in the database (oldest customer
    wins), and the identities that exist."""
    index: dict[Key, uuid.UUID] = {}
    by_channel: dict[str, list[str]] = {}
    by_kind: dict[str, list[str]] = {"email": [], "phone": []}
    for row in rows:
        if row.identity:
            by_channel.setdefault(row.identity[0], []).append(row.identity[1])
        by_kind["email"] += row.emails
        by_kind["phone"] += row.phones
    known_identities: set[tuple[str, str]] = set()
    dialect = (await session.connection()).dialect.name
    for channel, ext_ids in by_channel.items():
        wanted = one_of(Identity.external_id, list(dict.fromkeys(ext_ids)), dialect)
        stmt = select(Identity.external_id, Identity.customer_id).where(Identity.channel == channel, wanted)
        for ext, cid in await session.execute(stmt):
            index[("i", channel, ext)] = cid
            known_identities.add((channel, ext))
    live = and_(Customer.tenant_id == ContactPoint.tenant_id, Customer.id == ContactPoint.customer_id)
    for kind, values in by_kind.items():
        if not values:
            continue
        wanted = one_of(ContactPoint.value, list(dict.fromkeys(values)), dialect)
        stmt2 = (
            select(ContactPoint.value, ContactPoint.customer_id)
            .join(Customer, live)
            .where(ContactPoint.kind == kind, wanted, Customer.merged_into_id.is_(None))
        )
        for value, cid in await session.execute(stmt2):
            key = (kind, value)
            index[key] = min(index.get(key, cid), cid)
    return index, known_identities


async def refresh_statistics(session: TenantSession, dialect: str) -> None:
    """PostgreSQL only: refresh the planner's statistics of the tables the import looks up.

    The rows written so far are uncommitted, and a new tenant has no statistics at all, so the
    planner believes the tenant has ~1 row and may scan every row of it per lookup, which makes
    a large import quadratic. ANALYZE counts the rows of its own transaction; it runs after
    2,000, 4,000, 8,000 ... rows (a few dozen times for a million rows). Without the privilege
    to ANALYZE, the import goes on with the old statistics (see
    :mod:`guanxi.core.storage.statistics`)."""
    if dialect == "postgresql":
        await analyze(session, IMPORT_TABLES)
