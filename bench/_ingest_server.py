"""Servers and the shared run code of the ingest benches (ingest.py, douyin_ingest.py,
wecom_ingest.py): the Guanxi app with the plugins the environment enables (their signed webhook
routes, the in-process inbox worker), and a bare Litestar endpoint per channel that decodes the
same body the same way (JSON with msgspec; WeCom's XML envelope, signature, AES decryption and
inner XML), with no database, as the baseline.

    python -m bench._ingest_server --app guanxi|baseline|douyin-baseline|wecom-baseline --port N

The benches import :func:`spawn` (a server in its own process), :class:`Side` (one side's acks
over the alternating rounds), :func:`context` and :func:`cli` from here, so they share one copy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post

ROOT = Path(__file__).resolve().parent.parent


def spawn(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``app`` (see ``--app``) served on 127.0.0.1:``port`` by uvicorn in its own process, with
    ``env`` over this process's environment."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "bench._ingest_server", "--app", app, "--port", str(port)], cwd=ROOT, env=full, start_new_session=True
    )


class Side:
    """One side's acks over the alternating rounds: latencies (ms), time spent, refused answers."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.errors = 0

    def add(self, result: tuple[list[float], float, int]) -> None:
        latencies, seconds, errors = result
        self.latencies += latencies
        self.seconds += seconds
        self.errors += errors

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        from bench.graphql_list import pct

        return round(pct(self.latencies, q), 2)


def context(url: str) -> dict[str, Any]:
    """The run's context fields: database, Python, cores."""
    return {"database": url.split(":", 1)[0].split("+", maxsplit=1)[0], "python": platform.python_version(), "cpu_count": os.cpu_count()}


def cli(
    doc: str | None,
    name: str,
    run: Callable[[argparse.Namespace, str, Path], Coroutine[Any, Any, dict[str, Any]]],
    argv: list[str] | None = None,
) -> int:
    """The ingest benches' command line: ``--events --concurrency --database-url --time-limit
    --json --smoke``; the exit status is 1 unless every event was applied exactly once and no
    answer was refused."""
    from bench._smoke import add_smoke, parse
    from bench.graphql_list import log

    p = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    p.add_argument("--time-limit", type=float, default=300.0, help="hard limit for the whole load, seconds")
    p.add_argument("--rate", type=float, default=0.0, help="open-loop rate of the paced part, requests/s (default: half the bare rate)")
    p.add_argument("--paced-seconds", type=float, default=10.0, help="length of the open-loop part per side, seconds")
    p.add_argument(
        "--worker-process",
        action="store_true",
        help="ingest.py: apply the inbox in a `guanxi worker` process (queues.run_workers = false in the server), not in the web process",
    )
    p.add_argument("--json", action="store_true")
    add_smoke(p, events=60, concurrency=4, time_limit=60.0, rate=20.0, paced_seconds=2.0)
    args = parse(p, argv)
    with tempfile.TemporaryDirectory(prefix=f"guanxi-{name}-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / f'{name}.db'}"
        log(f"{name} bench on {url.split('://')[0]} with {args.events} events …")
        result = asyncio.run(run(args, url, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    refused = result["errors"] or result["baseline_errors"] or result.get("paced_errors") or result.get("paced_baseline_errors")
    return 0 if result["exactly_once"] and not refused else 1


def baseline_app() -> Litestar:
    from guanxi_pigeon.routes import PigeonEvent

    @post("/baseline", status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> dict[str, bool]:
        msgspec.json.decode(await request.body(), type=PigeonEvent)
        return {"ok": True}

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([receive, healthz])


def douyin_baseline_app() -> Litestar:
    """The same for Douyin's bodies: decode the envelope and its JSON-string ``content``."""
    from guanxi.plugins.douyin.callbacks import Envelope

    @post("/baseline", status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> dict[str, bool]:
        envelope = msgspec.json.decode(await request.body(), type=Envelope)
        msgspec.json.decode(envelope.content)
        return {"ok": True}

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([receive, healthz])


def wecom_baseline_app() -> Litestar:
    """WeCom's decode, bare: the envelope's XML, the SHA-1 signature check, AES-256-CBC
    decryption and the inner XML, with the plugin's own functions (the corp's token, key and id
    from ``BENCH_WECOM_TOKEN``, ``BENCH_WECOM_AES_KEY``, ``BENCH_WECOM_CORP_ID``); WeCom's empty
    200 answer. No database, no inbox."""

    from guanxi.plugins.wecom.callbacks import parse_xml
    from guanxi.plugins.wecom.crypto import WecomCrypto

    crypto = WecomCrypto(os.environ["BENCH_WECOM_TOKEN"], os.environ["BENCH_WECOM_AES_KEY"], os.environ["BENCH_WECOM_CORP_ID"])

    @post("/baseline", status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        q = request.query_params
        envelope = parse_xml(await request.body())
        plain = crypto.verify_and_decrypt(q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), envelope["Encrypt"])
        parse_xml(plain)
        return Response(b"", status_code=200)

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([receive, healthz])


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser()
    p.add_argument("--app", choices=["guanxi", "baseline", "douyin-baseline", "wecom-baseline"], required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    if args.app == "guanxi":
        from guanxi.app import create_app

        app = create_app()  # configured by the environment: database, tenant, pigeon plugin
    elif args.app == "douyin-baseline":
        app = douyin_baseline_app()
    elif args.app == "wecom-baseline":
        app = wecom_baseline_app()
    else:
        app = baseline_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop", log_level="warning", workers=1)


if __name__ == "__main__":
    main()


async def use_config_accounts(runtime: Any, tenant_id: Any) -> None:
    """Import the config's channel accounts into the bench's tenant, as ``guanxi db upgrade``
    does, and stop if one of them already belongs to another tenant of the database (an earlier
    run that did not release it): its webhooks would reach that tenant, and every ack would be
    refused."""
    from sqlalchemy import select

    from guanxi.core.domain.models import ChannelAccount, Tenant
    from guanxi.core.services.accounts import import_config_accounts, specs
    from guanxi.core.storage.tenancy import unscoped

    await import_config_accounts(runtime, tenant_id=tenant_id)
    wanted = [(spec.channel, account.key) for _plugin, spec in specs(runtime).values() for account in spec.config_accounts]
    async with runtime.session(None) as session, unscoped(session):
        for channel, key in wanted:
            owner = (
                await session.execute(
                    select(Tenant.id, Tenant.slug).join(ChannelAccount, ChannelAccount.tenant_id == Tenant.id)
                    .where(ChannelAccount.channel == channel, ChannelAccount.key == key)
                )
            ).first()  # fmt: skip
            if owner is not None and owner.id != tenant_id:
                raise SystemExit(
                    f"the {channel} account {key!r} belongs to tenant {owner.slug!r} of this database: "
                    "delete that account (or use a fresh database) and run again"
                )


async def release_accounts(runtime: Any, tenant_ids: list[Any]) -> None:
    """Delete the channel accounts of the bench's tenants, so a later run (of any bench) on the
    same database can import the same account keys."""
    from sqlalchemy import delete

    from guanxi.core.domain.models import ChannelAccount
    from guanxi.core.services.accounts import forget_accounts

    for tid in tenant_ids:
        async with runtime.write_session(tid) as session:
            await session.execute(delete(ChannelAccount))
    forget_accounts(runtime)
