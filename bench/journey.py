"""Benchmark: a 3-step journey (send, wait, branch) over N customers, against the outbox's own
throughput for the same messages in the same run.

    python bench/journey.py --customers 100000 --json [--batch 500] [--database-url URL]

Seeds a new tenant with N customers, each with an account on a bench channel whose adapter
returns at once (Core bulk inserts), a tenth of them tagged ``vip``. A journey — send on the
channel, wait 60 s, branch on the ``vip`` tag — is activated and everyone enters it (keyset
batches). Then, in one run:

- ``journey_s``: the run worker advancing every run through the three steps (claimed batches of
  ``--batch``: the send queues an outbox message per customer after the consent and policy
  screening; the wait parks the run; 61 s later on the worker's clock the wait ends and the
  branch is evaluated in SQL); ``steps_per_s`` = 3 N / journey_s;
- ``outbox_s``: the outbox worker delivering those same N messages through the adapter
  (batches of ``--batch``); ``outbox_messages_per_s`` = N / outbox_s;
- ``send_phase_s`` / ``wait_branch_phase_s``: the two halves of ``journey_s``;
- ``ratio`` = steps_per_s / outbox_messages_per_s;
- ``peak_rss_mb`` after seeding and at the end (bounded memory: it should not grow with N).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import resource
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import log  # noqa: E402
from guanxi import Capabilities, Channel, DeliveryResult, OutboundMessage, RequestContext, hookimpl  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.queues import outbox  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402

JOURNEY = {
    "key": "bench",
    "name": "Bench",
    "trigger": {"type": "tag_added", "tag": "never-added"},
    "steps": [
        {"id": "hello", "type": "send", "channel": "benchchat", "text": "Hello from the bench"},
        {"id": "pause", "type": "wait", "seconds": 60},
        {"id": "check", "type": "branch", "condition": {"tags_any": ["vip"]}},
    ],
}


class BenchChat(Channel):
    name = "benchchat"
    capabilities = Capabilities(send_text=True)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult(provider_message_id=message.idempotency_key)


class BenchPlugin:
    @hookimpl
    def guanxi_channels(self) -> list[Channel]:
        return [BenchChat()]


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def seed(runtime: Runtime, n: int, batch: int = 5000) -> uuid.UUID:
    from guanxi.core.services.pipelines import create_tenant
    from guanxi.core.services.tags import ensure_tags

    async with runtime.session(None) as session, session.begin():
        tenant_id = await create_tenant(session, f"bench-{secrets.token_hex(4)}", "Journey benchmark")
    async with runtime.session(tenant_id) as session, session.begin():
        (vip,) = await ensure_tags(session, ["vip"])
        vip_id = vip.id
        stage = (await session.execute(select(m.Stage.id).order_by(m.Stage.position))).scalars().first()
    now = dt.datetime.now(dt.UTC)
    for lo in range(0, n, batch):
        customers, identities, tags = [], [], []
        for i in range(lo, min(n, lo + batch)):
            cid = new_id()
            customers.append(
                {
                    "tenant_id": tenant_id, "id": cid, "display_name": f"Customer {i}", "company": None, "phones": [], "emails": [],
                    "attributes": {}, "owner_id": None, "stage_id": stage, "source": "bench", "search_text": f"customer {i}",
                    "merged_into_id": None, "merged_at": None, "last_interaction_at": None, "created_at": now, "updated_at": now,
                }
            )  # fmt: skip
            identities.append(
                {
                    "tenant_id": tenant_id, "id": new_id(), "customer_id": cid, "channel": "benchchat", "external_id": f"b{i}",
                    "union_id": None, "nickname": None, "avatar_url": None, "follower_count": None, "profile": {},
                    "created_at": now, "updated_at": now, "unreachable_at": None,
                }
            )  # fmt: skip
            if i % 10 == 0:
                tags.append({"tenant_id": tenant_id, "customer_id": cid, "tag_id": vip_id, "tagged_at": now, "actor_id": None})
        async with runtime.session(tenant_id) as session, session.begin():
            await session.execute(insert(m.Customer), customers)
            await session.execute(insert(m.Identity), identities)
            if tags:
                await session.execute(insert(m.CustomerTag), tags)
    return tenant_id


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from guanxi.plugins.automation.journeys import engine, service
    from guanxi.plugins.automation.journeys.conditions import audience
    from guanxi.plugins.automation.journeys.models import AutomationJourneyRun

    environ = {"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "automation,benchchat", "GUANXI__AUTH__SECRET": secrets.token_hex(32)}
    runtime = Runtime.from_config(environ=environ, extra_plugins={"benchchat": BenchPlugin()})
    await upgrade(runtime)
    try:
        t0 = time.perf_counter()
        tenant_id = await seed(runtime, args.customers)
        seed_s = time.perf_counter() - t0
        rss_seeded = rss_mb()
        log(f"seeded {args.customers:,} customers in {seed_s:.1f} s")
        ctx = RequestContext(tenant_id=tenant_id)
        async with runtime.transaction(ctx) as tx:
            row = await service.save_journey(tx, json.dumps(JOURNEY))
            await service.set_status(tx, row.key, "active")
        t0 = time.perf_counter()
        async with runtime.transaction(ctx) as tx:
            journey = await service.get_journey(tx.session, "bench")
            async for ids in audience(tx.session, None, batch=args.batch):
                await service.enter(tx, journey, ids)
        enter_s = time.perf_counter() - t0
        await runtime.tenant_plugins(tenant_id)
        start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        t0 = time.perf_counter()
        while await engine.advance(runtime, tenant_id=tenant_id, limit=args.batch, now=start):
            pass
        send_phase_s = time.perf_counter() - t0
        later = start + dt.timedelta(seconds=61)
        while await engine.advance(runtime, tenant_id=tenant_id, limit=args.batch, now=later):
            pass
        journey_s = time.perf_counter() - t0
        async with runtime.session(tenant_id) as session:
            done = (
                await session.execute(select(func.count()).select_from(AutomationJourneyRun).where(AutomationJourneyRun.status == "done"))
            ).scalar_one()
            queued = (await session.execute(select(func.count()).select_from(m.OutboxMessage))).scalar_one()
        assert done == args.customers and queued == args.customers, (done, queued)
        deliverer = outbox.Deliverer(runtime)
        t0 = time.perf_counter()
        while await outbox.run_once(runtime, deliverer, limit=args.batch, tenant_id=tenant_id):
            pass
        outbox_s = time.perf_counter() - t0
        async with runtime.session(tenant_id) as session:
            sent = (
                await session.execute(select(func.count()).select_from(m.OutboxMessage).where(m.OutboxMessage.status == "sent"))
            ).scalar_one()
        assert sent == args.customers, sent
        dialect = runtime.engine.dialect.name
    finally:
        await runtime.engine.dispose()
    steps_per_s = 3 * args.customers / journey_s
    outbox_per_s = args.customers / outbox_s
    return {
        "customers": args.customers,
        "database": dialect,
        "batch": args.batch,
        "seed_s": round(seed_s, 2),
        "enter_s": round(enter_s, 3),
        "journey_s": round(journey_s, 3),
        "send_phase_s": round(send_phase_s, 3),
        "wait_branch_phase_s": round(journey_s - send_phase_s, 3),
        "steps_per_s": round(steps_per_s, 1),
        "outbox_s": round(outbox_s, 3),
        "outbox_messages_per_s": round(outbox_per_s, 1),
        "ratio": round(steps_per_s / outbox_per_s, 3),
        "peak_rss_mb_seeded": rss_seeded,
        "peak_rss_mb": rss_mb(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="runs claimed per batch; messages per outbox batch")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    add_smoke(parser, customers=200, batch=50)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'journey.db'}"
        result = asyncio.run(run(args, url))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
