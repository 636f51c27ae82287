"""import/scoring: a customer's identities per channel are one range of one index

Scoring's social component groups one customer's identities by ``(customer_id, channel)``.
SQLite, which has no statistics for a tenant, chose the unique ``(tenant_id, channel,
external_id)`` index because it yields the ``GROUP BY`` order, and read every identity of the
tenant for each incremental update (the update of one customer took 60 ms at 1M customers and
18 ms at 20k). ``(tenant_id, customer_id, channel)`` replaces ``(tenant_id, customer_id)``: the
same lookups by customer, and the per-channel order with them.

On SQLite, ``contact_points`` and ``customer_tags`` become ``WITHOUT ROWID`` tables. Their
primary key is the whole identity of a row (no id column), so as rowid tables each row was stored
twice: in the table under a hidden rowid, and in the primary key's automatic index, key and all.
A customer imported with a phone, an e-mail and two tags wrote ~415 bytes of such duplicates of
~3,100 (32-character hex UUIDs in every key). Stored in the primary key's own B-tree, each row is
written once (one B-tree fewer to maintain per insert, too).

Revision ID: 0022_import
Revises: 0021_perf
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022_import"
down_revision: str | Sequence[str] | None = "0021_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: SQLite tables whose rows are their primary key (see the module docs)
KEYED = ("contact_points", "customer_tags")


def _rowid(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in KEYED:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}):
            pass


def upgrade() -> None:
    op.create_index("ix_identities_tenant_id_customer_id_channel", "identities", ["tenant_id", "customer_id", "channel"])
    op.drop_index("ix_identities_tenant_id_customer_id", table_name="identities")
    _rowid(False)


def downgrade() -> None:
    _rowid(True)
    op.create_index("ix_identities_tenant_id_customer_id", "identities", ["tenant_id", "customer_id"])
    op.drop_index("ix_identities_tenant_id_customer_id_channel", table_name="identities")
