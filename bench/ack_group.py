"""The webhook ack's write: group commit vs one transaction per ack, in process.

    python bench/ack_group.py [--events 2000] [--concurrency 16] [--rounds 4] [--json] [--database-url URL]

Seeds nothing but a tenant, then stores ``--events`` distinct inbound events per side with
``--concurrency`` concurrent callers, in alternating rounds (so the machine's drift hits both):

* **grouped**: :func:`guanxi.core.queues.inbox.ingest`, what the webhook route calls: the rows
  waiting when the write slot comes free share one transaction and one multi-row
  ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` (:mod:`guanxi.core.queues.group_commit`);
* **per-ack**: the previous way, each row its own write transaction with its own insert (the
  same values, the same write slot, the same statement shape).

No HTTP and no inbox worker: this isolates the write on the ack path (the HTTP benches
``ingest.py`` and ``wecom_ingest.py`` measure the whole route). ``acks_per_s``,
``baseline_acks_per_s`` (per-ack), ``ratio`` = grouped / per-ack, p50/p99 per ack of each, and
``inserts_per_ack`` (INSERT statements / acks) of the grouped side.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: E402
from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import pct  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain.channels import InboundEvent, ProfileInput  # noqa: E402
from guanxi.core.domain.models import InboxEvent, utcnow  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.queues import inbox  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.storage.db import write_transaction  # noqa: E402
from guanxi.testing.sql import count_statements  # noqa: E402

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def event(side: str, n: int) -> InboundEvent:
    return InboundEvent(
        channel="bench",
        provider_event_id=f"{side}-{n}",
        occurred_at=T0 + dt.timedelta(seconds=n),
        identity=ProfileInput(external_id=f"u-{n % 500}", nickname="bench"),
        kind="message_in",
        text=f"hello {n}",
    )


async def per_ack(rt: Runtime, tenant_id: uuid.UUID, e: InboundEvent) -> None:
    """The ack's write before group commit: its own transaction."""
    values = {
        "tenant_id": tenant_id,
        "id": new_id(),
        "channel": e.channel,
        "provider_event_id": e.provider_event_id,
        "received_at": utcnow(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "event": msgspec.to_builtins(e),
        "trace_context": None,
    }
    insert = pg_insert if rt.engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(InboxEvent).values(**values).on_conflict_do_nothing().returning(InboxEvent.id)
    async with write_transaction(rt.engine) as conn:
        (await conn.execute(stmt)).scalar_one_or_none()


async def drive(events: list[InboundEvent], concurrency: int, store: Callable[[InboundEvent], Awaitable[Any]]) -> tuple[float, list[float]]:
    queue = list(reversed(events))
    latencies: list[float] = []

    async def loop() -> None:
        while queue:
            e = queue.pop()
            t = time.perf_counter()
            await store(e)
            latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from guanxi.core.services.pipelines import create_tenant

    rt = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": url})
    try:
        await upgrade(rt)
        async with rt.session(None) as s, s.begin():
            tenant_id = await create_tenant(s, f"ack-{secrets.token_hex(3)}", "Ack benchmark")
        per_round = max(1, args.events // args.rounds)
        timing: dict[str, float] = {"grouped": 0.0, "per_ack": 0.0}
        lat: dict[str, list[float]] = {"grouped": [], "per_ack": []}
        inserts = 0
        for r in range(args.rounds):
            sides = ["grouped", "per_ack"] if r % 2 == 0 else ["per_ack", "grouped"]
            for side in sides:
                events = [event(side, r * per_round + i) for i in range(per_round)]
                if side == "grouped":
                    with count_statements(rt.engine) as seen:
                        took, ls = await drive(events, args.concurrency, lambda e: inbox.ingest(rt, tenant_id, e))
                    inserts += sum(1 for s in seen if s.lstrip().upper().startswith("INSERT"))
                else:
                    took, ls = await drive(events, args.concurrency, lambda e: per_ack(rt, tenant_id, e))
                timing[side] += took
                lat[side].extend(ls)
        acks = per_round * args.rounds
        grouped, base = acks / timing["grouped"], acks / timing["per_ack"]
        return {
            "events": acks,
            "concurrency": args.concurrency,
            "acks_per_s": round(grouped, 1),
            "p50_ms": round(pct(lat["grouped"], 0.5), 2),
            "p99_ms": round(pct(lat["grouped"], 0.99), 2),
            "baseline_acks_per_s": round(base, 1),
            "baseline_p50_ms": round(pct(lat["per_ack"], 0.5), 2),
            "baseline_p99_ms": round(pct(lat["per_ack"], 0.99), 2),
            "ratio": round(grouped / base, 3),
            "inserts_per_ack": round(inserts / acks, 3),
            "database": rt.engine.dialect.name,
        }
    finally:
        await rt.engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    p.add_argument("--json", action="store_true")
    add_smoke(p, events=80, rounds=2)
    args = parse(p)
    with tempfile.TemporaryDirectory(prefix="guanxi-ack-") as tmp:
        result = asyncio.run(run(args, args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'ack.db'}"))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
