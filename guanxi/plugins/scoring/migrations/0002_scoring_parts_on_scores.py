"""scoring: a score's parts as one JSON array on its row (``scoring_scores.parts``)

The parts were rows of ``scoring_parts``, about six per customer; a recompute deleted and wrote
them all again, each with its primary-key entry and foreign-key check: on PostgreSQL two thirds of
a recompute's time. They move onto the score's row, as they are: the upgrade copies every part
into its score's array and drops the table. The downgrade recreates the table from the arrays.

Revision ID: scoring_0002
Revises: scoring_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scoring_0002"
down_revision = "scoring_0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
#: a part's fields, in the order of its stored array (guanxi.plugins.scoring.parts.KEYS, written
#: out: a migration does not import the code it migrates)
KEYS = ("component", "item", "count", "skipped", "value", "measure", "first_at", "last_at", "reasons")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("scoring_scores") as batch:
        batch.add_column(sa.Column("parts", sa.JSON(), nullable=False, server_default="[]"))
    values = ", ".join(f"p.{k}" if pg or k != "reasons" else "json(p.reasons)" for k in KEYS)
    array = f"json_agg(json_build_array({values}))" if pg else f"json_group_array(json_array({values}))"
    empty = "CAST('[]' AS JSON)" if pg else "'[]'"
    op.execute(
        f"UPDATE scoring_scores SET parts = coalesce((SELECT {array} FROM scoring_parts AS p"
        f" WHERE p.tenant_id = scoring_scores.tenant_id AND p.customer_id = scoring_scores.customer_id), {empty})"
    )
    op.drop_table("scoring_parts")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "scoring_parts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("item", sa.String(100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("measure", sa.Float(), nullable=True),
        sa.Column("first_at", TS, nullable=True),
        sa.Column("last_at", TS, nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], name="fk_scoring_parts_tenant_id_customer_id_customers"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "component", "item", name="pk_scoring_parts"),
    )
    if pg:
        op.execute(
            "INSERT INTO scoring_parts SELECT s.tenant_id, s.customer_id, e->>0, e->>1, (e->>2)::int, (e->>3)::int,"
            " (e->>4)::float, (e->>5)::float, (e->>6)::timestamptz, (e->>7)::timestamptz, coalesce(e->8, '[]'::json)"
            " FROM scoring_scores AS s, json_array_elements(s.parts) AS e"
        )
    else:
        op.execute(
            "INSERT INTO scoring_parts SELECT s.tenant_id, s.customer_id, json_extract(e.value, '$[0]'),"
            " json_extract(e.value, '$[1]'), json_extract(e.value, '$[2]'), json_extract(e.value, '$[3]'),"
            " json_extract(e.value, '$[4]'), json_extract(e.value, '$[5]'), json_extract(e.value, '$[6]'),"
            " json_extract(e.value, '$[7]'), coalesce(json_extract(e.value, '$[8]'), '[]')"
            " FROM scoring_scores AS s, json_each(s.parts) AS e"
        )
    with op.batch_alter_table("scoring_scores") as batch:
        batch.drop_column("parts")
