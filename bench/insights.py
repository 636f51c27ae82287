"""Benchmark: inbound texts through the inbox with the insights plugin enabled vs disabled.

    python bench/insights.py --texts 2000 --json [--database-url URL]

Ingests ``--texts`` short customer texts (drawn from the plugin's labelled set in tests, so
Chinese, English and mixed, some negative enough to raise alerts) into one tenant and runs the
inbox until every one is applied, once on a runtime with no plugin and once with ``insights``
(each on its own database, alternating halves so drift of the machine hits both). Prints JSON:

- ``disabled_per_s``, ``enabled_per_s``: texts applied per second (ingest to applied)
- ``ratio`` = enabled_per_s / disabled_per_s (the plugin's cost on the inbox path)
- ``scored``: texts the plugin scored (must equal ``--texts``); ``alerts``: alerts it raised
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from guanxi.core.domain.channels import InboundEvent, ProfileInput  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.queues import inbox  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402

SETS = [ROOT / "tests" / "plugins" / "insights" / name for name in ("sentiment_set.tsv", "sentiment_holdout.tsv")]


def texts() -> list[str]:
    out = []
    for path in SETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                out.append(line.split("\t")[2])
    return out


async def side(url: str, plugins: str) -> tuple[Runtime, Any]:
    from guanxi.core.services.pipelines import create_tenant

    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": plugins})
    await upgrade(rt)
    await rt.start()
    async with rt.session(None) as s, s.begin():
        tenant_id = await create_tenant(s, f"bench-{secrets.token_hex(3)}", "Insights benchmark")
    return rt, tenant_id


async def push(rt: Runtime, tenant_id: Any, corpus: list[str], start: int, count: int) -> float:
    """Ingest ``count`` texts and apply them all; return the seconds it took."""
    now = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    for n in range(start, start + count):
        event = InboundEvent(
            channel="wecom",
            provider_event_id=f"bench-{n}",
            occurred_at=now,
            identity=ProfileInput(external_id=f"wm-{n % 300}"),
            kind="message_in",
            text=corpus[n % len(corpus)],
        )
        await inbox.ingest(rt, tenant_id, event)
    while await inbox.run_once(rt, tenant_id=tenant_id, limit=100):
        pass
    return time.perf_counter() - t0


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    corpus = texts()
    off_rt, off_tenant = await side(args.database_url or f"sqlite+aiosqlite:///{tmp / 'off.db'}", "")
    on_rt, on_tenant = await side(args.database_url or f"sqlite+aiosqlite:///{tmp / 'on.db'}", "insights")
    try:
        from guanxi.plugins.insights.models import InsightsSentiment
        from guanxi.plugins.insights.sentiment import score_text

        score_text("预热 warm-up")  # jieba's dictionary loads once per process, not in the timing
        half = max(1, args.texts // 2)
        off = on = 0.0
        for start, count in ((0, half), (half, args.texts - half)):
            if count:
                off += await push(off_rt, off_tenant, corpus, start, count)
                on += await push(on_rt, on_tenant, corpus, start, count)
        async with on_rt.session(on_tenant) as s:
            scored = int((await s.execute(select(func.count()).select_from(InsightsSentiment))).scalar_one())
            alerts = int(
                (
                    await s.execute(select(func.count()).select_from(InsightsSentiment).where(InsightsSentiment.alert.is_not(None)))
                ).scalar_one()
            )
    finally:
        await off_rt.stop()
        await on_rt.stop()
    if scored != args.texts:
        raise SystemExit(f"the plugin scored {scored} of {args.texts} texts")
    disabled_per_s, enabled_per_s = args.texts / off, args.texts / on
    return {
        "texts": args.texts,
        "disabled_per_s": round(disabled_per_s, 1),
        "enabled_per_s": round(enabled_per_s, 1),
        "ratio": round(enabled_per_s / disabled_per_s, 3),
        "scored": scored,
        "alerts": alerts,
        "database": (args.database_url or "sqlite").split(":", 1)[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=2_000)
    parser.add_argument("--database-url", default=None, help="one database for both sides (separate tenants); default: two SQLite files")
    parser.add_argument("--json", action="store_true")
    add_smoke(parser, texts=60)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
