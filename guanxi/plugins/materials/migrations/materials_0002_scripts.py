"""scripts (话术) and their usage per salesperson

Revision ID: materials_0002
Revises: materials_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "materials_0002"
down_revision = "materials_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column], [f"{target}.tenant_id", f"{target}.id"], name=f"fk_{table}_tenant_id_{column}_{target}"
    )


def upgrade() -> None:
    op.create_table(
        "materials_scripts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scene", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_materials_scripts_tenant_id_tenants"),
        _fk("materials_scripts", "created_by", "users"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_materials_scripts"),
    )
    op.create_index("ix_materials_scripts_tenant_id_scene", "materials_scripts", ["tenant_id", "scene"])
    op.create_table(
        "materials_script_uses",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("script_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_used_at", TZ, nullable=False),
        _fk("materials_script_uses", "script_id", "materials_scripts"),
        _fk("materials_script_uses", "user_id", "users"),
        sa.PrimaryKeyConstraint("tenant_id", "script_id", "user_id", name="pk_materials_script_uses"),
    )


def downgrade() -> None:
    op.drop_table("materials_script_uses")
    op.drop_table("materials_scripts")
