"""materials: mini-program cards (app id and page path; the cover is the uploaded image)

Revision ID: materials_0004
Revises: materials_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "materials_0004"
down_revision = "materials_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("materials_materials") as batch:
        batch.add_column(sa.Column("appid", sa.String(32), nullable=True))
        batch.add_column(sa.Column("page_path", sa.String(400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("materials_materials") as batch:
        batch.drop_column("page_path")
        batch.drop_column("appid")
