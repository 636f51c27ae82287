"""The raw events kept in ``douyin_events`` and the people they are about: a customer's export
and erasure find them by the open_id / union_id of the customer's identities, and ignored events
(whose body may hold what someone wrote) are purged after ``ignored_event_retention_days`` by a
daily job (``douyin.purge_ignored``, scheduled for a tenant when it connects an account)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, or_, select, update

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import JobRun
from guanxi.core.domain.models import Identity, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.schedule import schedule_job
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.douyin.callbacks import CHANNEL
from guanxi.plugins.douyin.models import DouyinEvent
from guanxi.plugins.douyin.state import douyin_state

PURGE_JOB = "douyin.purge_ignored"
#: daily, at a quiet hour of the tenant's time zone
PURGE_CRON = "23 3 * * *"


def _about(identities: Sequence[tuple[str, str, str | None]]) -> ColumnElement[bool]:
    """Events whose other party is one of these identities: a Douyin open_id, or a union_id of
    any channel (the same person met on WeCom and Douyin)."""
    open_ids = sorted({external for channel, external, _ in identities if channel == CHANNEL and external})
    union_ids = sorted({union for _, _, union in identities if union})
    found: list[ColumnElement[bool]] = []
    if open_ids:
        found.append(DouyinEvent.user_open_id.in_(open_ids))
    if union_ids:
        found.append(DouyinEvent.user_union_id.in_(union_ids))
    return or_(*found) if found else false()


async def customer_identities(session: TenantSession, customer_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    rows = await session.execute(
        select(Identity.channel, Identity.external_id, Identity.union_id).where(Identity.customer_id == customer_id)
    )
    return [(r.channel, r.external_id, r.union_id) for r in rows]


async def export_events(session: TenantSession, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """The kept events about the customer, with their raw body."""
    about = _about(await customer_identities(session, customer_id))
    rows = (await session.execute(select(DouyinEvent).where(about).order_by(DouyinEvent.received_at, DouyinEvent.dedupe_key))).scalars()
    return [
        {
            "event": r.event,
            "status": r.status,
            "account_open_id": r.account_open_id,
            "received_at": r.received_at.isoformat(),
            "body": r.body,
        }
        for r in rows
    ]


async def erase_events(session: TenantSession, identities: Sequence[tuple[str, str, str | None]]) -> int:
    """Blank the kept events about these identities (the row stays, so a late retry of the same
    delivery is still recognised as a duplicate); only rows still holding something count."""
    result = await session.execute(
        update(DouyinEvent)
        .where(_about(identities))
        .values(body={}, user_open_id=None, user_union_id=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def schedule_purge(tx: Tx) -> None:
    """The tenant's daily purge of old ignored events (scheduling it again changes nothing)."""
    await schedule_job(tx, PURGE_JOB, PURGE_JOB, cron=PURGE_CRON)


async def purge_ignored(tx: Tx, *, now: dt.datetime | None = None) -> int:
    """Delete the tenant's ignored events older than the retention setting; 0 days keeps them."""
    days = douyin_state(tx.runtime).settings.ignored_event_retention_days
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    result = await tx.session.execute(
        delete(DouyinEvent)
        .where(and_(DouyinEvent.status == "ignored", DouyinEvent.received_at < cutoff))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def run_purge(job: JobRun) -> None:
    async with job.runtime.transaction(RequestContext(tenant_id=job.tenant_id)) as tx:
        await purge_ignored(tx, now=job.slot_at)
