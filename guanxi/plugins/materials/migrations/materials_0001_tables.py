"""materials library, radar shares, visitors and views

Revision ID: materials_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "materials_0001"
down_revision = None
branch_labels = ("materials",)
depends_on = None  # a separate history; core is always upgraded first

TZ = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column], [f"{target}.tenant_id", f"{target}.id"], name=f"fk_{table}_tenant_id_{column}_{target}"
    )


def upgrade() -> None:
    op.create_table(
        "materials_materials",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("file_key", sa.String(64), nullable=True),
        sa.Column("media_type", sa.String(64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("folder", sa.String(200), nullable=False),
        sa.Column("tags", sa.String(1000), nullable=False),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_materials_materials_tenant_id_tenants"),
        _fk("materials_materials", "owner_id", "users"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_materials_materials"),
    )
    op.create_index("ix_materials_materials_tenant_id_folder", "materials_materials", ["tenant_id", "folder"])
    op.create_table(
        "materials_shares",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("material_id", sa.Uuid(), nullable=False),
        sa.Column("sharer_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _fk("materials_shares", "material_id", "materials_materials"),
        _fk("materials_shares", "sharer_id", "users"),
        _fk("materials_shares", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_materials_shares"),
    )
    op.create_index("ix_materials_shares_id", "materials_shares", ["id"], unique=True)
    op.create_index("ix_materials_shares_tenant_id_customer_id", "materials_shares", ["tenant_id", "customer_id"])
    op.create_table(
        "materials_visitors",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _fk("materials_visitors", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_materials_visitors"),
    )
    op.create_index("ix_materials_visitors_tenant_id_customer_id", "materials_visitors", ["tenant_id", "customer_id"])
    op.create_table(
        "materials_views",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("share_id", sa.Uuid(), nullable=False),
        sa.Column("material_id", sa.Uuid(), nullable=False),
        sa.Column("sharer_id", sa.Uuid(), nullable=False),
        sa.Column("visitor_id", sa.Uuid(), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("read_ms", sa.Integer(), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        _fk("materials_views", "share_id", "materials_shares"),
        _fk("materials_views", "visitor_id", "materials_visitors"),
        _fk("materials_views", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_materials_views"),
    )
    op.create_index("ix_materials_views_tenant_id_material_id", "materials_views", ["tenant_id", "material_id"])
    op.create_index("ix_materials_views_tenant_id_customer_id", "materials_views", ["tenant_id", "customer_id"])


def downgrade() -> None:
    op.drop_table("materials_views")
    op.drop_table("materials_visitors")
    op.drop_table("materials_shares")
    op.drop_table("materials_materials")
