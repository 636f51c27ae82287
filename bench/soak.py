"""Soak: open-loop mixed load at a fixed rate for N minutes; does the cost per request stay flat?

    python bench/soak.py --minutes 10 --json [--rate 40] [--interval 30] [--customers 300] [--database-url URL]

Seeds a tenant (``--customers`` customers, each with a stage, 2 tags, an identity and 7
interactions, as bench/graphql_list.py does) with the example ``pigeon`` channel, starts the
Guanxi app in its own process (uvicorn, one worker, in-process inbox worker, as
bench/_ingest_server.py serves it) and the load generator in another process (this script with
``--generate``). The generator sends requests at ``--rate`` per second on a fixed schedule,
whether or not earlier ones have been answered (open loop: a slow server gets a growing queue,
not fewer requests): 70 % GraphQL pages of 20 customers (stage, owner, tags, identities, last 5
interactions, ``totalCount``; an admin API key) and 30 % signed Pigeon webhook deliveries
(messages from a growing set of senders: 5 % are new people), so the tenant grows during the
run as a real one does.

Every ``--interval`` seconds it reports, per interval: requests answered per second, page and
webhook latency p50/p99, errors, the server's CPU (user+sys, /proc) and RSS, the inbox backlog
(events not yet applied), and the server CPU per request. ``cpu_ms_per_request_slope`` is the
least-squares slope of that CPU per request over the run (ms per request per minute; 0 = flat)
and ``ratio`` = the mean CPU per request of the last quarter of the intervals over the first
quarter (1.0 = flat).

To find what grows, the same page and webhook are also run in this process before and after
the load (``probe_start``, ``probe_end``: the app in process, 5 pages and 5 deliveries applied
by the inbox), with every SQL statement timed by its text; ``growth`` lists the statements
whose time per call grew most between the two (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402

from bench._ingest_server import context, release_accounts, spawn, use_config_accounts  # noqa: E402
from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import PAGE, admin_key, cpu_seconds, free_port, log, pct, stop_server, wait_ready  # noqa: E402
from bench.graphql_list import seed as seed_customers  # noqa: E402
from guanxi import sign  # noqa: E402
from guanxi.core.domain.models import Customer, InboxEvent, Interaction  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.storage.statistics import refresh_statistics  # noqa: E402

SECRET = secrets.token_hex(16)
SERVER_SECRET = secrets.token_hex(32)
PAGE_SIZE = 20
PAGE_SHARE = 0.7
NEW_SENDER_SHARE = 0.05
MAX_IN_FLIGHT = 2000


def environ(url: str) -> dict[str, str]:
    return {
        "GUANXI_DATABASE_URL": url,
        "GUANXI_PLUGINS": "pigeon",
        "GUANXI__PLUGINS__PIGEON__WEBHOOK_SECRET": SECRET,
        "GUANXI__AUTH__SECRET": SERVER_SECRET,
        # one admin key sends every page: above a caller's default rate (50/s) at --rate 80,
        # and a 429 would be counted as a cheap answer
        "GUANXI__AUTH__RATE_PER_S": "1000000",
        "GUANXI__AUTH__RATE_BURST": "1000000",
    }


def delivery(n: int, sender: int, run: str, secret: str) -> tuple[bytes, dict[str, str]]:
    import datetime as dt

    body = json.dumps(
        {
            "event_id": f"{run}-{n}",
            "type": "message",
            "sent_at": dt.datetime.now(dt.UTC).isoformat(),
            "from": {"id": f"soak-{run}-{sender}", "name": f"Sender {sender}"},
            "text": f"消息 {n}: soak",
        }
    ).encode()
    ts = str(int(time.time()))
    return body, {
        "content-type": "application/json",
        "X-Pigeon-Timestamp": ts,
        "X-Pigeon-Signature": sign(secret, body, timestamp=ts, prefix="sha256="),
    }


# -- the load generator (its own process) ---------------------------------------------------------


async def generate(args: argparse.Namespace) -> None:
    """Send at ``args.rate`` per second for ``args.seconds``; print one JSON line per interval
    (by answer time): answered, errors, page and webhook latencies (ms)."""
    rng = random.Random(args.seed)
    run = secrets.token_hex(3)
    senders = 300
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    headers = {"Authorization": f"Bearer {args.key}"}
    buckets: dict[int, dict[str, Any]] = defaultdict(lambda: {"answered": 0, "errors": 0, "page": [], "webhook": [], "dropped": 0})
    in_flight = 0
    async with httpx.AsyncClient(base_url=args.base, limits=limits, timeout=120) as client:
        t0 = time.perf_counter()

        async def one(n: int) -> None:
            nonlocal in_flight, senders
            page = rng.random() < PAGE_SHARE
            t = time.perf_counter()
            try:
                if page:
                    response = await client.post("/graphql", json={"query": PAGE, "variables": {"n": PAGE_SIZE}}, headers=headers)
                    ok = response.status_code == 200 and not response.json().get("errors")
                else:
                    if rng.random() < NEW_SENDER_SHARE:
                        senders += 1
                    body, hdrs = delivery(n, rng.randrange(senders), run, args.secret)
                    response = await client.post("/webhooks/pigeon/main", content=body, headers=hdrs)
                    ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            done = time.perf_counter()
            bucket = buckets[int((done - t0) // args.interval)]
            bucket["answered"] += 1
            bucket["errors"] += 0 if ok else 1
            bucket["page" if page else "webhook"].append((done - t) * 1000)
            in_flight -= 1

        tasks = set()
        n = 0
        while True:
            target = t0 + n / args.rate
            if target - t0 >= args.seconds:
                break
            # always yield: a generator behind its schedule must still let its requests run
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            if in_flight >= MAX_IN_FLIGHT:  # the server is hopelessly behind: count, do not pile on
                buckets[int((time.perf_counter() - t0) // args.interval)]["dropped"] += 1
            else:
                in_flight += 1
                task = asyncio.create_task(one(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.wait(tasks, timeout=120)
    for index in sorted(buckets):
        print(json.dumps({"interval": index, **buckets[index]}), flush=True)


# -- statement timing (in this process) -----------------------------------------------------------


def normalize(statement: str) -> str:
    text = re.sub(r"\s+", " ", statement).strip()
    text = re.sub(r"\(\[POSTCOMPILE_\w+\]\)|\(\?(, \?)+\)|\(\$\d+(::\w+)?(, \$\d+(::\w+)?)+\)", "(…)", text)
    return text[:200]


STEP = 100  # SQLite: the progress handler counts every STEP virtual-machine instructions


class StatementTimes:
    """Time every statement the engine runs, by its text; on SQLite also count the work it did
    (virtual-machine instructions, through a progress handler), which unlike time does not
    depend on how busy the machine is."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.engine.sync_engine
        self.sqlite = runtime.engine.dialect.name == "sqlite"
        self.times: dict[str, list[float]] = defaultdict(list)
        self.steps: dict[str, list[int]] = defaultdict(list)
        self.counters: dict[int, list[int]] = {}

    def _counter(self, conn: Any) -> list[int] | None:
        if not self.sqlite:
            return None
        from sqlalchemy.util.concurrency import await_

        raw = conn.connection.driver_connection  # aiosqlite's Connection
        counter = self.counters.get(id(raw))
        if counter is None:
            counter = self.counters[id(raw)] = [0]

            def tick() -> int:
                counter[0] += 1
                return 0

            # aiosqlite runs the call on its thread; the adapted connection awaits it
            await_(raw.set_progress_handler(tick, STEP))
        return counter

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        counter = self._counter(conn)
        conn.info.setdefault("soak_t", []).append((time.perf_counter(), counter[0] if counter else 0))

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started, steps = conn.info["soak_t"].pop()
        text = normalize(statement)
        self.times[text].append((time.perf_counter() - started) * 1000)
        counter = self._counter(conn)
        if counter is not None:
            self.steps[text].append((counter[0] - steps) * STEP)

    def __enter__(self) -> StatementTimes:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


async def probe(runtime: Runtime, tenant_id: uuid.UUID, key: str, run: str) -> dict[str, dict[str, float]]:
    """5 pages and 5 deliveries through the app in process, the deliveries applied by the inbox;
    every statement's calls and mean ms, by text."""
    from guanxi.app import create_app
    from guanxi.core.queues import inbox

    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://soak.local") as client:
        await client.post("/graphql", json={"query": PAGE, "variables": {"n": PAGE_SIZE}}, headers={"Authorization": f"Bearer {key}"})
        with StatementTimes(runtime) as timed:
            for i in range(5):
                r = await client.post(
                    "/graphql", json={"query": PAGE, "variables": {"n": PAGE_SIZE}}, headers={"Authorization": f"Bearer {key}"}
                )
                assert r.status_code == 200, r.text
                body, headers = delivery(i, i, f"probe-{run}", SECRET)
                assert (await client.post("/webhooks/pigeon/main", content=body, headers=headers)).status_code < 300
            for _ in range(20):
                if not await inbox.run_once(runtime, tenant_id=tenant_id):
                    break
    out: dict[str, dict[str, float]] = {}
    for text, ms in timed.times.items():
        out[text] = {"calls": len(ms), "mean_ms": round(sum(ms) / len(ms), 3)}
        if timed.steps.get(text):
            out[text]["mean_vm_steps"] = round(sum(timed.steps[text]) / len(timed.steps[text]))
    return out


def growth(start: dict[str, dict[str, float]], end: dict[str, dict[str, float]], top: int = 8) -> list[dict[str, Any]]:
    """The statements whose cost per call grew most between the probes: by SQLite's work
    (virtual-machine instructions) when counted, else by time."""
    rows = []
    for text, after in end.items():
        before = start.get(text)
        if before is None:
            continue
        key = "mean_vm_steps" if "mean_vm_steps" in after and "mean_vm_steps" in before else "mean_ms"
        rows.append(
            {
                "statement": text,
                "measure": key,
                "start": before[key],
                "end": after[key],
                "growth": round(after[key] / before[key], 2) if before[key] else None,
                "calls_per_probe": after["calls"],
                "start_ms": before["mean_ms"],
                "end_ms": after["mean_ms"],
            }
        )
    rows.sort(key=lambda r: (r["end"] - r["start"]) * r["calls_per_probe"], reverse=True)
    return rows[:top]


def top_statements(times: dict[str, dict[str, float]], top: int = 6) -> list[dict[str, Any]]:
    rows = [{"statement": t, **v} for t, v in times.items()]
    rows.sort(key=lambda r: r.get("mean_vm_steps", r["mean_ms"]) * r["calls"], reverse=True)
    return rows[:top]


# -- the run ----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


SCRIPT = Path(__file__).resolve()


def start_generator(args: argparse.Namespace, base: str, key: str, seconds: float) -> subprocess.Popen[str]:
    """The load generator: this script with ``--generate``, in its own process."""
    options = ["--rate", str(args.rate), "--seconds", str(seconds), "--interval", str(args.interval), "--seed", str(args.seed)]
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--generate", "--base", base, "--key", key, "--secret", SECRET, *options],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


async def backlog(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(InboxEvent).where(InboxEvent.status != "done"))).scalar_one())


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from guanxi.core.migrate import upgrade
    from guanxi.testing.plugin import use_tenant

    slug = f"soak-{secrets.token_hex(3)}"
    rt = Runtime.from_config(None, environ={**environ(url), "GUANXI__TENANT": slug})
    await upgrade(rt)
    await rt.start()
    proc = gen = None
    tenant_id: uuid.UUID | None = None
    try:
        tenant_id = await seed_customers(rt, slug, args.customers)
        await use_config_accounts(rt, tenant_id)
        await use_tenant(rt, tenant_id)
        async with rt.engine.begin() as conn:
            await refresh_statistics(conn)
        key = await admin_key(rt, tenant_id)
        run_id = secrets.token_hex(3)
        probe_start = await probe(rt, tenant_id, key, run_id + "a")
        port = free_port()
        proc = spawn("guanxi", port, {**environ(url), "GUANXI__TENANT": slug})
        base = f"http://127.0.0.1:{port}"
        await wait_ready(proc, base)
        seconds = args.minutes * 60
        gen = start_generator(args, base, key, seconds)
        samples = []
        t0 = time.perf_counter()
        cpu_prev = cpu_seconds(proc.pid) or 0.0
        index = 0
        while gen.poll() is None:
            wake = t0 + (index + 1) * args.interval
            await asyncio.sleep(max(0.0, wake - time.perf_counter()))
            cpu_now = cpu_seconds(proc.pid) or 0.0
            samples.append({"cpu_s": round(cpu_now - cpu_prev, 3), "rss_mb": rss_mb(proc.pid), "backlog": await backlog(rt, tenant_id)})
            cpu_prev = cpu_now
            index += 1
            if time.perf_counter() - t0 > seconds + 180:
                break
        out, _ = gen.communicate(timeout=300)
        buckets = {b["interval"]: b for b in (json.loads(line) for line in out.splitlines() if line.strip())}
        intervals = []
        for i, sample in enumerate(samples):
            b = buckets.get(i, {"answered": 0, "errors": 0, "page": [], "webhook": [], "dropped": 0})
            if i * args.interval >= seconds:  # the tail after the schedule: only late answers
                break
            answered = b["answered"]
            intervals.append(
                {
                    "minute": round((i + 0.5) * args.interval / 60, 2),
                    "rps": round(answered / args.interval, 1),
                    "page_p50_ms": round(pct(b["page"], 0.5), 1),
                    "page_p99_ms": round(pct(b["page"], 0.99), 1),
                    "webhook_p50_ms": round(pct(b["webhook"], 0.5), 1),
                    "webhook_p99_ms": round(pct(b["webhook"], 0.99), 1),
                    "errors": b["errors"],
                    "dropped": b["dropped"],
                    "server_cpu": round(sample["cpu_s"] / args.interval, 3),
                    "cpu_ms_per_request": round(sample["cpu_s"] * 1000 / answered, 2) if answered else None,
                    "rss_mb": sample["rss_mb"],
                    "inbox_backlog": sample["backlog"],
                }
            )
        # let the worker finish, then measure the grown tenant in process
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if not await backlog(rt, tenant_id):
                break
            await asyncio.sleep(0.5)
        stop_server(proc)
        proc = None
        probe_end = await probe(rt, tenant_id, key, run_id + "b")
        async with rt.session(tenant_id) as s:
            customers = int((await s.execute(select(func.count()).select_from(Customer))).scalar_one())
            interactions = int((await s.execute(select(func.count()).select_from(Interaction))).scalar_one())
        measured = [i for i in intervals if i["cpu_ms_per_request"] is not None]
        q = max(1, len(measured) // 4)
        first = [i["cpu_ms_per_request"] for i in measured[:q]]
        last = [i["cpu_ms_per_request"] for i in measured[-q:]]
        trend = slope([i["minute"] for i in measured], [i["cpu_ms_per_request"] for i in measured])
        return {
            "minutes": args.minutes,
            "rate": args.rate,
            "interval_s": args.interval,
            "seeded_customers": args.customers,
            "customers_after": customers,
            "interactions_after": interactions,
            "requests_answered": sum(b["answered"] for b in buckets.values()),
            "errors": sum(b["errors"] for b in buckets.values()),
            "dropped": sum(b["dropped"] for b in buckets.values()),
            "intervals": intervals,
            "cpu_ms_per_request_first_quarter": round(sum(first) / len(first), 2) if first else None,
            "cpu_ms_per_request_last_quarter": round(sum(last) / len(last), 2) if last else None,
            "cpu_ms_per_request_slope": round(trend, 3) if trend is not None else None,
            "ratio": round((sum(last) / len(last)) / (sum(first) / len(first)), 3) if first and last and sum(first) else None,
            "probe_start": top_statements(probe_start),
            "probe_end": top_statements(probe_end),
            "growth": growth(probe_start, probe_end),
            **context(url),
        }
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
        stop_server(proc)
        if tenant_id is not None:
            await release_accounts(rt, [tenant_id])  # the account keys are free for the next bench
        await rt.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=40.0, help="requests per second, sent on a fixed schedule")
    p.add_argument("--interval", type=float, default=30.0, help="seconds per reported interval")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    p.add_argument("--json", action="store_true")
    # the load generator's own process
    p.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--secret", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    add_smoke(p, minutes=0.25, rate=4.0, interval=5.0, customers=50)
    args = parse(p, argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.generate:
        asyncio.run(generate(args))
        return 0
    with tempfile.TemporaryDirectory(prefix="guanxi-soak-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'soak.db'}"
        log(f"soak on {url.split('://')[0]}: {args.rate}/s for {args.minutes} min …")
        result = asyncio.run(run(args, url))
    if args.json:
        print(json.dumps(result))
    else:
        for row in result.pop("intervals"):
            print(row)
        for key, value in result.items():
            print(f"{key:>34}: {value}")
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
