"""automation: journeys, their versions, customers' runs and the steps they took

Revision ID: automation_0002
Revises: automation_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "automation_0002"
down_revision = "automation_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "automation_journeys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trigger_type", sa.String(32), nullable=False),
        sa.Column("trigger_value", sa.String(200), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_automation_journeys_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_automation_journeys"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_automation_journeys_tenant_id_key"),
    )
    op.create_table(
        "automation_journey_versions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("journey_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "journey_id"],
            ["automation_journeys.tenant_id", "automation_journeys.id"],
            name="fk_automation_journey_versions_journey",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "journey_id", "version", name="pk_automation_journey_versions"),
    )
    op.create_table(
        "automation_journey_runs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("journey_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(48), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("waiting_since", TZ, nullable=True),
        sa.Column("event_seen", sa.Boolean(), nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "journey_id"],
            ["automation_journeys.tenant_id", "automation_journeys.id"],
            name="fk_automation_journey_runs_journey",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_automation_journey_runs"),
        sa.UniqueConstraint("tenant_id", "journey_id", "version", "customer_id", name="uq_automation_journey_runs_version_customer"),
    )
    op.create_index("ix_automation_journey_runs_claim", "automation_journey_runs", ["status", "next_attempt_at"])
    op.create_index(
        "ix_automation_journey_runs_tenant_id_customer_id_status", "automation_journey_runs", ["tenant_id", "customer_id", "status"]
    )
    op.create_index(
        "ix_automation_journey_runs_tenant_id_journey_id_status_step",
        "automation_journey_runs",
        ["tenant_id", "journey_id", "status", "step"],
    )
    op.create_table(
        "automation_journey_steps",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("journey_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(48), nullable=False),
        sa.Column("step_type", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_automation_journey_steps"),
        sa.UniqueConstraint("tenant_id", "run_id", "seq", name="uq_automation_journey_steps_tenant_id_run_id_seq"),
    )
    op.create_index(
        "ix_automation_journey_steps_tenant_id_journey_id_step_outcome",
        "automation_journey_steps",
        ["tenant_id", "journey_id", "step", "outcome"],
    )
    op.create_index("ix_automation_journey_steps_tenant_id_journey_id_at", "automation_journey_steps", ["tenant_id", "journey_id", "at"])
    op.create_index("ix_automation_journey_steps_tenant_id_customer_id_at", "automation_journey_steps", ["tenant_id", "customer_id", "at"])


def downgrade() -> None:
    op.drop_table("automation_journey_steps")
    op.drop_table("automation_journey_runs")
    op.drop_table("automation_journey_versions")
    op.drop_table("automation_journeys")
