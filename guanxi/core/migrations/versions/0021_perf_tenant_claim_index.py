"""perf: claiming one tenant's inbox rows reads only its due rows

``claim(…, tenant_id=…)`` (``inbox.run_once`` for one tenant) filters on ``tenant_id`` and on the
due status. SQLite chose the ``(tenant_id, received_at)`` index for the tenant equality and read
every inbox row the tenant had ever received, ``done`` ones included: the statement that grew
most in ``bench/soak.py`` (300 SQLite virtual-machine steps at the start of a 10-minute run,
54,100 at the end). ``(tenant_id, status, next_attempt_at)`` serves both branches of the due
condition for one tenant.

Revision ID: 0021_perf
Revises: 0016_compile
Create Date: 2026-12-07 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021_perf"
down_revision: str | Sequence[str] | None = "0016_compile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_events_tenant_claim", "inbox_events", ["tenant_id", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_events_tenant_claim", table_name="inbox_events")
