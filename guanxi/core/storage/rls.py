"""PostgreSQL row-level security: a second wall behind the tenancy chokepoint.

``guanxi db rls enable`` puts one policy on every tenant-owned table: a row is visible and
writable only when its ``tenant_id`` equals the transaction's ``guanxi.tenant_id`` setting, or
when the transaction is marked ``guanxi.unscoped``. With ``database.row_level_security = true``
Guanxi sets both at the start of every transaction (:func:`scope_transaction`): ORM sessions to
their tenant, core-level maintenance connections (queue claims across tenants, migrations) to
unscoped. So a query that escaped the ORM filter (raw SQL through a session, a bug) still sees
only its tenant's rows.

PostgreSQL exempts superusers and roles with BYPASSRLS from every policy: run the application as
an ordinary role (the policies are FORCEd, so they bind the tables' owner too).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from guanxi.core.domain.models import Base

POLICY = "guanxi_tenant_isolation"
_CONDITION = "current_setting('guanxi.unscoped', true) = 'on' OR tenant_id = NULLIF(current_setting('guanxi.tenant_id', true), '')::uuid"


def scope_transaction(conn: Connection, tenant_id: uuid.UUID | None, unscoped: bool) -> None:
    """Set the transaction's scope (transaction-local settings, gone at commit or rollback)."""
    tenant = str(uuid.UUID(str(tenant_id))) if tenant_id is not None else ""  # a UUID's text: safe to inline
    conn.exec_driver_sql(
        f"SELECT set_config('guanxi.tenant_id', '{tenant}', true), set_config('guanxi.unscoped', '{'on' if unscoped else 'off'}', true)"
    )


def tenant_tables(conn: Connection) -> list[str]:
    """Tables of the database that have a tenant_id column and are known to the models."""
    existing = set(inspect(conn).get_table_names())
    return sorted(t.name for t in Base.metadata.tables.values() if "tenant_id" in t.c and t.name in existing)


def _check_postgres(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        raise RuntimeError(f"row-level security needs PostgreSQL (this database is {conn.dialect.name})")


def enable(conn: Connection) -> list[str]:
    """Create (or replace) the policy on every tenant table; returns the tables."""
    _check_postgres(conn)
    tables = tenant_tables(conn)
    for table in tables:
        conn.execute(text(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY'))
        conn.execute(text(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY'))
        conn.execute(text(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"'))
        conn.execute(text(f'CREATE POLICY {POLICY} ON "{table}" USING ({_CONDITION}) WITH CHECK ({_CONDITION})'))
    return tables


def disable(conn: Connection) -> list[str]:
    _check_postgres(conn)
    tables = tenant_tables(conn)
    for table in tables:
        conn.execute(text(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"'))
        conn.execute(text(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY'))
        conn.execute(text(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY'))
    return tables


def status(conn: Connection) -> dict[str, Any]:
    """Per tenant table: whether RLS is on and forced, and whether Guanxi's policy exists."""
    _check_postgres(conn)
    rows = conn.execute(
        text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = :policy) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(:tables)"
        ),
        {"policy": POLICY, "tables": tenant_tables(conn)},
    ).all()
    return {name: {"enabled": bool(on), "forced": bool(forced), "policy": bool(policy)} for name, on, forced, policy in rows}
