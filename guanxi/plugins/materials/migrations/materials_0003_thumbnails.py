"""materials: thumbnails of uploaded images

Revision ID: materials_0003
Revises: materials_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "materials_0003"
down_revision = "materials_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("materials_materials") as batch:
        batch.add_column(sa.Column("thumb_key", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("materials_materials") as batch:
        batch.drop_column("thumb_key")
