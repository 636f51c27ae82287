"""perf: the contact point lookup index also holds the customer id (covering)

The importer and the customer service look customers up by ``(kind, value)`` and read only the
customer id. With ``(tenant_id, kind, value)`` alone, SQLite without statistics preferred the
primary key ``(tenant_id, customer_id, kind, value)`` because it covers the query, and scanned
every contact point of the tenant for each lookup: an import slowed down as the tenant grew.
With the customer id in the lookup index, that index covers the query too and is chosen.

Revision ID: 0015_perf
Revises: 0013_pipelines
Create Date: 2026-12-07 00:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015_perf"
down_revision: str | Sequence[str] | None = "0013_pipelines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_contact_points_tenant_id_kind_value", table_name="contact_points")
    op.create_index("ix_contact_points_tenant_id_kind_value_customer_id", "contact_points", ["tenant_id", "kind", "value", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_contact_points_tenant_id_kind_value_customer_id", table_name="contact_points")
    op.create_index("ix_contact_points_tenant_id_kind_value", "contact_points", ["tenant_id", "kind", "value"])
