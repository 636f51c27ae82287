"""Benchmark: encrypted WeCom add_external_contact callbacks through a real HTTP server on loopback.

    python bench/wecom_ingest.py --events 2000 --json [--concurrency 16] [--database-url URL]

Starts the Guanxi app (uvicorn, one worker, the in-process inbox worker) with the ``wecom``
plugin (one corp; callbacks signed with SHA-1 and encrypted with AES-256-CBC exactly as WeCom
does, at ``POST /wecom/callback/bench``) and, with the same uvicorn settings in its own process,
the baseline: a bare endpoint doing the same decode with the plugin's own functions (the
envelope's XML, the signature check, the AES decryption and the inner XML; WeCom's empty 200
answer), no database. Sends ``--events`` distinct events to each in alternating rounds, so drift
of the machine hits both, and prints JSON:

- ``events_per_s``: WeCom callback answers (acks) per second; ``p50_ack_ms``, ``p99_ack_ms``
- ``processed_per_s``: WeCom events turned into customers, identities, interactions and follow
  rows per second, from the first delivery until the inbox has processed every event
- ``baseline_rps``, ``baseline_p99_ms``: the same for the bare decoding endpoint
- ``ratio`` = events_per_s / baseline_rps (1.0 = the durable, deduplicated ack costs nothing
  beyond decoding the callback)
- ``exactly_once``: 5 % of the callbacks are sent three times (re-signed, as WeCom retries);
  every event became exactly one interaction and one follow row

No secret is configured, so no API call is made (no welcome message, no profile fetch): the
figure is the callback path and the inbox, not WeCom's API. (Until 2026-12-07 the baseline was
the Pigeon channel's signed-JSON route in the same Guanxi process, i.e. another Guanxi route.)
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench._ingest_server import Side, cli, context, release_accounts, spawn, use_config_accounts  # noqa: E402
from bench.graphql_list import cpu_seconds, free_port, stop_server, wait_ready  # noqa: E402
from bench.ingest import at_load, blast, processed_count  # noqa: E402
from guanxi.core.domain.models import Interaction  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.plugins.wecom.crypto import WecomCrypto  # noqa: E402
from guanxi.plugins.wecom.models import WecomFollow  # noqa: E402

CORP_ID = "wwbench0000000001"
TOKEN = secrets.token_hex(8)
AES_KEY = secrets.token_urlsafe(40).replace("-", "a").replace("_", "b")[:43]
#: the server secret of this run, shared by the bench's runtime and the server process (the corp's
#: account secrets are sealed with a key derived from it)
SERVER_SECRET = secrets.token_hex(32)
CRYPTO = WecomCrypto(TOKEN, AES_KEY, CORP_ID)


def config_file(folder: Path) -> Path:
    path = folder / "guanxi-bench.toml"
    path.write_text(
        "[plugins.wecom]\ntimestamp_window_s = 3600\nfetch_profiles = false\n"
        f'[[plugins.wecom.corps]]\nkey = "bench"\ncorp_id = "{CORP_ID}"\ntoken = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\n',
        encoding="utf-8",
    )
    return path


def start(app: str, port: int, url: str, slug: str, config: Path) -> subprocess.Popen[bytes]:
    return spawn(
        app,
        port,
        {
            "GUANXI_CONFIG": str(config),
            "GUANXI_DATABASE_URL": url,
            "GUANXI__TENANT": slug,
            "GUANXI_PLUGINS": "wecom",
            "GUANXI__AUTH__SECRET": SERVER_SECRET,
            "BENCH_WECOM_TOKEN": TOKEN,
            "BENCH_WECOM_AES_KEY": AES_KEY,
            "BENCH_WECOM_CORP_ID": CORP_ID,
        },
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


async def drained(rt: Runtime, tenant_id: Any, n: int) -> bool:
    return await processed_count(rt, tenant_id, "wecom") >= n


def empty_ack(response: Any) -> bool:
    """WeCom's contract: 200 with an empty body."""
    return bool(response.status_code == 200 and not response.content)


async def run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    from guanxi.core.services.pipelines import create_tenant

    slug = f"wecom-{secrets.token_hex(3)}"
    config = config_file(folder)
    environ = {"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "wecom", "GUANXI__AUTH__SECRET": SERVER_SECRET}
    rt = Runtime.from_config(config, environ=environ)
    await upgrade(rt)
    async with rt.session(None) as s, s.begin():
        tenant_id = await create_tenant(s, slug, "WeCom ingest benchmark")
    await use_config_accounts(rt, tenant_id)  # the config file's corp becomes the new tenant's account
    gport, bport = free_port(), free_port()
    proc = start("guanxi", gport, url, slug, config)
    base_proc = start("wecom-baseline", bport, url, slug, config)
    base, bare = f"http://127.0.0.1:{gport}", f"http://127.0.0.1:{bport}"
    try:
        await wait_ready(proc, base)
        await wait_ready(base_proc, bare)
        run_id = secrets.token_hex(3)
        created = int(time.time())
        deadline = time.monotonic() + args.time_limit
        rounds = 4
        per = max(1, args.events // rounds)
        wecom, baseline = Side(), Side()
        cpu0 = cpu_seconds(proc.pid)
        first = time.perf_counter()
        for r in range(rounds):
            stop = (r + 1) * per if r < rounds - 1 else args.events
            # signed just before sending: the timestamp window holds; the same callbacks to both
            events = [wecom_callback(i, run_id, created + i) for i in range(r * per, stop)]
            wecom.add(await blast(base, events, args.concurrency, deadline, ok=empty_ack))
            same = [(path.replace("/wecom/callback/bench", "/baseline"), body, headers) for path, body, headers in events]
            baseline.add(await blast(bare, same, args.concurrency, deadline, ok=empty_ack))
        cpu1 = cpu_seconds(proc.pid)

        def bare_calls(start: int, n: int) -> list[tuple[str, bytes, dict[str, str]]]:
            return [
                (path.replace("/wecom/callback/bench", "/baseline"), body, headers)
                for path, body, headers in (wecom_callback(i, run_id, created + i) for i in range(start, start + n))
            ]

        load = await at_load(
            ((base, lambda start, n: [wecom_callback(i, run_id, created + i) for i in range(start, start + n)]), (bare, bare_calls)),
            args,
            baseline.per_s,
            lambda n: drained(rt, tenant_id, n),
            ok=empty_ack,
        )
        total = args.events + load["paced_events"]
        retries = max(1, args.events // 20)
        for _ in range(2):  # WeCom retries: the same events, signed afresh
            again = [wecom_callback(i, run_id, created + i) for i in range(retries)]
            await blast(base, again, args.concurrency, deadline, ok=empty_ack)
        while time.monotonic() < deadline:
            if await processed_count(rt, tenant_id, "wecom") >= total:
                break
            await asyncio.sleep(0.05)
        done = await processed_count(rt, tenant_id, "wecom")
        processed_s = time.perf_counter() - first
        async with rt.session(tenant_id) as s:
            interactions = int(
                (await s.execute(select(func.count()).select_from(Interaction).where(Interaction.channel == "wecom"))).scalar_one()
            )
            follows = int((await s.execute(select(func.count()).select_from(WecomFollow))).scalar_one())
        return {
            "events": args.events,
            "concurrency": args.concurrency,
            "events_per_s": round(wecom.per_s, 1),
            "p50_ack_ms": wecom.pct(0.5),
            "p99_ack_ms": wecom.pct(0.99),
            "processed": done,
            "processed_per_s": round(done / processed_s, 1) if processed_s else 0.0,
            "interactions": interactions,
            "follows": follows,
            "exactly_once": interactions == follows == done == total,
            "duplicates_sent": 2 * retries,
            "errors": wecom.errors,
            "baseline": "bare endpoint: envelope XML, SHA-1 signature, AES-256-CBC decryption, inner XML; no database",
            "baseline_rps": round(baseline.per_s, 1),
            "baseline_p99_ms": baseline.pct(0.99),
            "baseline_errors": baseline.errors,
            "ratio": round(wecom.per_s / baseline.per_s, 4) if baseline.per_s else None,
            **load,
            "server_cpu_ms_per_event": round((cpu1 - cpu0) * 1000 / len(wecom.latencies), 3)
            if cpu0 is not None and cpu1 is not None and wecom.latencies
            else None,
            **context(url),
        }
    finally:
        stop_server(proc)
        stop_server(base_proc)
        await release_accounts(rt, [tenant_id])  # the account keys are free for the next bench
        await rt.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    return cli(__doc__, "wecom", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
