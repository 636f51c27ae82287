"""douyin: the daily purge of ignored events for tenants connected before it existed

The purge job (``douyin.purge_ignored``, douyin_0002's retention) is scheduled when a tenant
connects an account. A tenant that connected before, or that kept ignored events without ever
finishing a connection, had none: its ignored events (which may hold what someone wrote) were
kept for ever. This schedules the job for every tenant with an authorization or a kept event
and no such job. It runs at the next scheduler tick, then daily at 03:23 in the tenant's time
zone, as a job scheduled by the plugin does.

Revision ID: douyin_0003
Revises: douyin_0002
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from alembic import op

revision = "douyin_0003"
down_revision = "douyin_0002"
branch_labels = None
depends_on = None

#: guanxi.plugins.douyin.privacy's PURGE_JOB and PURGE_CRON, as of this revision
JOB = "douyin.purge_ignored"
CRON = "23 3 * * *"

JOBS = sa.table(
    "scheduled_jobs",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("key", sa.String()),
    sa.column("payload", sa.JSON()),
    sa.column("cron", sa.String()),
    sa.column("catch_up", sa.Boolean()),
    sa.column("status", sa.String()),
    sa.column("slot_at", sa.DateTime(timezone=True)),
    sa.column("attempts", sa.Integer()),
    sa.column("max_attempts", sa.Integer()),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("runs", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("created_by", sa.String()),
)
AUTHORIZATIONS = sa.table("douyin_authorizations", sa.column("tenant_id", sa.Uuid()))
EVENTS = sa.table("douyin_events", sa.column("tenant_id", sa.Uuid()))


def upgrade() -> None:
    conn = op.get_bind()
    tenants = {t for (t,) in conn.execute(sa.union(sa.select(AUTHORIZATIONS.c.tenant_id), sa.select(EVENTS.c.tenant_id)))}
    scheduled = {t for (t,) in conn.execute(sa.select(JOBS.c.tenant_id).where(JOBS.c.key == JOB))}
    now = dt.datetime.now(dt.UTC)
    # SQLite keeps naive UTC text (the models' UTCDateTime); PostgreSQL a timestamptz
    at = now.replace(tzinfo=None) if conn.dialect.name == "sqlite" else now
    rows = [
        {
            "tenant_id": tenant,
            "id": uuid.uuid4(),
            "kind": JOB,
            "key": JOB,
            "payload": {},
            "cron": CRON,
            "catch_up": False,
            "status": "scheduled",
            "slot_at": at,
            "attempts": 0,
            "max_attempts": 5,
            "next_attempt_at": at,
            "runs": 0,
            "created_at": at,
            "created_by": "migration douyin_0003",
        }
        for tenant in sorted(tenants - scheduled)
    ]
    if rows:
        conn.execute(JOBS.insert(), rows)


def downgrade() -> None:
    """The jobs stay: they are what the plugin schedules itself on a connection."""
