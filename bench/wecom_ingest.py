"""Benchmark: encrypted WeCom add_external_contact callbacks through a real HTTP server on loopback.

    python bench/wecom_ingest.py --events 2000 --json [--concurrency 16] [--database-url URL]

Starts one Guanxi app process (uvicorn, one worker, the in-process inbox worker) with two
plugins enabled: ``wecom`` (one corp; callbacks signed with SHA-1 and encrypted with AES-256-CBC
exactly as WeCom does, at ``POST /wecom/callback/bench``) and the example ``pigeon`` channel
(plain HMAC-signed JSON at ``POST /webhooks/pigeon/main``, its config account), the baseline.
Sends ``--events`` distinct events to each in alternating rounds, so drift of the machine hits both, and prints JSON:

- ``events_per_s``: WeCom callback answers (acks) per second; ``p50_ack_ms``, ``p99_ack_ms``
- ``processed_per_s``: WeCom events turned into customers, identities, interactions and follow
  rows per second, from the first delivery until the inbox has processed every event
- ``baseline_events_per_s``, ``baseline_p99_ack_ms``: the same for the signed-JSON channel
- ``ratio`` = events_per_s / baseline_events_per_s (1.0 = WeCom's crypto and XML cost nothing)
- ``exactly_once``: 5 % of the callbacks are sent three times (re-signed, as WeCom retries);
  every event became exactly one interaction and one follow row

No secret is configured, so no API call is made (no welcome message, no profile fetch): the
figure is the callback path and the inbox, not WeCom's API.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import cpu_seconds, free_port, log, pct, stop_server, wait_ready  # noqa: E402
from bench.ingest import blast, processed_count  # noqa: E402
from guanxi import sign  # noqa: E402
from guanxi.core.domain.models import Interaction  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.plugins.wecom.crypto import WecomCrypto  # noqa: E402
from guanxi.plugins.wecom.models import WecomFollow  # noqa: E402

CORP_ID = "wwbench0000000001"
TOKEN = secrets.token_hex(8)
AES_KEY = secrets.token_urlsafe(40).replace("-", "a").replace("_", "b")[:43]
PIGEON_SECRET = secrets.token_hex(16)
#: the server secret of this run, shared by the bench's runtime and the server process (the corp's
#: account secrets are sealed with a key derived from it)
SERVER_SECRET = secrets.token_hex(32)
CRYPTO = WecomCrypto(TOKEN, AES_KEY, CORP_ID)


def config_file(folder: Path) -> Path:
    path = folder / "guanxi-bench.toml"
    path.write_text(
        "[plugins.wecom]\ntimestamp_window_s = 3600\nfetch_profiles = false\n"
        f'[[plugins.wecom.corps]]\nkey = "bench"\ncorp_id = "{CORP_ID}"\ntoken = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\n'
        f'[plugins.pigeon]\nwebhook_secret = "{PIGEON_SECRET}"\n',
        encoding="utf-8",
    )
    return path


def start(port: int, url: str, slug: str, config: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GUANXI_CONFIG": str(config),
        "GUANXI_DATABASE_URL": url,
        "GUANXI__TENANT": slug,
        "GUANXI_PLUGINS": "pigeon,wecom",
        "GUANXI__AUTH__SECRET": SERVER_SECRET,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bench._ingest_server", "--app", "guanxi", "--port", str(port)], cwd=ROOT, env=env, start_new_session=True
    )


def wecom_callback(n: int, run: str, created: int) -> tuple[str, bytes, dict[str, str]]:
    """The path with the signed query, the envelope body, headers (re-signed on every call)."""
    inner = (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[staff{n % 20}]]></UserID><ExternalUserID><![CDATA[wm{run}{n:07d}]]></ExternalUserID>"
        f"<State><![CDATA[bench-{n % 7}]]></State><WelcomeCode><![CDATA[WC{n}]]></WelcomeCode></xml>"
    )
    encrypt, ts, nonce = CRYPTO.encrypt(inner), str(int(time.time())), secrets.token_hex(5)
    from guanxi.plugins.wecom.crypto import signature

    query = urlencode({"msg_signature": signature(TOKEN, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce})
    body = f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID>1000002</AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return f"/wecom/callback/bench?{query}", body.encode(), {"content-type": "text/xml"}


def empty_ack(response: Any) -> bool:
    """WeCom's contract: 200 with an empty body."""
    return bool(response.status_code == 200 and not response.content)


def pigeon_delivery(n: int, run: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event_id": f"{run}-{n}",
            "type": "follow",
            "sent_at": dt.datetime.now(dt.UTC).isoformat(),
            "from": {"id": f"p{run}{n:07d}", "name": f"Sender {n}"},
        }
    ).encode()
    ts = str(int(time.time()))
    return body, {
        "content-type": "application/json",
        "X-Pigeon-Timestamp": ts,
        "X-Pigeon-Signature": sign(PIGEON_SECRET, body, timestamp=ts, prefix="sha256="),
    }


async def run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    from guanxi.core.services.accounts import import_config_accounts
    from guanxi.core.services.pipelines import create_tenant

    slug = f"wecom-{secrets.token_hex(3)}"
    config = config_file(folder)
    environ = {"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "pigeon,wecom", "GUANXI__AUTH__SECRET": SERVER_SECRET}
    rt = Runtime.from_config(config, environ=environ)
    await upgrade(rt)
    async with rt.session(None) as s, s.begin():
        tenant_id = await create_tenant(s, slug, "WeCom ingest benchmark")
    await import_config_accounts(rt, tenant_id=tenant_id)  # the config file's corp becomes the new tenant's account
    port = free_port()
    proc = start(port, url, slug, config)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(proc, base)
        run_id = secrets.token_hex(3)
        created = int(time.time())
        events = [wecom_callback(i, run_id, created + i) for i in range(args.events)]
        pigeons = [pigeon_delivery(i, run_id) for i in range(args.events)]
        deadline = time.monotonic() + args.time_limit
        rounds = 4
        per = max(1, args.events // rounds)
        w_lat: list[float] = []
        p_lat: list[float] = []
        w_time = p_time = 0.0
        w_err = p_err = 0
        cpu0 = cpu_seconds(proc.pid)
        first = time.perf_counter()
        for r in range(rounds):
            stop = (r + 1) * per if r < rounds - 1 else args.events
            lat, took, err = await blast(base, events[r * per : stop], args.concurrency, deadline, ok=empty_ack)
            w_lat, w_time, w_err = w_lat + lat, w_time + took, w_err + err
            lat, took, err = await blast(base, [("/webhooks/pigeon/main", *p) for p in pigeons[r * per : stop]], args.concurrency, deadline)
            p_lat, p_time, p_err = p_lat + lat, p_time + took, p_err + err
        cpu1 = cpu_seconds(proc.pid)
        retries = max(1, args.events // 20)
        for _ in range(2):  # WeCom retries: the same events, signed afresh
            again = [wecom_callback(i, run_id, created + i) for i in range(retries)]
            await blast(base, again, args.concurrency, deadline, ok=empty_ack)
        while time.monotonic() < deadline:
            if await processed_count(rt, tenant_id, "wecom") >= args.events:
                break
            await asyncio.sleep(0.05)
        done = await processed_count(rt, tenant_id, "wecom")
        processed_s = time.perf_counter() - first
        async with rt.session(tenant_id) as s:
            interactions = int(
                (await s.execute(select(func.count()).select_from(Interaction).where(Interaction.channel == "wecom"))).scalar_one()
            )
            follows = int((await s.execute(select(func.count()).select_from(WecomFollow))).scalar_one())
        eps = len(w_lat) / w_time if w_time else 0.0
        base_eps = len(p_lat) / p_time if p_time else 0.0
        return {
            "events": args.events,
            "concurrency": args.concurrency,
            "events_per_s": round(eps, 1),
            "p50_ack_ms": round(pct(w_lat, 0.5), 2),
            "p99_ack_ms": round(pct(w_lat, 0.99), 2),
            "processed": done,
            "processed_per_s": round(done / processed_s, 1) if processed_s else 0.0,
            "interactions": interactions,
            "follows": follows,
            "exactly_once": interactions == follows == done == args.events,
            "duplicates_sent": 2 * retries,
            "errors": w_err,
            "baseline": "pigeon signed JSON (HMAC-SHA256), same process",
            "baseline_events_per_s": round(base_eps, 1),
            "baseline_p99_ack_ms": round(pct(p_lat, 0.99), 2),
            "baseline_errors": p_err,
            "ratio": round(eps / base_eps, 4) if base_eps else None,
            "server_cpu_ms_per_event": round((cpu1 - cpu0) * 1000 / (len(w_lat) + len(p_lat)), 3)
            if cpu0 is not None and cpu1 is not None and w_lat
            else None,
            "database": url.split(":", 1)[0].split("+", maxsplit=1)[0],
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        }
    finally:
        stop_server(proc)
        await rt.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    p.add_argument("--time-limit", type=float, default=300.0, help="hard limit for the whole load, seconds")
    p.add_argument("--json", action="store_true")
    add_smoke(p, events=60, concurrency=4, time_limit=60.0)
    args = parse(p, argv)
    with tempfile.TemporaryDirectory(prefix="guanxi-wecom-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'wecom.db'}"
        log(f"wecom ingest bench on {url.split('://')[0]} with {args.events} events …")
        result = asyncio.run(run(args, url, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0 if result["exactly_once"] and not result["errors"] and not result["baseline_errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
