"""douyin: the person an event kept in douyin_events is about (export, erasure, retention)

Revision ID: douyin_0002
Revises: douyin_0001
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "douyin_0002"
down_revision = "douyin_0001"
branch_labels = None
depends_on = None

EVENTS = sa.table(
    "douyin_events",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("dedupe_key", sa.String()),
    sa.column("event", sa.String()),
    sa.column("account_open_id", sa.String()),
    sa.column("status", sa.String()),
    sa.column("body", sa.JSON()),
    sa.column("user_open_id", sa.String()),
    sa.column("user_union_id", sa.String()),
)


def _person(event: str, account: str | None, body: Any) -> tuple[str | None, str | None]:
    """The other party of an ignored event, as the webhook now records it (``routes._keep``)."""
    if isinstance(body, str):
        body = json.loads(body)
    if not isinstance(body, dict):
        return None, None
    content: dict[str, Any] = body["content"] if isinstance(body.get("content"), dict) else {}
    others = [o for o in (body.get("from_user_id"), body.get("to_user_id")) if o and o != account]
    open_id = str(content.get("comment_user_id") or "") if event == "item_comment_reply" else ""
    open_id = (open_id or (str(others[0]) if others else ""))[:128]
    if not open_id:
        return None, None
    for info in content.get("user_infos") or []:
        if isinstance(info, dict) and info.get("open_id") == open_id and info.get("union_id"):
            return open_id, str(info["union_id"])[:128]
    return open_id, None


def upgrade() -> None:
    with op.batch_alter_table("douyin_events") as batch:
        batch.add_column(sa.Column("user_open_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("user_union_id", sa.String(128), nullable=True))
    op.create_index("ix_douyin_events_tenant_id_user_open_id", "douyin_events", ["tenant_id", "user_open_id"])
    op.create_index("ix_douyin_events_tenant_id_user_union_id", "douyin_events", ["tenant_id", "user_union_id"])
    op.create_index("ix_douyin_events_tenant_id_status_received_at", "douyin_events", ["tenant_id", "status", "received_at"])
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(EVENTS.c.tenant_id, EVENTS.c.dedupe_key, EVENTS.c.event, EVENTS.c.account_open_id, EVENTS.c.body).where(
            EVENTS.c.status == "ignored"
        )
    )
    for row in rows.all():
        open_id, union_id = _person(row.event, row.account_open_id, row.body)
        if open_id:
            conn.execute(
                sa.update(EVENTS)
                .where(EVENTS.c.tenant_id == row.tenant_id, EVENTS.c.dedupe_key == row.dedupe_key)
                .values(user_open_id=open_id, user_union_id=union_id)
            )


def downgrade() -> None:
    op.drop_index("ix_douyin_events_tenant_id_status_received_at", "douyin_events")
    op.drop_index("ix_douyin_events_tenant_id_user_union_id", "douyin_events")
    op.drop_index("ix_douyin_events_tenant_id_user_open_id", "douyin_events")
    with op.batch_alter_table("douyin_events") as batch:
        batch.drop_column("user_union_id")
        batch.drop_column("user_open_id")
