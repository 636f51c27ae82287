"""Benchmark: a page of customers through GraphQL over real HTTP, against a hand-written baseline.

    python bench/graphql_list.py --customers 10000 --json [--page 50] [--requests 400] [--concurrency 8]

Seeds a fresh SQLite database (or ``--database-url``), starts ``bench._server`` (the Guanxi app
plus ``GET /baseline``) with uvicorn on 127.0.0.1, drives both with httpx in alternating rounds,
and prints the figures (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.storage.statistics import refresh_statistics  # noqa: E402
from guanxi.graphql.sqlgen import sql_enabled  # noqa: E402
from guanxi.testing.sql import count_statements  # noqa: E402

#: The page query of tests/graphql/test_sql_statements.py (PAGE), copied verbatim.
PAGE = """query($n: Int!) { customers(first: $n) {
  totalCount
  edges { node {
    id displayName stage { name } owner { name } tags { name }
    identities { channel nickname }
    interactions(first: 5) { edges { node { kind text occurredAt } } }
  } }
} }"""

#: ``--plugin-field``: the same page with a plugin's field (insights: each customer's inbound
#: channels, one batched statement per page), against the baseline computing it too
PLUGIN_PAGE = PAGE.replace(
    "interactions(first: 5) { edges { node { kind text occurredAt } } }",
    "interactions(first: 5) { edges { node { kind text occurredAt } } }\n    insights(days: 365) { channels { channel inbound lastAt } }",
)

INTERACTIONS_PER_CUSTOMER = 7


def page_query(args: argparse.Namespace) -> str:
    return PLUGIN_PAGE if args.plugin_field else PAGE


def plugins_of(args: argparse.Namespace) -> str:
    """The plugins the run enables (GUANXI_PLUGINS): none, or insights for ``--plugin-field``."""
    return "insights" if args.plugin_field else ""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- database -------------------------------------------------------------------------------------


#: the server secret of this run (API key hashes), shared by the seeding runtime and the server
BENCH_SECRET = secrets.token_hex(32)


def make_runtime(url: str, slug: str, plugins: str = "") -> Runtime:
    environ = {"GUANXI_DATABASE_URL": url, "GUANXI__TENANT": slug, "GUANXI__AUTH__SECRET": BENCH_SECRET}
    if plugins:
        environ["GUANXI_PLUGINS"] = plugins
    return Runtime.from_config(None, environ=environ)


async def admin_key(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    """An admin API key of the bench tenant: GraphQL requests authenticate like real ones."""
    from guanxi.core.auth import create_api_key, server_secret
    from guanxi.core.base.context import RequestContext

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        created = await create_api_key(tx, server_secret(runtime.settings.auth), name="bench", role="admin")
    return created.key


async def seed(runtime: Runtime, slug: str, n: int, batch: int = 2000) -> uuid.UUID:
    """A new tenant with ``n`` customers, each with a stage, 2 tags, 1 identity and 7 interactions."""
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.session(None) as session, session.begin():
        tenant_id = await create_tenant(session, slug, "Benchmark tenant")
    async with runtime.session(tenant_id) as session, session.begin():
        stage_ids = list((await session.execute(select(m.Stage.id).order_by(m.Stage.position))).scalars())
        now = dt.datetime.now(dt.UTC)
        tag_rows = [
            {"tenant_id": tenant_id, "id": new_id(), "group_name": g, "name": name, "color": None, "created_at": now}
            for g, name in [("", "vip"), ("group", "0"), ("group", "1"), ("group", "2")]
        ]
        await session.execute(insert(m.Tag), tag_rows)
    vip, groups = tag_rows[0]["id"], [t["id"] for t in tag_rows[1:]]

    start = now - dt.timedelta(seconds=n * 60)
    try:
        from rich.progress import Progress

        progress: Any = Progress(transient=True, console=__import__("rich.console").console.Console(stderr=True))
    except ImportError:  # pragma: no cover
        progress = None
    task = None
    if progress is not None:
        progress.start()
        task = progress.add_task(f"seeding {n:,} customers", total=n)
    try:
        for lo in range(0, n, batch):
            customers, links, idents, inters = [], [], [], []
            for i in range(lo, min(n, lo + batch)):
                cid = new_id()
                created = start + dt.timedelta(seconds=i * 60)
                last = created + dt.timedelta(seconds=INTERACTIONS_PER_CUSTOMER)
                customers.append(
                    {
                        "tenant_id": tenant_id,
                        "id": cid,
                        "display_name": f"Customer {i}",
                        "company": None,
                        "phones": [],
                        "emails": [],
                        "attributes": {},
                        "owner_id": None,
                        "stage_id": stage_ids[i % len(stage_ids)],
                        "source": "bench",
                        "search_text": f"customer {i}",
                        "merged_into_id": None,
                        "merged_at": None,
                        "last_interaction_at": last,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                for tag_id in (vip, groups[i % 3]):
                    links.append({"tenant_id": tenant_id, "customer_id": cid, "tag_id": tag_id, "tagged_at": created, "actor_id": None})
                iid = new_id()
                idents.append(
                    {
                        "tenant_id": tenant_id,
                        "id": iid,
                        "customer_id": cid,
                        "channel": "wecom",
                        "external_id": f"wm{i}",
                        "union_id": None,
                        "nickname": f"nick {i}",
                        "avatar_url": None,
                        "follower_count": None,
                        "profile": {},
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                for k in range(INTERACTIONS_PER_CUSTOMER):
                    at = created + dt.timedelta(seconds=k + 1)
                    inters.append(
                        {
                            "tenant_id": tenant_id,
                            "id": new_id(),
                            "customer_id": cid,
                            "identity_id": iid,
                            "channel": "wecom",
                            "kind": "message_in" if k % 2 else "message_out",
                            "direction": "in" if k % 2 else "out",
                            "occurred_at": at,
                            "recorded_at": at,
                            "text": f"message {k} of customer {i}",
                            "payload": {},
                            "dedupe_key": None,
                            "actor_id": None,
                        }
                    )
            async with runtime.session(tenant_id) as session, session.begin():
                for model, rows in ((m.Customer, customers), (m.CustomerTag, links), (m.Identity, idents), (m.Interaction, inters)):
                    await session.execute(insert(model), rows)
            if progress is not None:
                progress.update(task, advance=len(customers))
    finally:
        if progress is not None:
            progress.stop()
    return tenant_id


async def statements_by_page_size(runtime: Runtime, sizes: list[int], key: str, query: str = PAGE) -> dict[str, int]:
    """SQL statements of one page query, in-process, per page size (BEGIN/COMMIT/... ignored).

    The app runs on this event loop (httpx's ASGI transport), where the runtime's engine was
    created: asyncpg connections belong to the loop that opened them."""
    from guanxi.app import create_app

    out: dict[str, int] = {}
    transport = httpx.ASGITransport(app=cast(Any, create_app(runtime)))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def page(n: int) -> dict[str, Any]:
            r = await client.post("/graphql", json={"query": query, "variables": {"n": n}}, headers={"Authorization": f"Bearer {key}"})
            body = r.json()
            if r.status_code != 200 or body.get("errors"):
                raise SystemExit(f"in-process page query failed: {r.status_code} {r.text[:500]}")
            return cast(dict[str, Any], body)

        await page(sizes[0])  # warm-up: caches the tenant id, the stage list's compiled SQL, the query's plans
        for n in sizes:
            with count_statements(runtime.engine) as seen:
                body = await page(n)
            assert len(body["data"]["customers"]["edges"]) == n, "not enough customers for this page size"
            out[str(n)] = len(seen)
    return out


# -- server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, slug: str, port: int, plugins: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "GUANXI_DATABASE_URL": url, "GUANXI__TENANT": slug, "GUANXI__AUTH__SECRET": BENCH_SECRET, "PYTHONPATH": str(ROOT)}
    # the bench's one key asks for more than a caller's default rate (50/s, burst 200); a 429
    # answers in a fraction of a page's time and would inflate the GraphQL side's rate
    env |= {"GUANXI__AUTH__RATE_PER_S": "1000000", "GUANXI__AUTH__RATE_BURST": "1000000"}
    env.pop("GUANXI_PLUGINS", None)
    if plugins:
        env["GUANXI_PLUGINS"] = plugins
    return subprocess.Popen(
        [sys.executable, "-m", "bench._server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # Ctrl-C reaches only us; we stop the server
    )


def stop_server(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


async def wait_ready(proc: subprocess.Popen[bytes], base: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with code {proc.returncode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not become ready")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# -- load -----------------------------------------------------------------------------------------


class Side(msgspec.Struct):
    name: str
    latencies: list[float] = msgspec.field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float = 0.0
    errors: int = 0
    first_error: str | None = None


async def run_round(client: httpx.AsyncClient, request: Any, side: Side, count: int, concurrency: int, deadline: float, pid: int) -> None:
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            t0 = time.perf_counter()
            r = await request(client)
            side.latencies.append(time.perf_counter() - t0)
            if r.status_code != 200 or b'"errors"' in r.content:
                side.errors += 1
                if side.first_error is None:  # reported, so a failed run says why
                    side.first_error = f"{r.status_code} {r.content[:300].decode(errors='replace')}"

    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    side.elapsed += time.perf_counter() - t0
    cpu1 = cpu_seconds(pid)
    if cpu0 is not None and cpu1 is not None:
        side.server_cpu += cpu1 - cpu0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def drive(base: str, pid: int, args: argparse.Namespace, key: str) -> tuple[Side, Side, bool]:
    gql_body = msgspec.json.encode({"query": page_query(args), "variables": {"n": args.page}})
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    baseline_path = f"/baseline?first={args.page}" + ("&channels=true" if args.plugin_field else "")

    async def gql(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/graphql", content=gql_body, headers=headers)

    async def baseline(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(baseline_path)

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        # Correctness: both answer 200 without errors, and with the same page.
        a, b = await gql(client), await baseline(client)
        if a.status_code != 200 or "errors" in a.json():
            raise SystemExit(f"GraphQL failed: {a.status_code} {a.text[:500]}")
        if b.status_code != 200:
            raise SystemExit(f"baseline failed: {b.status_code} {b.text[:500]}")
        same = a.json() == b.json()
        if not same:
            log("WARNING: the baseline page differs from the GraphQL page")
        # Warm-up: every connection, both routes.
        warm = Side("warm-up")
        deadline = time.monotonic() + 60
        for request in (gql, baseline, gql, baseline):
            await run_round(client, request, warm, max(args.concurrency * 2, 20), args.concurrency, deadline, pid)
        if warm.errors:
            raise SystemExit(f"{warm.errors} failed requests during warm-up")

        g, bl = Side("graphql"), Side("baseline")
        per_round = max(1, args.requests // args.rounds)
        deadline = time.monotonic() + args.time_limit
        for i in range(args.rounds):
            order = ((gql, g), (baseline, bl)) if i % 2 == 0 else ((baseline, bl), (gql, g))
            for request, side in order:
                await run_round(client, request, side, per_round, args.concurrency, deadline, pid)
    return g, bl, same


# -- main -----------------------------------------------------------------------------------------


async def prepare(url: str, slug: str, args: argparse.Namespace) -> tuple[float, dict[str, int], str]:
    from guanxi.core.migrate import upgrade

    runtime = make_runtime(url, slug, plugins_of(args))
    try:
        await upgrade(runtime)
        t0 = time.perf_counter()
        tenant_id = await seed(runtime, slug, args.customers)
        seed_seconds = time.perf_counter() - t0
        # PostgreSQL: statistics that know the seeded tenant, as the demo loader and an import
        # leave them; without, both sides' plans depend on when autovacuum runs during the run
        # (ratios 0.07 to 2.7 were measured before this)
        async with runtime.engine.begin() as conn:
            await refresh_statistics(conn)
        key = await admin_key(runtime, tenant_id)
        sizes = sorted({10, args.page} if args.page != 10 else {10, 50})
        sizes = [s for s in sizes if s <= min(args.customers, runtime.settings.graphql.max_page_size)]
        counts = await statements_by_page_size(runtime, sizes, key, page_query(args))
    finally:
        await runtime.engine.dispose()
    return seed_seconds, counts, key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--page", type=int, default=50, help="page size (first:)")
    p.add_argument("--requests", type=int, default=400, help="measured requests per side (GraphQL and baseline)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent client loops (keep-alive connections)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per side")
    p.add_argument("--time-limit", type=float, default=120.0, help="hard limit in seconds for the measured rounds")
    p.add_argument("--database-url", help="use this database (e.g. PostgreSQL) instead of a fresh SQLite file")
    p.add_argument("--plugin-field", action="store_true", help="select a plugin's field too (insights { channels }), the baseline likewise")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_smoke(p, customers=150, page=10, requests=20, concurrency=2, rounds=2, time_limit=60.0)
    args = parse(p, argv)
    if args.customers < args.page:
        p.error("--customers must be at least --page")

    logging.getLogger("httpx").setLevel(logging.WARNING)  # Litestar's logging config makes it chatty
    started = time.perf_counter()
    slug = f"bench-{secrets.token_hex(4)}"
    proc: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="guanxi-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        try:
            log(f"migrating and seeding {args.customers:,} customers ({url.split('://')[0]}) ...")
            seed_seconds, counts, key = asyncio.run(prepare(url, slug, args))
            log(f"seeded in {seed_seconds:.1f}s; SQL statements per page: {counts}")
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            proc = start_server(url, slug, port, plugins_of(args))
            asyncio.run(wait_ready(proc, base))
            log(f"server pid {proc.pid} on {base}; driving load ...")
            g, bl, same = asyncio.run(drive(base, proc.pid, args, key))
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            stop_server(proc)

    values = list(counts.values())
    planned = max(1, args.requests // args.rounds) * args.rounds
    rps = len(g.latencies) / g.elapsed if g.elapsed else 0.0
    brps = len(bl.latencies) / bl.elapsed if bl.elapsed else 0.0
    result = {
        "customers": args.customers,
        "page_size": args.page,
        "requests": len(g.latencies),
        "baseline_requests": len(bl.latencies),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "sql_statements_per_request": values[-1] if values and len(set(values)) == 1 else None,
        "sql_statements_by_page_size": counts,
        "p50_ms": round(pct(g.latencies, 0.5) * 1000, 2),
        "p99_ms": round(pct(g.latencies, 0.99) * 1000, 2),
        "rps": round(rps, 1),
        "baseline_p50_ms": round(pct(bl.latencies, 0.5) * 1000, 2),
        "baseline_p99_ms": round(pct(bl.latencies, 0.99) * 1000, 2),
        "baseline_rps": round(brps, 1),
        "ratio": round(rps / brps, 4) if brps else None,
        "server_cpu_ms_per_request": round(g.server_cpu / len(g.latencies) * 1000, 2) if g.latencies else None,
        "baseline_server_cpu_ms_per_request": round(bl.server_cpu / len(bl.latencies) * 1000, 2) if bl.latencies else None,
        "errors": g.errors,
        "baseline_errors": bl.errors,
        "first_error": g.first_error,
        "baseline_first_error": bl.first_error,
        "same_page": same,
        "sql_layer": sql_enabled(),
        "plugin_field": args.plugin_field,
        "truncated_by_time_limit": min(len(g.latencies), len(bl.latencies)) < planned,
        "seed_seconds": round(seed_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 1),
        "database": url.split("+")[0].split(":")[0],
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        rows = [
            ("", "GraphQL", "baseline"),
            ("requests", str(result["requests"]), str(result["baseline_requests"])),
            ("p50 ms", f"{result['p50_ms']:.2f}", f"{result['baseline_p50_ms']:.2f}"),
            ("p99 ms", f"{result['p99_ms']:.2f}", f"{result['baseline_p99_ms']:.2f}"),
            ("requests/s", f"{result['rps']:.1f}", f"{result['baseline_rps']:.1f}"),
            ("server CPU ms/req", str(result["server_cpu_ms_per_request"]), str(result["baseline_server_cpu_ms_per_request"])),
        ]
        print(
            f"{args.customers:,} customers, page {args.page}, concurrency {args.concurrency}, "
            f"Python {result['python']}, {result['cpu_count']} CPUs"
        )
        for name, a, b in rows:
            print(f"  {name:<18} {a:>10} {b:>10}")
        print(f"  ratio (GraphQL rps / baseline rps): {result['ratio']}")
        print(f"  SQL statements per GraphQL request: {counts} (same page as baseline: {same})")
    bad = g.errors or bl.errors or result["sql_statements_per_request"] is None
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
