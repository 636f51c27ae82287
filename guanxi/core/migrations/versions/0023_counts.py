"""counts: a maintained count of each tenant's live customers, so an unfiltered totalCount reads a few rows

``customer_counts (tenant_id, slot, n)``: the live customers (``merged_into_id IS NULL``) of a
tenant are ``sum(n)`` over its rows. Triggers on ``customers`` keep it exact under every write
(the services' inserts, merges, unmerges, deletes, erasure, imports, raw SQL alike):

- PostgreSQL: inserts and deletes are counted once per statement from its transition table
  (a bulk insert adds one delta per tenant, not one per row); a merge or unmerge, once per row
  whose liveness changed (a row trigger on ``merged_into_id`` with a ``WHEN`` condition, so the
  frequent other updates of customers run no trigger function at all). Each delta goes to the row
  ``slot = pg_backend_pid() % 16`` of the tenant: concurrent writers on other connections update
  other rows instead of queueing on one, and a transaction's delta commits or rolls back with
  its customers, so any snapshot's sum is exactly its count.
- SQLite (one writer at a time): row triggers, all on slot 0.

The table starts with each tenant's present count, computed in the same transaction as the
triggers are created (creating a trigger locks ``customers`` against writes on PostgreSQL).

Revision ID: 0023_counts
Revises: 0022_import
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_counts"
down_revision: str | Sequence[str] | None = "0022_import"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16

_PG_UPSERT = """
INSERT INTO customer_counts AS c (tenant_id, slot, n)
{rows}
ON CONFLICT (tenant_id, slot) DO UPDATE SET n = c.n + EXCLUDED.n"""

_SLOT = f"pg_backend_pid() % {SLOTS}"
_LIVE = "WHERE merged_into_id IS NULL GROUP BY tenant_id ORDER BY tenant_id"

POSTGRES = [
    f"""CREATE FUNCTION guanxi_customer_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_PG_UPSERT.format(rows=f"SELECT tenant_id, {_SLOT}, count(*) FROM new_rows {_LIVE}")};
RETURN NULL;
END $$""",
    f"""CREATE FUNCTION guanxi_customer_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_PG_UPSERT.format(rows=f"SELECT tenant_id, {_SLOT}, -count(*) FROM old_rows {_LIVE}")};
RETURN NULL;
END $$""",
    f"""CREATE FUNCTION guanxi_customer_counts_merged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_PG_UPSERT.format(rows=f"VALUES (NEW.tenant_id, {_SLOT}, CASE WHEN NEW.merged_into_id IS NULL THEN 1 ELSE -1 END)")};
RETURN NULL;
END $$""",
    """CREATE TRIGGER customer_counts_inserted AFTER INSERT ON customers REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION guanxi_customer_counts_inserted()""",
    """CREATE TRIGGER customer_counts_deleted AFTER DELETE ON customers REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION guanxi_customer_counts_deleted()""",
    """CREATE TRIGGER customer_counts_merged AFTER UPDATE OF merged_into_id ON customers FOR EACH ROW
WHEN ((OLD.merged_into_id IS NULL) <> (NEW.merged_into_id IS NULL)) EXECUTE FUNCTION guanxi_customer_counts_merged()""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS customer_counts_merged ON customers",
    "DROP TRIGGER IF EXISTS customer_counts_deleted ON customers",
    "DROP TRIGGER IF EXISTS customer_counts_inserted ON customers",
    "DROP FUNCTION IF EXISTS guanxi_customer_counts_merged()",
    "DROP FUNCTION IF EXISTS guanxi_customer_counts_deleted()",
    "DROP FUNCTION IF EXISTS guanxi_customer_counts_inserted()",
]

_SQLITE_UPSERT = (
    "INSERT INTO customer_counts (tenant_id, slot, n) VALUES ({tenant}, 0, {delta}) "
    "ON CONFLICT (tenant_id, slot) DO UPDATE SET n = n + excluded.n;"
)
SQLITE = [
    f"""CREATE TRIGGER customer_counts_inserted AFTER INSERT ON customers WHEN NEW.merged_into_id IS NULL
BEGIN {_SQLITE_UPSERT.format(tenant="NEW.tenant_id", delta=1)} END""",
    f"""CREATE TRIGGER customer_counts_deleted AFTER DELETE ON customers WHEN OLD.merged_into_id IS NULL
BEGIN {_SQLITE_UPSERT.format(tenant="OLD.tenant_id", delta=-1)} END""",
    f"""CREATE TRIGGER customer_counts_merged AFTER UPDATE OF merged_into_id ON customers
WHEN (OLD.merged_into_id IS NULL) <> (NEW.merged_into_id IS NULL)
BEGIN {_SQLITE_UPSERT.format(tenant="NEW.tenant_id", delta="CASE WHEN NEW.merged_into_id IS NULL THEN 1 ELSE -1 END")} END""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS customer_counts_merged",
    "DROP TRIGGER IF EXISTS customer_counts_deleted",
    "DROP TRIGGER IF EXISTS customer_counts_inserted",
]


def upgrade() -> None:
    op.create_table(
        "customer_counts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "slot", name=op.f("pk_customer_counts")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)
    op.execute(
        "INSERT INTO customer_counts (tenant_id, slot, n) "
        "SELECT tenant_id, 0, count(*) FROM customers WHERE merged_into_id IS NULL GROUP BY tenant_id"
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_DOWN if postgres else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("customer_counts")
