"""materials: archiving a material (hidden from the library, no new links; links sent stay open)

Revision ID: materials_0005
Revises: materials_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "materials_0005"
down_revision = "materials_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("materials_materials") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("materials_materials") as batch:
        batch.drop_column("archived_at")
