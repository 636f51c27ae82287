"""Bulk inserts of many parameter rows through the driver's ``executemany``, for the tenant of a
session (the CSV import's write batches).

A Core ``insert(table)`` with a list of dicts spends most of its time per row in SQLAlchemy:
compiling parameters, each value through its type's bind processor, the dict turned into the
driver's positional row. Here the statement is built once per (table, columns), the processors
are looked up once per column and applied column by column, the same object in a run of rows of
a column (the batch's timestamp, the actor, the stage) is converted once, and the tuples go straight to the
driver on the session's connection (same transaction, and on PostgreSQL the same row-level
security setting). The tenant is stamped from the session, as the tenancy chokepoint does for
Core inserts; a column missing from the rows must have no Python-side default (checked).

On PostgreSQL without row-level security the tuples go in by ``COPY`` (asyncpg's
``copy_records_to_table``, binary, on the same connection and transaction) rather than an
``INSERT`` executemany: the same rows, values and constraints (keys, foreign keys, checks are
enforced by COPY as by INSERT), a fraction of the server's per-row work. PostgreSQL refuses
``COPY FROM`` into a table with row-level security, so with ``database.row_level_security`` the
executemany stays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

from guanxi.core.storage.tenancy import RLS_KEY, TENANT_STAMPED, TenantScopeError, TenantSession

_MISSING = object()


@functools.cache
def _statement(table: Table, columns: tuple[str, ...], paramstyle: str) -> str:
    if paramstyle == "qmark":
        marks = ["?"] * len(columns)
    elif paramstyle == "numeric_dollar":
        marks = [f"${i + 1}" for i in range(len(columns))]
    elif paramstyle in ("format", "pyformat"):
        marks = ["%s"] * len(columns)
    else:  # pragma: no cover - the drivers Guanxi supports use one of the above
        raise NotImplementedError(f"paramstyle {paramstyle!r}")
    missing = [c for c in table.columns if c.name not in columns and c.default is not None]
    if missing:
        raise ValueError(f"bulk insert into {table.name}: columns {[c.name for c in missing]} have Python defaults; give them")
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(marks)})"


def _converters(table: Table, columns: Sequence[str], dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    return [table.columns[name].type._cached_bind_processor(dialect) for name in columns]


def driver_rows(table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]], dialect: Dialect) -> list[tuple[Any, ...]]:
    """The rows as the driver takes them: each value through its column type's bind processor,
    converted once per run of the same object in a column (the batch's timestamp, actor, stage)."""
    converted: list[list[Any]] = []
    for name, convert in zip(columns, _converters(table, columns, dialect), strict=True):
        values = [row[name] for row in rows]
        if convert is not None:
            values = _convert(values, convert)
        converted.append(values)
    return list(zip(*converted, strict=True))


def _convert(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    out: list[Any] = []
    last_in: Any = _MISSING
    last_out: Any = None
    for value in values:
        if value is None:
            out.append(None)
        elif value is last_in:
            out.append(last_out)
        else:
            last_in, last_out = value, convert(value)
            out.append(last_out)
    return out


async def insert_rows(session: TenantSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` every row (dicts with the same keys, without ``tenant_id``) into ``table`` for
    the session's tenant, in one ``executemany`` on the session's connection."""
    if not rows:
        return
    tenant_id = session.tenant_id
    if tenant_id is None:
        raise TenantScopeError(f"insert into {table.name} by a session without a tenant")
    if "tenant_id" in rows[0]:
        raise TenantScopeError(f"insert into {table.name}: the tenant comes from the session, not the rows")
    conn = await session.connection()
    dialect = conn.dialect
    columns = ("tenant_id", *rows[0])
    tenant = _converters(table, ("tenant_id",), dialect)[0]
    raw_tenant = tenant(tenant_id) if tenant is not None else tenant_id
    body = driver_rows(table, columns[1:], rows, dialect)
    sql = _statement(table, columns, dialect.paramstyle)  # checks the columns left out, for COPY too
    records = [(raw_tenant, *r) for r in body]
    if dialect.name == "postgresql" and not session.info.get(RLS_KEY):
        driver = (await conn.get_raw_connection()).driver_connection  # asyncpg's, in the session's transaction
        assert driver is not None
        await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
        return
    await conn.exec_driver_sql(sql, records, execution_options={TENANT_STAMPED: True})
