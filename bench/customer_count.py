"""Benchmark: a tenant's unfiltered customer count, maintained (``customer_counts``) against ``count(*)``.

    python bench/customer_count.py --customers 100000 --json [--database-url URL]

Seeds a fresh SQLite database (or ``--database-url``) with a tenant of ``--customers`` customers
(2% merged away) beside another tenant of half as many, then, alternating in one run:

- the count as it was read before migration ``0023_counts``: ``count(*) … WHERE tenant_id = ?
  AND merged_into_id IS NULL`` (a range of the ``(tenant_id, merged_into_id)`` index), against
  the maintained count, ``sum(n)`` of the tenant's rows of ``customer_counts`` (``ratio``: how
  many times faster the maintained count is; both must give the same number);
- what the triggers cost writers: a bulk insert of ``--batch`` customers and ``--singles``
  one-row inserts, with the triggers and with them dropped, each in a transaction rolled back
  (DDL is transactional on both databases, so nothing changes).

Prints the figures (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import bindparam, insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.services import counts  # noqa: E402
from guanxi.core.storage.statistics import refresh_statistics  # noqa: E402

_T = m.Customer.__table__.c.tenant_id.type
BEFORE = text("SELECT count(*) FROM customers WHERE tenant_id = :tid AND merged_into_id IS NULL").bindparams(bindparam("tid", type_=_T))
AFTER = text("SELECT coalesce(sum(n), 0) FROM customer_counts WHERE tenant_id = :tid").bindparams(bindparam("tid", type_=_T))
TRIGGERS = ("customer_counts_inserted", "customer_counts_deleted", "customer_counts_merged")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rows(tenant_id: uuid.UUID, lo: int, hi: int, merged_into: uuid.UUID | None, start: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": tenant_id,
            "id": new_id(),
            "display_name": f"Customer {i}",
            "phones": [],
            "emails": [],
            "attributes": {},
            "search_text": f"customer {i}",
            "merged_into_id": merged_into if i % 50 == 49 else None,
            "created_at": start + dt.timedelta(seconds=i),
            "updated_at": start + dt.timedelta(seconds=i),
        }
        for i in range(lo, hi)
    ]


async def seed(runtime: Runtime, n: int, batch: int = 5000) -> uuid.UUID:
    from guanxi.core.services.pipelines import create_tenant

    tenants = []
    for size in (n, n // 2):
        async with runtime.session(None) as session, session.begin():
            tid = await create_tenant(session, f"count-{secrets.token_hex(4)}", "Count bench")
        tenants.append(tid)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        survivor = new_id()
        async with runtime.session(tid) as session, session.begin():
            await session.execute(insert(m.Customer), [{**rows(tid, 0, 1, None, start)[0], "id": survivor}])  # the merged ones' survivor
        for lo in range(1, size, batch):
            async with runtime.session(tid) as session, session.begin():
                await session.execute(insert(m.Customer), rows(tid, lo, min(size, lo + batch), survivor, start))
    return tenants[0]


async def timed(conn: AsyncConnection, stmt: Any, tid: uuid.UUID) -> tuple[float, int]:
    t0 = time.perf_counter()
    value = int((await conn.execute(stmt, {"tid": tid})).scalar_one())
    return time.perf_counter() - t0, value


async def drop_triggers(conn: AsyncConnection) -> None:
    for name in TRIGGERS:
        on = " ON customers" if conn.dialect.name == "postgresql" else ""
        await conn.execute(text(f"DROP TRIGGER {name}{on}"))


async def writes(runtime: Runtime, tid: uuid.UUID, batch: int, singles: int, triggers: bool) -> tuple[float, float]:
    """Seconds of a bulk insert of ``batch`` customers and of ``singles`` one-row inserts, in a
    transaction rolled back (with the triggers dropped first when ``triggers`` is false)."""
    start = dt.datetime.now(dt.UTC)
    async with runtime.engine.connect() as conn:
        tx = await conn.begin()
        try:
            if not triggers:
                await drop_triggers(conn)
            bulk = rows(tid, 10_000_000, 10_000_000 + batch, None, start)
            t0 = time.perf_counter()
            await conn.execute(insert(m.Customer), bulk)
            t1 = time.perf_counter()
            for r in rows(tid, 20_000_000, 20_000_000 + singles, None, start):
                await conn.execute(insert(m.Customer), r)
            t2 = time.perf_counter()
        finally:
            await tx.rollback()
    return t1 - t0, t2 - t1


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from guanxi.core.migrate import upgrade

    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": url, "GUANXI__AUTH__SECRET": secrets.token_hex(32)})
    try:
        await upgrade(runtime)
        t0 = time.perf_counter()
        tid = await seed(runtime, args.customers)
        seed_seconds = time.perf_counter() - t0
        log(f"seeded {args.customers:,} (+{args.customers // 2:,}) customers in {seed_seconds:.1f}s")
        async with runtime.engine.begin() as conn:
            await refresh_statistics(conn)  # PostgreSQL: statistics that know the seeded tenant
        # the seed's executemany fired the count's trigger once per row: on PostgreSQL a row of
        # customer_counts each, until the job core.counts_fold (every minute) folds them
        async with runtime.engine.connect() as conn:
            await timed(conn, AFTER, tid)  # warm
            unfolded_ms = statistics.median([(await timed(conn, AFTER, tid))[0] for _ in range(5)]) * 1000
        folded_rows = await counts.fold(runtime)
        before: list[float] = []
        after: list[float] = []
        values = set()
        async with runtime.engine.connect() as conn:
            for stmt in (BEFORE, AFTER):  # warm the caches once
                await timed(conn, stmt, tid)
            for i in range(args.repeats):
                order = ((BEFORE, before), (AFTER, after)) if i % 2 == 0 else ((AFTER, after), (BEFORE, before))
                for stmt, out in order:
                    seconds, value = await timed(conn, stmt, tid)
                    out.append(seconds)
                    values.add(value)
            await conn.rollback()
        bulk_on: list[float] = []
        bulk_off: list[float] = []
        one_on: list[float] = []
        one_off: list[float] = []
        for i in range(args.write_rounds):
            for triggers in (True, False) if i % 2 == 0 else (False, True):
                bulk, singles = await writes(runtime, tid, args.batch, args.singles, triggers)
                (bulk_on if triggers else bulk_off).append(bulk)
                (one_on if triggers else one_off).append(singles)
    finally:
        await runtime.engine.dispose()
    live = args.customers - args.customers // 50
    p50_before, p50_after = statistics.median(before), statistics.median(after)
    return {
        "customers": args.customers,
        "live_customers": live,
        "other_tenant_customers": args.customers // 2,
        "repeats": args.repeats,
        "count_before_p50_ms": round(p50_before * 1000, 3),
        "count_after_p50_ms": round(p50_after * 1000, 3),
        "ratio": round(p50_before / p50_after, 2) if p50_after else None,
        "same_count": values == {live},
        "bulk_insert_rows": args.batch,
        "bulk_insert_ms_with_triggers": round(statistics.median(bulk_on) * 1000, 2),
        "bulk_insert_ms_without_triggers": round(statistics.median(bulk_off) * 1000, 2),
        "single_inserts": args.singles,
        "single_insert_us_with_triggers": round(statistics.median(one_on) / args.singles * 1e6, 1),
        "single_insert_us_without_triggers": round(statistics.median(one_off) / args.singles * 1e6, 1),
        "seed_seconds": round(seed_seconds, 1),
        "count_before_fold_ms": round(unfolded_ms, 3),
        "rows_folded": folded_rows,  # of both tenants
        "database": url.split("+", 1)[0].split(":", 1)[0],
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=21, help="timed counts per side (alternating)")
    p.add_argument("--batch", type=int, default=2000, help="customers of the bulk insert")
    p.add_argument("--singles", type=int, default=200, help="one-row inserts")
    p.add_argument("--write-rounds", type=int, default=4, help="alternating rounds of the write measurements")
    p.add_argument("--database-url", help="use this database (e.g. PostgreSQL) instead of a fresh SQLite file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_smoke(p, customers=300, repeats=3, batch=50, singles=10, write_rounds=2)
    args = parse(p, argv)
    with tempfile.TemporaryDirectory(prefix="guanxi-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'count.db'}"
        result = asyncio.run(run(url, args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")
    return 0 if result["same_count"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
