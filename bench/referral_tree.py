"""Benchmark: the referral tree of the top inviter in a random referral forest.

    python bench/referral_tree.py --customers 10000 --json [--requests 200] [--database-url …]

Seeds a fresh SQLite database (or ``--database-url``) with N customers and a random referral
forest (preferential attachment: people who already brought others in are likelier to bring
more), then asks the app in process (httpx on the ASGI app, no network) for
``referrals(depth: 5, first: 50)`` and ``referralStats`` of the inviter with the most direct
referrals, authenticated with an admin API key like any client, and prints the p50/p99 times
and the SQL statements per request (see bench/README.md). The API reads the tree from the
plugin's closure table (``referral_closure``, seeded here as the migration backfills it). The
baseline builds the same tree page the way the API did before the closure table, with one
hand-written recursive statement over the attributions on the engine (no ORM, no GraphQL),
encoded with msgspec; ``ratio`` = baseline p50 / GraphQL p50 (1.0 = as fast) and ``same_page``
says the two documents were equal. ``--explain`` prints the query plan of the API's tree
statement (as it ran, with its parameters) and of the baseline's. ``--smoke`` is a tiny run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import platform
import random
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

import httpx  # noqa: E402
import msgspec  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import admin_key  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.storage.statistics import refresh_statistics  # noqa: E402
from guanxi.graphql.ids import to_global_id  # noqa: E402
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCampaign, ReferralClosure, ReferralToken  # noqa: E402
from guanxi.testing.sql import count_statements  # noqa: E402

TREE = """query($id: ID!) { customer(id: $id) {
  referrals(depth: 5, first: 50) { edges { depth channel node { id displayName } } pageInfo { hasNextPage } }
} }"""
STATS = "query($id: ID!) { customer(id: $id) { referralStats { direct indirect converted } } }"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def seed(runtime: Runtime, slug: str, n: int, share: float, rng: random.Random, batch: int = 2000) -> uuid.UUID:
    """A tenant with ``n`` customers; a share of them were brought in by an earlier customer."""
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.session(None) as session, session.begin():
        tenant_id = await create_tenant(session, slug, "Referral benchmark")
    now = dt.datetime.now(dt.UTC)
    async with runtime.session(tenant_id) as session, session.begin():
        stages = list((await session.execute(select(m.Stage.id).order_by(m.Stage.position))).scalars())
        campaign_id = new_id()
        await session.execute(
            insert(ReferralCampaign),
            [
                {
                    "id": campaign_id,
                    "key": "bench",
                    "name": "Bench",
                    "landing_url": "https://example.com",
                    "goal": 0,
                    "reversal_days": 7,
                    "reward_points": 0,
                    "poster": {},
                    "active": True,
                    "created_at": now,
                }
            ],
        )
        ids = [new_id() for _ in range(n)]
        pool: list[int] = []  # preferential attachment: an index appears once per invite, plus once
        customers, attributions, tokens = [], [], {}
        for i, cid in enumerate(ids):
            customers.append(
                {
                    "id": cid,
                    "display_name": f"Customer {i}",
                    "phones": [],
                    "emails": [],
                    "attributes": {},
                    "stage_id": rng.choice(stages),
                    "search_text": "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if pool and rng.random() < share:
                inviter = rng.choice(pool)
                pool.append(inviter)
                token = tokens.setdefault(inviter, new_id())
                attributions.append(
                    {
                        "customer_id": cid,
                        "inviter_customer_id": ids[inviter],
                        "campaign_id": campaign_id,
                        "channel": "wecom",
                        "status": "active",
                        "first_token_id": token,
                        "first_channel": "wecom",
                        "first_at": now,
                        "last_token_id": token,
                        "last_channel": "wecom",
                        "last_at": now,
                        "changed_at": now,
                    }
                )
            pool.append(i)
        for start in range(0, n, batch):
            await session.execute(insert(m.Customer), customers[start : start + batch])
        for start in range(0, len(attributions), batch):
            await session.execute(insert(ReferralAttribution), attributions[start : start + batch])
        token_rows = [
            {
                "id": t,
                "token": secrets.token_urlsafe(16),
                "campaign_id": campaign_id,
                "inviter_key": f"c:{ids[i]}",
                "inviter_customer_id": ids[i],
                "entry_points": [],
                "anonymous_visits": 0,
                "known_visits": 0,
                "created_at": now,
            }
            for i, t in tokens.items()
        ]
        for start in range(0, len(token_rows), batch):
            await session.execute(insert(ReferralToken), token_rows[start : start + batch])
        closure = closure_rows(tenant_id, {a["customer_id"]: a["inviter_customer_id"] for a in attributions})
        for start in range(0, len(closure), 5 * batch):
            await session.execute(insert(ReferralClosure), closure[start : start + 5 * batch])
    return tenant_id


def closure_rows(tenant_id: uuid.UUID, inviter_of: dict[uuid.UUID, uuid.UUID]) -> list[dict[str, Any]]:
    """Every (ancestor, descendant, steps) of the forest, as migration ``referral_0003`` backfills."""
    rows = []
    for child in inviter_of:
        node, steps = child, 0
        while node in inviter_of:
            node, steps = inviter_of[node], steps + 1
            rows.append({"tenant_id": tenant_id, "ancestor_id": node, "descendant_id": child, "depth": steps})
    return rows


async def explain(runtime: Runtime, statement: str, parameters: Any) -> list[str]:
    """The plan of one statement with its parameters, on a plain connection."""
    dialect = runtime.engine.dialect.name
    prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    async with runtime.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if dialect == "sqlite":
            cursor = await driver.execute(prefix + statement, parameters)
            return [" | ".join(str(v) for v in row) for row in await cursor.fetchall()]
        rows = await driver.fetch(prefix + statement, *parameters)
        return [row[0] for row in rows]


def capture(runtime: Runtime) -> tuple[list[tuple[str, Any]], Any]:
    """Record the statements (text and parameters) the engine runs, until the listener is removed."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", listener)
    return seen, listener


def baseline_tree(tenant_id: uuid.UUID, root: uuid.UUID, depth: int, size: int) -> Any:
    """The tree page of TREE by hand: a recursive CTE over the tables (tenant in every join),
    the customer's row for ``customer(id:)``, ordered by depth then id like the API."""
    from sqlalchemy import and_, literal

    a, c = ReferralAttribution.__table__, m.Customer.__table__
    seed_rows = (
        select(a.c.customer_id.label("id"), literal(1).label("depth"))
        .where(a.c.tenant_id == tenant_id, a.c.inviter_customer_id == root, a.c.status == "active")
        .cte("tree", recursive=True)
    )
    child = a.alias("child")
    tree = seed_rows.union_all(
        select(child.c.customer_id, seed_rows.c.depth + 1)
        .join(seed_rows, child.c.inviter_customer_id == seed_rows.c.id)
        .where(child.c.tenant_id == tenant_id, child.c.status == "active", seed_rows.c.depth < depth)
    )
    return (
        select(c.c.id, c.c.display_name, tree.c.depth, a.c.channel)
        .select_from(tree)
        .join(c, and_(c.c.tenant_id == tenant_id, c.c.id == tree.c.id))
        .join(a, and_(a.c.tenant_id == tenant_id, a.c.customer_id == tree.c.id))
        .order_by(tree.c.depth, tree.c.id)
        .limit(size + 1)
    )


async def baseline_page(runtime: Runtime, tenant_id: uuid.UUID, root: uuid.UUID) -> bytes:
    c = m.Customer.__table__
    async with runtime.engine.connect() as conn:
        found = (await conn.execute(select(c.c.id).where(c.c.tenant_id == tenant_id, c.c.id == root))).first()
        rows = (await conn.execute(baseline_tree(tenant_id, root, 5, 50))).all() if found else []
    if not found:
        return msgspec.json.encode({"data": {"customer": None}})
    edges = [
        {"depth": r.depth, "channel": r.channel, "node": {"id": to_global_id("Customer", r.id), "displayName": r.display_name}}
        for r in rows[:50]
    ]
    return msgspec.json.encode({"data": {"customer": {"referrals": {"edges": edges, "pageInfo": {"hasNextPage": len(rows) > 50}}}}})


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from guanxi.app import create_app
    from guanxi.core.migrate import upgrade
    from guanxi.testing.plugin import use_tenant

    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="guanxi-referral-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"
    runtime = Runtime.from_config(
        None, environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "referral", "GUANXI__AUTH__SECRET": secrets.token_hex(32)}
    )
    try:
        await upgrade(runtime)
        await runtime.start()
        rng = random.Random(args.seed)
        t0 = time.perf_counter()
        tenant_id = await seed(runtime, f"bench-{secrets.token_hex(4)}", args.customers, args.share, rng)
        seed_s = time.perf_counter() - t0
        # fresh bulk-loaded tables have no planner statistics until autovacuum gets to them;
        # without them PostgreSQL guesses one row per inviter and walks the tree with a nested
        # loop over every attribution (about 100x slower)
        async with runtime.engine.begin() as conn:
            await refresh_statistics(conn)
        async with runtime.session(tenant_id) as session:
            top, direct = (
                await session.execute(
                    select(ReferralAttribution.inviter_customer_id, func.count().label("n"))
                    .group_by(ReferralAttribution.inviter_customer_id)
                    .order_by(func.count().desc())
                    .limit(1)
                )
            ).one()
        await use_tenant(runtime, tenant_id)
        app = create_app(runtime)
        variables = {"id": to_global_id("Customer", top)}
        key = await admin_key(runtime, tenant_id)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench.local", headers=headers) as client:

            async def ask(query: str) -> dict[str, Any]:
                response = await client.post("/graphql", json={"query": query, "variables": variables})
                body: dict[str, Any] = response.json()
                if response.status_code != 200 or body.get("errors"):
                    raise SystemExit(f"GraphQL failed: {response.status_code} {body}")
                return body

            figures: dict[str, Any] = {}
            for name, query in (("referrals", TREE), ("stats", STATS)):
                await ask(query)  # the first request also looks up the tenant (cached after)
                with count_statements(runtime.engine) as seen:
                    body = await ask(query)
                if args.show_sql:
                    log("\n---\n".join(seen))
                figures[f"{name}_sql_statements"] = len(seen)
                figures[f"{name}_recursive_statements"] = sum("RECURSIVE" in s.upper() for s in seen)
                if name == "stats":
                    figures["top_inviter_stats"] = body["data"]["customer"]["referralStats"]
                else:
                    figures["top_inviter_page_size"] = len(body["data"]["customer"]["referrals"]["edges"])
                for _ in range(min(10, args.requests)):
                    await ask(query)  # warm-up
                times = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    await ask(query)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                figures[f"{name}_p50_ms"] = round(statistics.median(times), 2)
                figures[f"{name}_p99_ms"] = round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)
                if name == "referrals":
                    figures["same_page"] = msgspec.json.decode(await baseline_page(runtime, tenant_id, top)) == body
            for _ in range(min(10, args.requests)):
                await baseline_page(runtime, tenant_id, top)
            times = []
            for _ in range(args.requests):
                t = time.perf_counter()
                await baseline_page(runtime, tenant_id, top)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            figures["baseline_p50_ms"] = round(statistics.median(times), 2)
            figures["baseline_p99_ms"] = round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)
            figures["ratio"] = round(figures["baseline_p50_ms"] / figures["referrals_p50_ms"], 4) if figures["referrals_p50_ms"] else None
            if args.explain:
                from sqlalchemy import event

                seen, listener = capture(runtime)
                await ask(TREE)
                await baseline_page(runtime, tenant_id, top)
                event.remove(runtime.engine.sync_engine, "before_cursor_execute", listener)
                api = next(x for x in seen if "referral_closure" in x[0])
                for label, (statement, parameters) in (("api", api), ("baseline", seen[-1])):
                    log(f"--- {label}: {statement}\n" + "\n".join(await explain(runtime, statement, parameters)))
        return {
            "customers": args.customers,
            "referred_share": args.share,
            "top_inviter_direct": direct,
            **figures,
            "requests": args.requests,
            "seed_seconds": round(seed_s, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
            "database": runtime.engine.dialect.name,
            "python": platform.python_version(),
        }
    finally:
        await runtime.stop()
        tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--share", type=float, default=0.8, help="share of customers who were referred (default 0.8)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per query")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show-sql", action="store_true", help="print the counted statements to stderr")
    parser.add_argument("--explain", action="store_true", help="print the plans of the API's and the baseline's tree statements to stderr")
    add_smoke(parser, customers=200, requests=10)
    args = parse(parser)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = asyncio.run(run(args))
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        for key, value in result.items():
            print(f"{key:30} {value}")


if __name__ == "__main__":
    main()
