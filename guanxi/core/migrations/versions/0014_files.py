"""files: references to the core file store's files (by key) from messages, interactions and
materials, so a person's files are exported and erased with them and bytes go with their last
reference

Revision ID: 0014_files
Revises: 0015_perf
Create Date: 2026-12-07 01:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_files"
down_revision: str | Sequence[str] | None = "0015_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_refs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("file_key", sa.String(length=64), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_file_refs")),
        sa.UniqueConstraint(
            "tenant_id", "owner_kind", "owner_id", "file_key", name=op.f("uq_file_refs_tenant_id_owner_kind_owner_id_file_key")
        ),
    )
    op.create_index(op.f("ix_file_refs_file_key"), "file_refs", ["file_key"], unique=False)
    op.create_index(op.f("ix_file_refs_tenant_id_customer_id"), "file_refs", ["tenant_id", "customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_file_refs_tenant_id_customer_id"), table_name="file_refs")
    op.drop_index(op.f("ix_file_refs_file_key"), table_name="file_refs")
    op.drop_table("file_refs")
