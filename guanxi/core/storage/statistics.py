"""The query planner's statistics after a bulk load (PostgreSQL).

PostgreSQL plans a query from per-table statistics that autovacuum refreshes only after a share
of the table changed (by default 10 %), and at most once a minute. A tenant whose rows arrive in
bulk (an import, the demo loader, a seeded bench tenant) is until then unknown to them: the
planner estimates ~1 row for ``tenant_id = <new tenant>``, finds every index that starts with
``tenant_id`` equally cheap, and may pick one that filters the tenant's rows one by one instead
of the index that bounds the lookup by customer. Measured on a page of 50 customers in a table
whose statistics knew only another tenant: 522 ms instead of 2.6 ms (each customer's last
interactions were found by reading all 70,000 of the tenant's interactions through the
``(tenant_id, dedupe_key)`` index).

:func:`refresh_statistics` runs ``ANALYZE`` on the named tables right after such a load. ANALYZE
sees the rows of its own transaction, so it may run before the load commits. It is statistics
of the whole table, not rows of a tenant, so it is marked unscoped for the chokepoint. SQLite
plans without statistics unless ``ANALYZE`` created them, and its plans for these lookups do not
depend on them: it is a no-op there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from guanxi.core.storage.tenancy import UNSCOPED

log = logging.getLogger("guanxi.storage")


async def refresh_statistics(db: AsyncSession | AsyncConnection, tables: Iterable[str] | None = None) -> bool:
    """``ANALYZE`` ``tables`` (every table when None) on PostgreSQL; False (and a warning) when
    the role lacks the privilege, or on SQLite, where nothing is done. Each table runs in a
    savepoint, so a refusal leaves the caller's transaction usable."""
    conn = db if isinstance(db, AsyncConnection) else await db.connection()
    if conn.dialect.name != "postgresql":
        return False
    done = True
    for table in tables if tables is not None else [None]:
        statement = text("ANALYZE" if table is None else f'ANALYZE "{table}"').execution_options(**{UNSCOPED: True})
        try:
            if isinstance(db, AsyncSession):
                async with db.begin_nested():
                    await db.execute(statement)
            else:
                async with conn.begin_nested():
                    await conn.execute(statement)
        except DBAPIError:
            log.warning("could not ANALYZE %s; the planner keeps its old statistics", table or "the database")
            done = False
    return done
