"""Benchmark: signed webhook deliveries through a real HTTP server on loopback.

    python bench/ingest.py --events 2000 --json [--concurrency 16] [--database-url URL]

Starts the Guanxi app (the example ``pigeon`` channel plugin's ``POST /webhooks/pigeon``, HMAC
signed, with the in-process inbox worker) and, with the same uvicorn settings, a bare Litestar
endpoint that decodes the same JSON body with msgspec. Sends ``--events`` distinct signed events
to each in alternating rounds and prints JSON:

- ``events_per_s``: webhook answers (acks) per second; ``p50_ack_ms``, ``p99_ack_ms``
- ``processed_per_s``: events turned into interactions per second, from the first delivery until
  the inbox has processed every event
- ``baseline_rps``: the bare endpoint's requests per second; ``ratio`` = events_per_s / baseline_rps
- ``duplicates_ignored``: a sample of events is delivered three times, as providers retry; the
  check that each became one interaction is part of the run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench._ingest_server import cli, context, release_accounts, spawn, use_config_accounts  # noqa: E402
from bench.graphql_list import cpu_seconds, free_port, pct, stop_server, wait_ready  # noqa: E402
from guanxi import sign  # noqa: E402
from guanxi.core.domain.models import InboxEvent, Interaction  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402

SECRET = secrets.token_hex(16)
#: The server secret that seals Pigeon's account: the same for this process and the servers.
SERVER_SECRET = secrets.token_hex(32)


def environ(url: str, slug: str) -> dict[str, str]:
    return {"GUANXI_DATABASE_URL": url, "GUANXI__TENANT": slug, "GUANXI_PLUGINS": "pigeon", "GUANXI__AUTH__SECRET": SERVER_SECRET}


def start(app: str, port: int, url: str, slug: str, worker_process: bool = False) -> subprocess.Popen[bytes]:
    return spawn(app, port, environ(url, slug) | ({"GUANXI__QUEUES__RUN_WORKERS": "false"} if worker_process else {}))


def start_worker(url: str, slug: str) -> subprocess.Popen[bytes]:
    """``guanxi worker`` (inbox, outbox, scheduler) in its own process, for ``--worker-process``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environ(url, slug)}
    cmd = [sys.executable, "-m", "guanxi", "worker"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True)


def delivery(n: int, run: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event_id": f"{run}-{n}",
            "type": "message",
            "sent_at": dt.datetime.now(dt.UTC).isoformat(),
            "from": {"id": f"sender-{n % 500}", "name": f"Sender {n % 500}"},
            "text": f"消息 {n}: hello from the load test",
        }
    ).encode()
    ts = str(int(time.time()))
    signature = sign(SECRET, body, timestamp=ts, prefix="sha256=")
    return body, {"content-type": "application/json", "X-Pigeon-Timestamp": ts, "X-Pigeon-Signature": signature}


def accepted(response: httpx.Response) -> bool:
    return response.status_code < 300


async def blast(
    base: str,
    requests: list[tuple[str, bytes, dict[str, str]]],
    concurrency: int,
    deadline: float,
    ok: Callable[[httpx.Response], bool] = accepted,
) -> tuple[list[float], float, int]:
    """POST every (path, body, headers) once; return ack latencies (ms), elapsed seconds and the
    count of answers ``ok`` refuses (default: not 2xx)."""
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while queue and time.monotonic() < deadline:
                path, body, headers = queue.pop()
                t = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append((time.perf_counter() - t) * 1000)
                if not ok(response):
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - t0, errors


async def paced(
    base: str,
    requests: list[tuple[str, bytes, dict[str, str]]],
    rate: float,
    ok: Callable[[httpx.Response], bool] = accepted,
) -> tuple[list[float], float, int]:
    """Open loop: POST ``requests[i]`` at ``i / rate`` seconds from the start whether or not the
    earlier ones were answered (as a provider delivers), so the latency at a given load is the
    server's and not the client's queue; return the latencies (ms, from each request's send),
    the seconds the sends took and the count of answers ``ok`` refuses."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(path: str, body: bytes, headers: dict[str, str]) -> None:
            nonlocal errors
            t = time.perf_counter()
            response = await client.post(path, content=body, headers=headers)
            latencies.append((time.perf_counter() - t) * 1000)
            if not ok(response):
                errors += 1

        tasks = []
        t0 = time.perf_counter()
        for i, request in enumerate(requests):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(*request)))
        took = time.perf_counter() - t0
        await asyncio.gather(*tasks)
        return latencies, took, errors


Build = Callable[[int, int], list[tuple[str, bytes, dict[str, str]]]]


async def at_load(
    sides: tuple[tuple[str, Build], tuple[str, Build]],
    args: argparse.Namespace,
    baseline_rps: float,
    drained: Callable[[int], Awaitable[bool]],
    ok: Callable[[httpx.Response], bool] = accepted,
) -> dict[str, Any]:
    """The open-loop part of a run: ``--paced-seconds`` at ``--rate`` requests/s (default half
    the bare endpoint's closed-loop rate: the ratio-0.5 load), in 2 alternating rounds per side,
    each Guanxi round once the inbox worker has applied the events sent before (``drained(n)``), so
    the latency is that of the load at this rate, not of the closed-loop rounds' backlog;
    ``sides``: Guanxi's and the bare endpoint's base URL and request builder (``build(start, n)``:
    the requests of events ``start`` … ``start + n - 1``, numbered after the closed-loop ones)."""
    (gbase, guanxi), (bbase, bare) = sides
    rate = args.rate or max(1.0, round(baseline_rps / 2, 1))
    per_round = max(1, int(rate * args.paced_seconds / 2))
    g_lat: list[float] = []
    b_lat: list[float] = []
    g_err = b_err = 0
    waited = 0.0
    for r in range(2):
        t = time.perf_counter()
        while time.perf_counter() - t < args.time_limit / 4:  # polling another process's progress
            if await drained(args.events + r * per_round):
                break
            await asyncio.sleep(0.05)
        waited += time.perf_counter() - t
        lat, _, err = await paced(gbase, guanxi(args.events + r * per_round, per_round), rate, ok)
        g_lat, g_err = g_lat + lat, g_err + err
        lat, _, err = await paced(bbase, bare(args.events + r * per_round, per_round), rate, ok)
        b_lat, b_err = b_lat + lat, b_err + err
    return {
        "paced_rate": rate,
        "paced_events": 2 * per_round,
        "paced_p50_ack_ms": round(pct(g_lat, 0.5), 2),
        "paced_p99_ack_ms": round(pct(g_lat, 0.99), 2),
        "paced_max_ack_ms": round(max(g_lat), 2) if g_lat else None,
        "paced_errors": g_err,
        "paced_baseline_p50_ms": round(pct(b_lat, 0.5), 2),
        "paced_baseline_p99_ms": round(pct(b_lat, 0.99), 2),
        "paced_baseline_errors": b_err,
        "paced_drain_wait_s": round(waited, 1),
    }


async def processed_count(rt: Runtime, tenant_id: Any, channel: str | None = None) -> int:
    """Inbox rows of the tenant (of one channel, if given) the worker has applied."""
    stmt = select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "done")
    if channel is not None:
        stmt = stmt.where(InboxEvent.channel == channel)
    async with rt.session(tenant_id) as s:
        return int((await s.execute(stmt)).scalar_one())


async def run(args: argparse.Namespace, url: str, _folder: Path) -> dict[str, Any]:
    from guanxi.core.services.pipelines import create_tenant

    slug = f"ingest-{secrets.token_hex(3)}"
    rt = Runtime.from_config(
        environ={
            "GUANXI_DATABASE_URL": url,
            "GUANXI_PLUGINS": "pigeon",
            "GUANXI__PLUGINS__PIGEON__WEBHOOK_SECRET": SECRET,
            "GUANXI__AUTH__SECRET": SERVER_SECRET,
        }
    )
    await upgrade(rt)
    async with rt.session(None) as s, s.begin():
        tenant_id = await create_tenant(s, slug, "Ingest benchmark")
    await use_config_accounts(rt, tenant_id)  # Pigeon's account "main", as `guanxi db upgrade` does
    gport, bport = free_port(), free_port()
    guanxi_proc = start("guanxi", gport, url, slug, args.worker_process)
    base_proc = start("baseline", bport, url, slug)
    worker_proc = start_worker(url, slug) if args.worker_process else None
    try:
        await wait_ready(guanxi_proc, f"http://127.0.0.1:{gport}")
        await wait_ready(base_proc, f"http://127.0.0.1:{bport}")
        run_id = secrets.token_hex(3)
        bodies = [delivery(i, run_id) for i in range(args.events)]
        retries = bodies[: max(1, args.events // 20)]  # 5% of the events are delivered 3 times
        deadline = time.monotonic() + args.time_limit
        rounds = 4
        per = max(1, len(bodies) // rounds)
        g_lat: list[float] = []
        b_lat: list[float] = []
        g_time = b_time = 0.0
        g_err = b_err = 0
        g_cpu0 = cpu_seconds(guanxi_proc.pid)
        first_send = time.perf_counter()
        for r in range(rounds):  # alternate, so drift of the machine hits both
            chunk = bodies[r * per : (r + 1) * per] if r < rounds - 1 else bodies[r * per :]
            lat, took, err = await blast(
                f"http://127.0.0.1:{gport}", [("/webhooks/pigeon/main", *b) for b in chunk], args.concurrency, deadline
            )
            g_lat += lat
            g_time += took
            g_err += err
            lat, took, err = await blast(f"http://127.0.0.1:{bport}", [("/baseline", *b) for b in chunk], args.concurrency, deadline)
            b_lat += lat
            b_time += took
            b_err += err
        g_cpu1 = cpu_seconds(guanxi_proc.pid)
        baseline_rps = len(b_lat) / b_time if b_time else 0.0

        def calls(path: str) -> Build:
            return lambda start, n: [(path, *delivery(i, run_id)) for i in range(start, start + n)]

        sides = ((f"http://127.0.0.1:{gport}", calls("/webhooks/pigeon/main")), (f"http://127.0.0.1:{bport}", calls("/baseline")))

        async def drained(n: int) -> bool:
            return await processed_count(rt, tenant_id) >= n

        load = await at_load(sides, args, baseline_rps, drained)
        total = len(bodies) + load["paced_events"]
        for _ in range(2):  # providers retry: the same deliveries again
            await blast(f"http://127.0.0.1:{gport}", [("/webhooks/pigeon/main", *b) for b in retries], args.concurrency, deadline)
        while time.monotonic() < deadline:  # polling another process's progress in the database
            if await processed_count(rt, tenant_id) >= total:
                break
            await asyncio.sleep(0.05)
        done = await processed_count(rt, tenant_id)
        processed_s = time.perf_counter() - first_send
        async with rt.session(tenant_id) as s:
            interactions = int((await s.execute(select(func.count()).select_from(Interaction))).scalar_one())
        events_per_s = len(g_lat) / g_time if g_time else 0.0
        return {
            "events": args.events,
            "concurrency": args.concurrency,
            "events_per_s": round(events_per_s, 1),
            "p50_ack_ms": round(pct(g_lat, 0.5), 2),
            "p99_ack_ms": round(pct(g_lat, 0.99), 2),
            "processed": done,
            "processed_per_s": round(done / processed_s, 1) if processed_s else 0.0,
            "interactions": interactions,
            "exactly_once": interactions == total == done,
            "duplicates_sent": 2 * len(retries),
            "errors": g_err,
            "baseline_rps": round(baseline_rps, 1),
            "baseline_p99_ms": round(pct(b_lat, 0.99), 2),
            "baseline_errors": b_err,
            "ratio": round(events_per_s / baseline_rps, 4) if baseline_rps else None,
            **load,
            "server_cpu_ms_per_event": round((g_cpu1 - g_cpu0) * 1000 / len(g_lat), 3)
            if g_cpu0 is not None and g_cpu1 is not None and g_lat
            else None,
            "worker_process": args.worker_process,
            **context(url),
        }
    finally:
        stop_server(guanxi_proc)
        stop_server(base_proc)
        if worker_proc is not None:
            stop_server(worker_proc)
        await release_accounts(rt, [tenant_id])  # the account keys are free for the next bench
        await rt.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    return cli(__doc__, "ingest", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
