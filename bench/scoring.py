"""Benchmark: the scoring plugin's set-based batch recompute against one hand-written UPDATE.

    python bench/scoring.py --customers 20000 --interactions 200000 --json [--batch-size 2000] [--database-url URL]

Seeds a new tenant with N customers (a third with a company and an email, one in ten with a
Douyin identity carrying followers and an engagement rate) and M interactions spread over 180
days (messages, clicks, email opens, visits, calls, purchases with an amount, follows,
unsubscribes, complaints), with Core bulk inserts (no hook runs while seeding). Then, in one run:

- ``recompute_s``: ``recompute_tenant`` over everyone (every component, history, stage rules),
  batch by batch of customer ids; ``customers_per_s`` = N / recompute_s;
- ``baseline_s``: one hand-written SQL ``UPDATE scoring_scores SET total = (SELECT sum(points ×
  decay) …)`` computing the engagement component alone (no cap, no parts, no history) over the
  same data; ``ratio`` = recompute_s / baseline_s;
- ``incremental_ms_p50`` / ``incremental_ms_p95``: one customer's score update as after an
  interaction (the event hook's transaction), over ``--samples`` customers;
- ``incremental_statements``: SQL statements of one such update.

Stage rules are off unless ``--stage-rules``: moving a customer (stage change, owner, task, their
events) is per-customer business work, not scoring, and would dominate the figure when most of the
seeded leads cross a threshold at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import random
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

from sqlalchemy import insert, select, text  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import log, pct  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.testing.sql import count_statements  # noqa: E402

KINDS = [
    ("message_in", 40),
    ("click", 15),
    ("email_open", 15),
    ("follow", 5),
    ("visit", 5),
    ("call", 5),
    ("purchase", 10),
    ("note", 2),
    ("unsubscribe", 2),
    ("complaint", 1),
]
BASELINE_POINTS = {"message_in": 5, "click": 3, "email_open": 1, "follow": 5, "visit": 10, "call": 8, "unsubscribe": -20, "complaint": -30}


def _progress(total: int, what: str) -> Any:
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(transient=True, console=Console(stderr=True))
    progress.start()
    return progress, progress.add_task(what, total=total)


async def seed(runtime: Runtime, n: int, interactions: int, seed_value: int, batch: int = 5000) -> uuid.UUID:
    from guanxi.core.services.pipelines import create_tenant

    rng = random.Random(seed_value)
    async with runtime.session(None) as session, session.begin():
        tenant_id = await create_tenant(session, f"bench-{secrets.token_hex(4)}", "Scoring benchmark")
    async with runtime.session(tenant_id) as session:
        stages = list((await session.execute(select(m.Stage.id).order_by(m.Stage.position))).scalars())
    now = dt.datetime.now(dt.UTC)
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    per_customer = [interactions // n + (1 if i < interactions % n else 0) for i in range(n)]
    progress, task = _progress(n, f"seeding {n:,} customers, {interactions:,} interactions")
    try:
        for lo in range(0, n, batch):
            customers, identities, inters = [], [], []
            for i in range(lo, min(n, lo + batch)):
                cid = new_id()
                created = now - dt.timedelta(days=200)
                customers.append(
                    {
                        "tenant_id": tenant_id,
                        "id": cid,
                        "display_name": f"Customer {i}",
                        "company": "ACME" if i % 3 == 0 else None,
                        "phones": [],
                        "emails": [f"c{i}@example.com"] if i % 3 == 0 else [],
                        "attributes": {},
                        "owner_id": None,
                        "stage_id": stages[0],
                        "source": "bench",
                        "search_text": f"customer {i}",
                        "merged_into_id": None,
                        "merged_at": None,
                        "last_interaction_at": None,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                if i % 10 == 0:
                    identities.append(
                        {
                            "tenant_id": tenant_id,
                            "id": new_id(),
                            "customer_id": cid,
                            "channel": "douyin",
                            "external_id": f"dy{i}",
                            "union_id": None,
                            "nickname": None,
                            "avatar_url": None,
                            "follower_count": int(10 ** rng.uniform(1, 6)),
                            "profile": {"engagement_rate": round(rng.uniform(0, 0.2), 4)},
                            "created_at": created,
                            "updated_at": created,
                        }
                    )
                for _ in range(per_customer[i]):
                    kind = rng.choices(kinds, weights)[0]
                    inters.append(
                        {
                            "tenant_id": tenant_id,
                            "id": new_id(),
                            "customer_id": cid,
                            "identity_id": None,
                            "channel": rng.choice(("wecom", "email", "douyin")),
                            "kind": kind,
                            "direction": "in",
                            "occurred_at": now - dt.timedelta(seconds=rng.uniform(0, 180 * 86400)),
                            "recorded_at": now,
                            "text": None,
                            "payload": {"amount": round(rng.uniform(10, 2000), 2)} if kind == "purchase" else {},
                            "dedupe_key": None,
                            "actor_id": None,
                        }
                    )
            async with runtime.session(tenant_id) as session, session.begin():
                await session.execute(insert(m.Customer), customers)
                if identities:
                    await session.execute(insert(m.Identity), identities)
                for k in range(0, len(inters), 10_000):
                    await session.execute(insert(m.Interaction), inters[k : k + 10_000])
            progress.update(task, completed=min(n, lo + batch))
    finally:
        progress.stop()
    return tenant_id


def baseline_sql(dialect: str) -> str:
    """The engagement component alone, by hand: points per kind, decayed with a 30-day half-life."""
    cases = " ".join(f"WHEN '{k}' THEN {p}" for k, p in BASELINE_POINTS.items())
    if dialect == "postgresql":
        age = "extract(epoch from (:as_of - i.occurred_at))"
    else:
        age = "(julianday(:as_of) - julianday(i.occurred_at)) * 86400.0"
    return f"""
UPDATE scoring_scores SET total = (
  SELECT coalesce(sum((CASE i.kind {cases} ELSE 0 END) * exp(-0.6931471805599453 * {age} / 2592000.0)), 0)
  FROM interactions i
  WHERE i.tenant_id = scoring_scores.tenant_id AND i.customer_id = scoring_scores.customer_id
    AND i.kind IN ({", ".join(f"'{k}'" for k in BASELINE_POINTS)}) AND i.occurred_at <= :as_of
)
WHERE scoring_scores.tenant_id = :tenant_id"""


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from guanxi.plugins.scoring.recompute import recompute_tenant, rescore

    environ = {"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "scoring"}
    if not args.stage_rules:
        environ["GUANXI__PLUGINS__SCORING__STAGE_RULES"] = "[]"
    runtime = Runtime.from_config(environ=environ)
    await upgrade(runtime)
    await runtime.start()
    try:
        t0 = time.perf_counter()
        tenant_id = await seed(runtime, args.customers, args.interactions, args.seed)
        seed_s = time.perf_counter() - t0
        log(f"seeded in {seed_s:.1f} s")
        as_of = dt.datetime.now(dt.UTC)
        progress, task = _progress(args.customers, "recomputing")
        try:
            t0 = time.perf_counter()
            report = await recompute_tenant(
                runtime,
                tenant_id,
                as_of=as_of,
                batch_size=args.batch_size,
                on_progress=lambda d, t: progress.update(task, completed=d, total=t),
            )
            recompute_s = time.perf_counter() - t0
        finally:
            progress.stop()
        dialect = runtime.engine.dialect.name
        as_of_param = as_of.replace(tzinfo=None).isoformat(sep=" ") if dialect == "sqlite" else as_of
        tid_param = tenant_id.hex if dialect == "sqlite" else tenant_id
        async with runtime.write_session(tenant_id) as session:
            t0 = time.perf_counter()
            # hand-written SQL that filters by tenant itself: marked so the tenant chokepoint lets it through
            baseline = text(baseline_sql(dialect)).execution_options(guanxi_unscoped=True)
            result = await session.execute(baseline, {"as_of": as_of_param, "tenant_id": tid_param})
            baseline_s = time.perf_counter() - t0
            baseline_rows = int(getattr(result, "rowcount", 0) or 0)
        async with runtime.session(tenant_id) as session:
            ids = list((await session.execute(select(m.Customer.id))).scalars())
        sample = random.Random(args.seed).sample(ids, min(args.samples, len(ids)))
        times = []
        statements = 0
        for cid in sample:
            with count_statements(runtime.engine) as seen:
                t0 = time.perf_counter()
                await rescore(runtime, tenant_id, cid, "bench")
                times.append((time.perf_counter() - t0) * 1000)
            statements = max(statements, len(seen))
    finally:
        await runtime.stop()
    return {
        "customers": args.customers,
        "interactions": args.interactions,
        "database": dialect,
        "batch_size": args.batch_size,
        "batches": report.batches,
        "seed_s": round(seed_s, 2),
        "recompute_s": round(recompute_s, 3),
        "customers_per_s": round(args.customers / recompute_s, 1),
        "baseline_s": round(baseline_s, 3),
        "baseline_rows": baseline_rows,
        "ratio": round(recompute_s / baseline_s, 2) if baseline_s else None,
        "incremental_ms_p50": round(pct(times, 0.5), 2),
        "incremental_ms_p95": round(pct(times, 0.95), 2),
        "incremental_statements": statements,
        "moved_by_stage_rules": report.moved,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--samples", type=int, default=50, help="customers timed for the incremental update")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--stage-rules", action="store_true", help="keep the default stage rules (moves, owners and tasks count in recompute_s)"
    )
    add_smoke(parser, customers=300, interactions=3000, batch_size=100, samples=5)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'scoring.db'}"
        result = asyncio.run(run(args, url))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
