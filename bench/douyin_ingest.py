"""Benchmark: signed Douyin webhook deliveries through a real HTTP server on loopback.

    python bench/douyin_ingest.py --events 2000 --json [--concurrency 16] [--database-url URL]

Starts the Guanxi app (the ``douyin`` plugin with a deployment app and one connected business
account: ``POST /webhooks/douyin``, SHA-1 signed, the app found by ``client_key`` and the tenant
by the business account, with the in-process inbox worker) and, with the same uvicorn settings,
a bare Litestar endpoint that decodes the same body (envelope and JSON-string ``content``) with
msgspec. Sends ``--events`` distinct ``im_receive_msg`` deliveries to each in alternating rounds
and prints JSON:

- ``events_per_s``: webhook answers (acks) per second; ``p50_ack_ms``, ``p99_ack_ms``
- ``processed_per_s`` and ``processed_s``: events turned into customers, identities,
  interactions and reply windows, from the first delivery until the inbox processed every one
- ``baseline_rps``: the bare endpoint's requests per second; ``ratio`` = events_per_s / baseline_rps
- ``uncached_events_per_s``, ``lookup_cache_speedup``: a second app process with
  ``lookup_cache_s = 0`` (every request looks up the app and the authorization) gets as many
  other deliveries in the same rounds: the cache's before/after in one run
- ``exactly_once``: 5 % of the deliveries are sent three times (same ``Msg-Id``, as Douyin
  retries); every event (of both app processes) became exactly one interaction

No API call is made (receiving needs none): the figure is the webhook path and the inbox.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench._ingest_server import Side, cli, context, spawn  # noqa: E402
from bench.graphql_list import cpu_seconds, free_port, stop_server, wait_ready  # noqa: E402
from bench.ingest import blast, processed_count  # noqa: E402
from guanxi.core.domain.models import Interaction  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402

CLIENT_KEY = "awbench000000001"
CLIENT_SECRET = secrets.token_hex(16)
BUSINESS = "biz-bench-0001"
SERVER_SECRET = secrets.token_hex(32)


def environ(url: str) -> dict[str, str]:
    return {
        "GUANXI_DATABASE_URL": url,
        "GUANXI_PLUGINS": "douyin",
        "GUANXI__PLUGINS__DOUYIN__CLIENT_KEY": CLIENT_KEY,
        "GUANXI__PLUGINS__DOUYIN__CLIENT_SECRET": CLIENT_SECRET,
        "GUANXI__AUTH__SECRET": SERVER_SECRET,
    }


def start(app: str, port: int, url: str, slug: str, **extra: str) -> subprocess.Popen[bytes]:
    return spawn(app, port, {"GUANXI__TENANT": slug, **environ(url), **extra})


def delivery(n: int, run: str) -> tuple[bytes, dict[str, str]]:
    """One signed ``im_receive_msg`` (``content`` a JSON string, numbers as strings, as Douyin sends)."""
    customer = f"cust-{run}-{n % 500}"
    content = {
        "conversation_short_id": f"conv-{n % 500}",
        "server_message_id": f"{run}-{n}",
        "conversation_type": "1",
        "message_type": "text",
        "text": f"消息 {n}: 想了解一下价格",
        "source": "",
        "create_time": str(int(time.time() * 1000) + n),
        "user_infos": [{"open_id": customer, "nick_name": f"用户{n % 500}", "avatar": "https://p3.douyinpic.com/a.jpg"}],
    }
    envelope = {
        "event": "im_receive_msg",
        "client_key": CLIENT_KEY,
        "from_user_id": customer,
        "to_user_id": BUSINESS,
        "content": json.dumps(content, ensure_ascii=False),
        "log_id": f"log-{n}",
    }
    body = json.dumps(envelope, ensure_ascii=False).encode()
    signature = hashlib.sha1(CLIENT_SECRET.encode() + body).hexdigest()
    return body, {"content-type": "application/json", "X-Douyin-Signature": signature, "Msg-Id": f"{run}-{n}"}


async def run(args: argparse.Namespace, url: str, _folder: Path) -> dict[str, Any]:
    from guanxi.core.services.pipelines import create_tenant
    from guanxi.plugins.douyin.models import DouyinAuthorization

    slug = f"douyin-{secrets.token_hex(3)}"
    rt = Runtime.from_config(environ=environ(url))
    await upgrade(rt)
    async with rt.session(None) as s, s.begin():
        tenant_id = await create_tenant(s, slug, "Douyin ingest benchmark")
    async with rt.write_session(tenant_id) as s:  # the business account that authorized the app
        s.add(
            DouyinAuthorization(open_id=BUSINESS, client_key=CLIENT_KEY, app_key="", status="connected", scopes=[], tokens="", renewals=0)
        )
    gport, uport, bport = free_port(), free_port(), free_port()
    guanxi_proc = start("guanxi", gport, url, slug)
    # the same app without the per-process lookup cache (the "before" of the cache, same run)
    uncached_proc = start("guanxi", uport, url, slug, GUANXI__PLUGINS__DOUYIN__LOOKUP_CACHE_S="0")
    base_proc = start("douyin-baseline", bport, url, slug)
    try:
        await wait_ready(guanxi_proc, f"http://127.0.0.1:{gport}")
        await wait_ready(uncached_proc, f"http://127.0.0.1:{uport}")
        await wait_ready(base_proc, f"http://127.0.0.1:{bport}")
        run_id, uncached_run = secrets.token_hex(3), secrets.token_hex(3)
        bodies = [delivery(i, run_id) for i in range(args.events)]
        uncached_bodies = [delivery(i, uncached_run) for i in range(args.events)]
        retries = bodies[: max(1, args.events // 20)]
        deadline = time.monotonic() + args.time_limit
        rounds = 4
        per = max(1, len(bodies) // rounds)
        g, u, b = Side(), Side(), Side()
        g_cpu0 = cpu_seconds(guanxi_proc.pid)
        first_send = time.perf_counter()
        for r in range(rounds):  # alternate, so drift of the machine hits both
            chunk = bodies[r * per : (r + 1) * per] if r < rounds - 1 else bodies[r * per :]
            g.add(await blast(f"http://127.0.0.1:{gport}", [("/webhooks/douyin", *x) for x in chunk], args.concurrency, deadline))
            uncached = uncached_bodies[r * per : (r + 1) * per] if r < rounds - 1 else uncached_bodies[r * per :]
            u.add(await blast(f"http://127.0.0.1:{uport}", [("/webhooks/douyin", *x) for x in uncached], args.concurrency, deadline))
            b.add(await blast(f"http://127.0.0.1:{bport}", [("/baseline", *x) for x in chunk], args.concurrency, deadline))
        g_cpu1 = cpu_seconds(guanxi_proc.pid)
        for _ in range(2):  # Douyin retries: the same deliveries (same Msg-Id) again
            await blast(f"http://127.0.0.1:{gport}", [("/webhooks/douyin", *b) for b in retries], args.concurrency, deadline)
        while time.monotonic() < deadline:  # polling another process's progress in the database
            if await processed_count(rt, tenant_id, "douyin") >= 2 * len(bodies):
                break
            await asyncio.sleep(0.05)
        done = await processed_count(rt, tenant_id, "douyin")
        processed_s = time.perf_counter() - first_send
        async with rt.session(tenant_id) as s:
            interactions = int(
                (await s.execute(select(func.count()).select_from(Interaction).where(Interaction.channel == "douyin"))).scalar_one()
            )
        return {
            "events": args.events,
            "concurrency": args.concurrency,
            "events_per_s": round(g.per_s, 1),
            "p50_ack_ms": g.pct(0.5),
            "p99_ack_ms": g.pct(0.99),
            "processed": done,
            "processed_s": round(processed_s, 3),
            "processed_per_s": round(done / processed_s, 1) if processed_s else 0.0,
            "interactions": interactions,
            "exactly_once": interactions == 2 * len(bodies) == done,
            "duplicates_sent": 2 * len(retries),
            "errors": g.errors + u.errors,
            "uncached_events_per_s": round(u.per_s, 1),
            "uncached_p99_ack_ms": u.pct(0.99),
            "lookup_cache_speedup": round(g.per_s / u.per_s, 3) if u.per_s else None,
            "baseline": "bare msgspec decode of the same body (envelope and content), same uvicorn settings",
            "baseline_rps": round(b.per_s, 1),
            "baseline_p99_ms": b.pct(0.99),
            "baseline_errors": b.errors,
            "ratio": round(g.per_s / b.per_s, 4) if b.per_s else None,
            "server_cpu_ms_per_event": round((g_cpu1 - g_cpu0) * 1000 / len(g.latencies), 3)
            if g_cpu0 is not None and g_cpu1 is not None and g.latencies
            else None,
            **context(url),
        }
    finally:
        stop_server(guanxi_proc)
        stop_server(uncached_proc)
        stop_server(base_proc)
        await rt.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    return cli(__doc__, "douyin", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
