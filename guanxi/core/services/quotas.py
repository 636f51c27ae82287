"""Per-tenant quotas: customers, API requests per second, outbound messages per day per channel.

The limits are the deployment's ``[quotas]`` unless the operator set the tenant's own
(``tenants.quotas``; 0 means no limit). They are enforced where the work happens (creating a
customer, the GraphQL endpoint, queueing a message) and counted in the database, so that they
hold across every process of a deployment:

* customers: the tenant's live customers (not merged away) are counted under a lock of the
  tenant's ``customers`` counter row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one writer),
  so two processes cannot both create the last allowed one;
* requests and messages: one counter row per window (the current second; the tenant's current
  day), incremented with one atomic upsert whose result is compared with the limit.

A refusal is :class:`QuotaExceededError` (``QUOTA_EXCEEDED``) naming the limit. Nothing is
counted or locked for a limit that is not set.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
import zoneinfo
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guanxi.core.base.errors import QuotaExceededError, ValidationError
from guanxi.core.domain.models import Customer, TenantUsage
from guanxi.core.runtime import Runtime, TenantPlugins, Tx
from guanxi.core.storage.tenancy import ALL_OWNERS, TenantSession

KEYS = ("customers", "requests_per_s", "messages_per_day")


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    customers: int = 0
    requests_per_s: int = 0
    messages_per_day: dict[str, int] = msgspec.field(default_factory=dict)

    def messages(self, channel: str) -> int:
        return self.messages_per_day.get(channel, self.messages_per_day.get("*", 0))


def limits(runtime: Runtime, state: TenantPlugins) -> Limits:
    """The tenant's limits: the operator's overrides over the deployment's ``[quotas]``."""
    base = runtime.settings.quotas
    own = state.quotas
    return Limits(
        customers=int(own.get("customers", base.customers)),
        requests_per_s=int(own.get("requests_per_s", base.requests_per_s)),
        messages_per_day=dict(own.get("messages_per_day", base.messages_per_day)),
    )


def check_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the operator's quota overrides (None for a key: back to the deployment's)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in KEYS:
            raise ValidationError(f"unknown quota {key!r} (quotas: {', '.join(KEYS)})", field=f"quotas.{key}")
        if value is None:
            continue
        if key == "messages_per_day":
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in value.items()):
                raise ValidationError("messages_per_day maps channel names (or *) to a count >= 0", field="quotas.messages_per_day")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValidationError(f"{key} must be a whole number >= 0 (0: no limit)", field=f"quotas.{key}")
        out[key] = value
    return out


def _upsert(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def _increment(session: TenantSession, dialect: str, metric: str, window: str) -> int:
    """Add one to a counter row (created at 1) and return its new value: one atomic statement."""
    table = TenantUsage.__table__
    stmt = _upsert(dialect)(table).values(tenant_id=session.tenant_id, metric=metric, window=window, used=1)
    stmt = stmt.on_conflict_do_update(index_elements=["tenant_id", "metric", "window"], set_={"used": table.c.used + 1})
    result = await session.execute(stmt.returning(table.c.used))
    return int(result.scalar_one())


def _live_customers() -> Any:
    """The tenant's customers not merged away, whoever owns them (a salesperson's session too)."""
    stmt = select(func.count()).select_from(Customer).where(Customer.merged_into_id.is_(None))
    return stmt.execution_options(**{ALL_OWNERS: True})


def today(state: TenantPlugins, now: dt.datetime | None = None) -> str:
    """The tenant's current day (its time zone), the window of daily quotas."""
    zone = zoneinfo.ZoneInfo(state.time_zone)
    return (now or dt.datetime.now(dt.UTC)).astimezone(zone).date().isoformat()


async def check_new_customers(tx: Tx, adding: int = 1) -> None:
    """Refuse creating ``adding`` customers beyond the tenant's ``customers`` limit. Call it in
    the creating transaction, before the insert."""
    state = await tx.runtime.tenant_plugins(tx.tenant_id, session=tx.session)
    limit = limits(tx.runtime, state).customers
    if not limit:
        return
    session = tx.session
    dialect = tx.runtime.engine.dialect.name
    # the tenant's customers counter row, locked until commit: concurrent creators wait here
    table = TenantUsage.__table__
    await session.execute(
        _upsert(dialect)(table).values(tenant_id=tx.tenant_id, metric="customers", window="", used=0).on_conflict_do_nothing()
    )
    lock = select(TenantUsage.used).where(TenantUsage.metric == "customers", TenantUsage.window == "")
    if dialect == "postgresql":
        lock = lock.with_for_update()
    await session.execute(lock)
    live = (await session.execute(_live_customers())).scalar_one()
    if live + adding > limit:
        raise QuotaExceededError(f"quota exceeded: customers = {limit} for this tenant ({live} exist)", field="customers")


async def count_request(runtime: Runtime, tenant_id: uuid.UUID) -> str | None:
    """Count one API request of the tenant in the current second; the refusal message when it
    is over ``requests_per_s`` (None: allowed, or no limit, which costs nothing)."""
    state = await runtime.tenant_plugins(tenant_id)
    limit = limits(runtime, state).requests_per_s
    if not limit:
        return None
    window = str(int(time.time()))
    async with runtime.write_session(tenant_id) as session:
        used = await _increment(session, runtime.engine.dialect.name, "requests", window)
        if used == 1:  # the first request of a second: forget the counters of earlier seconds
            await session.execute(delete(TenantUsage).where(TenantUsage.metric == "requests", TenantUsage.window < window))
    if used > limit:
        return f"quota exceeded: requests_per_s = {limit} for this tenant"
    return None


async def count_message(tx: Tx, channel: str) -> None:
    """Count one outbound message of the tenant on ``channel`` today (its time zone), in the
    queueing transaction; over ``messages_per_day`` the message is refused (and not counted)."""
    state = await tx.runtime.tenant_plugins(tx.tenant_id, session=tx.session)
    limit = limits(tx.runtime, state).messages(channel)
    if not limit:
        return
    used = await _increment(tx.session, tx.runtime.engine.dialect.name, f"messages:{channel}", today(state))
    if used > limit:
        raise QuotaExceededError(f"quota exceeded: messages_per_day[{channel}] = {limit} for this tenant today", field="channel")


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    limit: int
    used: int
    window: str


async def usage(runtime: Runtime, session: TenantSession) -> list[Usage]:
    """The tenant's limits and what it used: customers, requests this second, messages today
    per channel (each channel with a limit or with messages today)."""
    state = await runtime.tenant_plugins(session.tenant_id)
    lim = limits(runtime, state)
    live = (await session.execute(_live_customers())).scalar_one()
    day, second = today(state), str(int(time.time()))
    rows = (await session.execute(select(TenantUsage).where(TenantUsage.window.in_([day, second])))).scalars().all()
    counted = {(r.metric, r.window): r.used for r in rows}
    out = [
        Usage(name="customers", limit=lim.customers, used=int(live), window="all time"),
        Usage(name="requests_per_s", limit=lim.requests_per_s, used=counted.get(("requests", second), 0), window=second),
    ]
    channels = sorted(
        {m.removeprefix("messages:") for m, w in counted if m.startswith("messages:") and w == day} | set(lim.messages_per_day)
    )
    for channel in channels:
        used = counted.get((f"messages:{channel}", day), 0)
        out.append(Usage(name=f"messages_per_day[{channel}]", limit=lim.messages(channel), used=used, window=day))
    return out
