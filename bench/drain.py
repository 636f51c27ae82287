"""Benchmark: the inbox worker alone, draining a pre-filled inbox, vs the same writes by hand.

    python bench/drain.py --events 20000 --channel pigeon --json [--workers 2] [--database-url URL]

1. Pre-fills a suspended tenant's inbox with ``--events`` distinct events, stored as the webhook
   path stores them (the channel's own parsing, then ``inbox.ingest``): ``pigeon`` signed-JSON
   messages from ``--senders`` distinct senders (so most events find a known person), or
   ``wecom`` ``add_external_contact`` callbacks (every one a new person and a follow row). 5 % of
   the events are stored twice more, as providers retry (``ingest`` answers "duplicate").
2. Starts ``--workers`` processes of ``guanxi worker`` (as an operator runs them), waits until
   they are up, resumes the tenant and times them until every event is ``done``:
   ``events_per_s`` = events / that time. ``exactly_once``: interactions = done = distinct events
   (and follows = events for WeCom; customers = distinct senders for Pigeon).
3. The baseline, in the same run: the same events pre-filled into a second tenant's inbox, and a
   hand-written loop of Core SQL doing the database work of the worker's result in batches of
   ``MAX_BATCH`` (the worker's claim size while a backlog lasts), one transaction each: claim
   the rows (``UPDATE … RETURNING``), look up the accounts they name (one ``SELECT``), insert the
   rows the worker wrote for them (customers, identities, stage history, audit, contact points,
   plugin rows such as WeCom's follows, interactions: read back from the worker's tenant, tenant
   id replaced) by ``executemany``, set the customers' last interaction time and mark the rows
   done. No ORM, no hooks, no per-event Python beyond building the parameter rows.
   ``ratio`` = events_per_s / baseline_events_per_s (1.0 = as fast as the hand-written writes).
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
import uuid
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, bindparam, func, select, tuple_, update  # noqa: E402

from bench._ingest_server import release_accounts  # noqa: E402
from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import log, stop_server  # noqa: E402
from guanxi.core.domain.models import Base, Customer, Identity, InboxEvent, Interaction, utcnow  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.queues import inbox  # noqa: E402
from guanxi.core.queues.inbox import MAX_BATCH  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402

SERVER_SECRET = secrets.token_hex(32)
PIGEON_SECRET = secrets.token_hex(16)
#: the corp of a run is ``CORP_ID`` + the run's id: a corp (and its account key) belongs to one
#: tenant of a database, and each run makes new tenants in the database of the earlier runs
CORP_ID = "wwdrain"
TOKEN = "drainbenchtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def config_file(folder: Path, run: str) -> Path:
    path = folder / "guanxi-drain.toml"
    path.write_text(
        "[plugins.wecom]\ntimestamp_window_s = 3600\nfetch_profiles = false\n"
        f'[[plugins.wecom.corps]]\nkey = "bench-{run}"\ncorp_id = "{CORP_ID}{run}"\ntoken = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\n'
        f'[plugins.pigeon]\nwebhook_secret = "{PIGEON_SECRET}"\n',
        encoding="utf-8",
    )
    return path


def environ(url: str, config: Path, batch: int | None) -> dict[str, str]:
    env = {
        "GUANXI_CONFIG": str(config),
        "GUANXI_DATABASE_URL": url,
        "GUANXI_PLUGINS": "pigeon,wecom",
        "GUANXI__AUTH__SECRET": SERVER_SECRET,
    }
    if batch is not None:
        env["GUANXI__QUEUES__BATCH"] = str(batch)
    return env


def pigeon_event(n: int, run: str, senders: int) -> Any:
    """The inbound event the Pigeon webhook stores for one delivery (its own parser)."""
    from guanxi_pigeon.routes import parse as parse_pigeon  # type: ignore[import-untyped]

    body = json.dumps(
        {
            "event_id": f"{run}-{n}",
            "type": "message",
            "sent_at": (dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n)).isoformat(),
            "from": {"id": f"sender-{run}-{n % senders}", "name": f"Sender {n % senders}"},
            "text": f"消息 {n}: hello from the drain bench",
        }
    ).encode()
    return parse_pigeon(SimpleNamespace(body=body))


def wecom_event(n: int, run: str) -> Any:
    """The inbound event WeCom's callback route stores for one decrypted callback."""
    from guanxi.plugins.wecom import callbacks

    xml = (
        f"<xml><ToUserName><![CDATA[{CORP_ID}{run}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{1765000000 + n}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[staff{n % 20}]]></UserID><ExternalUserID><![CDATA[wm{run}{n:07d}]]></ExternalUserID>"
        f"<State><![CDATA[bench-{n % 7}]]></State></xml>"
    )
    return callbacks.to_inbound(CORP_ID + run, callbacks.parse_xml(xml))


async def prefill(rt: Runtime, tenant_id: uuid.UUID, events: list[Any], duplicates: int) -> int:
    """Store the events as the webhook path does (16 at a time), the first ``duplicates`` twice
    more; return how many deliveries were answered as duplicates."""
    dupes = 0
    queue = list(events) + list(events[:duplicates]) * 2

    async def one(event: Any) -> None:
        nonlocal dupes
        if (await inbox.ingest(rt, tenant_id, event)).duplicate:
            dupes += 1

    for start in range(0, len(queue), 16):
        await asyncio.gather(*(one(e) for e in queue[start : start + 16]))
    return dupes


async def set_status(rt: Runtime, tenant_id: uuid.UUID, status: str) -> None:
    from guanxi.core.domain.models import Tenant

    async with rt.engine.begin() as conn:
        await conn.execute(update(Tenant).where(Tenant.id == tenant_id).values(status=status))


async def refuse_foreign_backlog(rt: Runtime, ours: list[uuid.UUID]) -> None:
    """The workers claim due rows of every tenant: another active tenant's backlog in the same
    database would be timed as ours, so the run stops."""
    from guanxi.core.domain.models import Tenant

    async with rt.engine.connect() as conn:
        stmt = (
            select(func.count())
            .select_from(InboxEvent)
            .join(Tenant, Tenant.id == InboxEvent.tenant_id)
            .where(InboxEvent.status.in_(("pending", "processing")), Tenant.status != "suspended", InboxEvent.tenant_id.not_in(ours))
        )
        if (n := int((await conn.execute(stmt)).scalar_one())) > 0:
            raise SystemExit(f"the database has {n} inbox rows of other tenants waiting: the workers would apply them too")


async def count(rt: Runtime, tenant_id: uuid.UUID, table: Any, *where: Any) -> int:
    async with rt.engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(table.tenant_id == tenant_id, *where)
        return int((await conn.execute(stmt)).scalar_one())


def start_worker(url: str, config: Path, batch: int | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environ(url, config, batch)}
    cmd = [sys.executable, "-m", "guanxi", "worker"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)


async def wait_running(proc: subprocess.Popen[str], limit: float = 120.0) -> None:
    """Until the worker printed that it runs (its imports and settings done)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=limit)
    if "running" not in line:
        raise RuntimeError(f"guanxi worker did not start: {line!r}")


async def drain_with_workers(
    rt: Runtime, args: argparse.Namespace, url: str, config: Path, tenant_id: uuid.UUID, n: int
) -> tuple[float, int]:
    procs = [start_worker(url, config, args.batch) for _ in range(args.workers)]
    try:
        for proc in procs:
            await wait_running(proc)
        t0 = time.perf_counter()
        await set_status(rt, tenant_id, "active")  # the workers' next poll finds the backlog
        deadline = time.monotonic() + args.time_limit
        done = 0
        while time.monotonic() < deadline:
            done = await count(rt, tenant_id, InboxEvent, InboxEvent.status == "done")
            if done >= n:
                break
            await asyncio.sleep(0.05)
        return time.perf_counter() - t0, done
    finally:
        for proc in procs:
            stop_server(proc)  # type: ignore[arg-type]


# -- the baseline -------------------------------------------------------------------------------


def _tables_with_rows_of(rt: Runtime) -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if "tenant_id" in t.c and t.name not in ("inbox_events", "tenants")]


async def written_rows(rt: Runtime, tenant_id: uuid.UUID, before: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tenant in the tables the worker wrote to (their counts grew)."""
    found: dict[str, list[dict[str, Any]]] = {}
    async with rt.engine.connect() as conn:
        for table in _tables_with_rows_of(rt):
            n = int((await conn.execute(select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id))).scalar_one())
            if n > before.get(table.name, 0):
                rows = (await conn.execute(select(table).where(table.c.tenant_id == tenant_id))).mappings().all()
                found[table.name] = [dict(r) for r in rows]
    return found


async def table_counts(rt: Runtime, tenant_id: uuid.UUID) -> dict[str, int]:
    out: dict[str, int] = {}
    async with rt.engine.connect() as conn:
        for table in _tables_with_rows_of(rt):
            stmt = select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            out[table.name] = int((await conn.execute(stmt)).scalar_one())
    return out


async def _stage_map(rt: Runtime, worker_tenant: uuid.UUID, tenant_id: uuid.UUID) -> dict[Any, Any]:
    """The worker tenant's stage ids -> the same stages (pipeline and stage keys) of the other."""
    from guanxi.core.domain.models import Pipeline, Stage

    async with rt.engine.connect() as conn:
        by_key: dict[uuid.UUID, dict[tuple[str, str], Any]] = {}
        for tid in (worker_tenant, tenant_id):
            stmt = (
                select(Pipeline.key, Stage.key, Stage.id)
                .join(Stage, (Stage.tenant_id == Pipeline.tenant_id) & (Stage.pipeline_id == Pipeline.id))
                .where(Pipeline.tenant_id == tid)
            )
            by_key[tid] = {(p, k): i for p, k, i in (await conn.execute(stmt)).all()}
    return {i: by_key[tenant_id][key] for key, i in by_key[worker_tenant].items()}


def _customer_of(table: str, row: dict[str, Any]) -> Any:
    if table == "customers":
        return row["id"]
    if table == "audit_events":
        return row.get("object_id")
    return row.get("customer_id")


async def baseline(rt: Runtime, worker_tenant: uuid.UUID, tenant_id: uuid.UUID, written: dict[str, list[dict[str, Any]]]) -> float:
    """Apply the second tenant's inbox with hand-written Core SQL (see the module docstring);
    return the seconds it took."""
    async with rt.engine.connect() as conn:  # the worker's result: each event's customer and interaction
        done = (
            await conn.execute(
                select(InboxEvent.channel, InboxEvent.provider_event_id, InboxEvent.customer_id, InboxEvent.interaction_id).where(
                    InboxEvent.tenant_id == worker_tenant
                )
            )
        ).all()
    result = {(c, p): (cust, inter) for c, p, cust, inter in done}
    interactions = {r["id"]: r for r in written.pop("interactions", [])}
    stages = await _stage_map(rt, worker_tenant, tenant_id)
    by_customer: dict[Any, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for name, rows in written.items():
        for row in rows:
            moved = {**row, "tenant_id": tenant_id}
            for column in ("stage_id", "from_stage_id", "to_stage_id"):
                if moved.get(column) is not None:
                    moved[column] = stages[moved[column]]
            by_customer[_customer_of(name, row)][name].append(moved)
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    order = [t.name for t in Base.metadata.sorted_tables if t.name in written]
    it, ct, ib = tables["interactions"], tables["customers"], tables["inbox_events"]
    pick = (
        select(ib.c.id)
        .where(ib.c.tenant_id == tenant_id, ib.c.status == "pending")
        .order_by(ib.c.next_attempt_at, ib.c.id)
        .limit(MAX_BATCH)
    )
    if rt.engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    claim = (
        ib.update()
        .where(ib.c.tenant_id == tenant_id, ib.c.id.in_(pick.scalar_subquery()))
        .values(status="processing", attempts=ib.c.attempts + 1)
        .returning(ib.c.id, ib.c.channel, ib.c.provider_event_id, ib.c.event)
    )
    seen: set[Any] = set()
    t0 = time.perf_counter()
    while True:
        async with rt.engine.begin() as conn:
            claimed = (await conn.execute(claim)).all()
            if not claimed:
                break
            keys, events = [], []
            for inbox_id, channel, provider_event_id, stored in claimed:
                keys.append((stored["channel"], stored["identity"]["external_id"]))
                events.append((inbox_id, result[(channel, provider_event_id)]))
            stmt = select(Identity.id, Identity.customer_id).where(
                Identity.tenant_id == tenant_id, tuple_(Identity.channel, Identity.external_id).in_(sorted(set(keys)))
            )
            await conn.execute(stmt)  # the accounts the batch names
            fresh = [cust for _, (cust, _) in events if cust not in seen]
            seen.update(fresh)
            for name in order:
                rows = [r for cust in dict.fromkeys(fresh) for r in by_customer[cust].get(name, [])]
                if rows:
                    await conn.execute(tables[name].insert(), rows)
            await conn.execute(it.insert(), [{**interactions[inter], "tenant_id": tenant_id} for _, (_, inter) in events])
            last: dict[Any, dt.datetime] = {}
            for _, (cust, inter) in events:
                at = interactions[inter]["occurred_at"]
                last[cust] = max(at, last.get(cust, at))
            await conn.execute(
                ct.update().where(ct.c.tenant_id == tenant_id, ct.c.id == _bind("c")).values(last_interaction_at=_bind("at")),
                [{"c": c, "at": at} for c, at in last.items()],
            )
            now = utcnow()
            await conn.execute(
                ib.update()
                .where(ib.c.tenant_id == tenant_id, ib.c.id == _bind("i"))
                .values(status="done", processed_at=now, customer_id=_bind("cu"), interaction_id=_bind("it")),
                [{"i": i, "cu": cust, "it": inter} for i, (cust, inter) in events],
            )
    return time.perf_counter() - t0


def _bind(name: str) -> Any:
    return bindparam(name)


async def run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    from guanxi.core.services.accounts import import_config_accounts
    from guanxi.core.services.pipelines import create_tenant
    from guanxi.plugins.wecom.models import WecomFollow

    run_id = secrets.token_hex(3)
    config = config_file(folder, run_id)
    rt = Runtime.from_config(config, environ=environ(url, config, None))
    await upgrade(rt)
    tenants = []
    for side in ("worker", "baseline"):
        async with rt.session(None) as s, s.begin():
            tenants.append(await create_tenant(s, f"drain-{side}-{run_id}", f"Drain bench ({side})"))
        await import_config_accounts(rt, tenant_id=tenants[-1])
    worker_tenant, base_tenant = tenants
    await refuse_foreign_backlog(rt, tenants)
    events = [pigeon_event(i, run_id, args.senders) if args.channel == "pigeon" else wecom_event(i, run_id) for i in range(args.events)]
    duplicates = max(1, args.events // 20)
    try:
        for tid in tenants:
            await set_status(rt, tid, "suspended")  # stored, not applied, until the timed part
        t = time.perf_counter()
        dupes = await prefill(rt, worker_tenant, events, duplicates)
        prefill_s = time.perf_counter() - t
        await prefill(rt, base_tenant, events, duplicates)
        before = await table_counts(rt, worker_tenant)
        log(f"inbox pre-filled with {args.events} events ({prefill_s:.1f} s); draining with {args.workers} worker process(es) …")
        took, done = await drain_with_workers(rt, args, url, config, worker_tenant, args.events)
        interactions = await count(rt, worker_tenant, Interaction)
        customers = await count(rt, worker_tenant, Customer)
        follows = await count(rt, worker_tenant, WecomFollow)
        written = await written_rows(rt, worker_tenant, before)
        log(f"worker: {took:.1f} s; baseline …")
        await set_status(rt, base_tenant, "active")
        base_s = await baseline(rt, worker_tenant, base_tenant, written)
        base_done = await count(rt, base_tenant, InboxEvent, InboxEvent.status == "done")
        base_interactions = await count(rt, base_tenant, Interaction)
    finally:
        for tid in tenants:  # what a failed run leaves behind is never claimed by a later one
            await set_status(rt, tid, "suspended")
        await release_accounts(rt, tenants)  # the account keys are free for the next bench
        await rt.engine.dispose()
    eps = done / took if took else 0.0
    base_eps = args.events / base_s if base_s else 0.0
    once = interactions == done == args.events and dupes == 2 * duplicates
    if args.channel == "pigeon":
        once = once and customers == min(args.senders, args.events)
    else:
        once = once and follows == customers == args.events
    return {
        "channel": args.channel,
        "events": args.events,
        "workers": args.workers,
        "batch": args.batch,
        "max_batch": MAX_BATCH,
        "senders": args.senders if args.channel == "pigeon" else args.events,
        "drain_s": round(took, 3),
        "events_per_s": round(eps, 1),
        "done": done,
        "interactions": interactions,
        "customers": customers,
        "follows": follows,
        "duplicates_stored_as_duplicates": dupes,
        "exactly_once": once,
        "baseline_s": round(base_s, 3),
        "baseline_events_per_s": round(base_eps, 1),
        "baseline_exactly_once": base_done == base_interactions == args.events,
        "ratio": round(eps / base_eps, 4) if base_eps else None,
        "prefill_events_per_s": round(args.events / prefill_s, 1) if prefill_s else None,
        "database": url.split(":", 1)[0].split("+", maxsplit=1)[0],
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--channel", choices=("pigeon", "wecom"), default="pigeon")
    p.add_argument("--senders", type=int, default=500, help="pigeon: distinct senders (people)")
    p.add_argument("--workers", type=int, default=1, help="`guanxi worker` processes")
    p.add_argument("--batch", type=int, default=None, help="queues.batch of the workers (default: the setting's default)")
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    p.add_argument("--time-limit", type=float, default=600.0)
    p.add_argument("--json", action="store_true")
    add_smoke(p, events=40, senders=10, time_limit=120.0)
    args = parse(p, argv)
    with tempfile.TemporaryDirectory(prefix="guanxi-drain-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'drain.db'}"
        log(f"drain bench on {url.split('://')[0]}: {args.events} {args.channel} events, {args.workers} worker(s) …")
        result = asyncio.run(run(args, url, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    return 0 if result["exactly_once"] and result["baseline_exactly_once"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
