"""count deltas: on PostgreSQL the customer-count triggers append a row instead of updating one

``0023_counts`` added each statement's delta to the row ``slot = pg_backend_pid() % 16`` of the
tenant. A transaction that inserts its customers one statement per row (a driver's
``executemany`` does: asyncpg and psycopg execute the statement once per row) updated that one
row once per customer. PostgreSQL cannot prune the versions a transaction still open made, so
every update walked all the earlier ones: quadratic. A raw ``executemany`` of a million customers
had written ~410,000 of them in 9 minutes, slowing down.

Now every firing **inserts** a row with a random slot (16 to 2³¹−1): nothing reads or updates an
earlier row, so each costs the same however many came before it in the transaction, and
concurrent writers do not wait on each other (not even two connections whose pids fell on the
same slot). Two firings that draw the same slot add up in one row (``ON CONFLICT … DO UPDATE``,
as before): rare, and still exact. (Not a sequence: an application role granted only the tables
could not call ``nextval``, and every insert of a customer would fail.) The count is still
``sum(n)`` of the tenant's rows, exact in every snapshot. The rows are folded into one per tenant by the job ``core.counts_fold``
(:func:`guanxi.core.services.counts.fold`), every minute, and by an import when it ends.

SQLite is unchanged: its row triggers update slot 0 in place (no versions to walk).

Revision ID: 0024_count_deltas
Revises: 0023_counts
Create Date: 2026-12-08 19:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024_count_deltas"
down_revision: str | Sequence[str] | None = "0023_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "WHERE merged_into_id IS NULL GROUP BY tenant_id"


def _functions(slot: str, write: str) -> list[str]:
    """The three trigger functions of ``0023_counts``, each writing its delta with ``write``."""
    return [
        f"""CREATE OR REPLACE FUNCTION guanxi_customer_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO customer_counts AS c (tenant_id, slot, n) SELECT tenant_id, {slot}, count(*) FROM new_rows {_LIVE}{write};
RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION guanxi_customer_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO customer_counts AS c (tenant_id, slot, n) SELECT tenant_id, {slot}, -count(*) FROM old_rows {_LIVE}{write};
RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION guanxi_customer_counts_merged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO customer_counts AS c (tenant_id, slot, n)
VALUES (NEW.tenant_id, {slot}, CASE WHEN NEW.merged_into_id IS NULL THEN 1 ELSE -1 END){write};
RETURN NULL;
END $$""",
    ]


_ADD = "\nON CONFLICT (tenant_id, slot) DO UPDATE SET n = c.n + EXCLUDED.n"
#: a random slot above 0023's 0–15 (0 is where a fold puts a tenant's sum)
APPEND = _functions("16 + floor(random() * 2147483631)::int", _ADD)
#: 0023_counts' functions, for the downgrade
UPDATE_IN_PLACE = _functions("pg_backend_pid() % 16", _ADD)

#: every tenant's rows into one, slot 0 (one of 0023's slots)
_FOLD_TO_ZERO = """
WITH gone AS (DELETE FROM customer_counts RETURNING tenant_id, n)
INSERT INTO customer_counts (tenant_id, slot, n) SELECT tenant_id, 0, sum(n) FROM gone GROUP BY tenant_id"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in APPEND:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in UPDATE_IN_PLACE:
        op.execute(statement)
    op.execute(_FOLD_TO_ZERO)
