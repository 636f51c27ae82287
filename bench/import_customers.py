"""Benchmark: ``guanxi import customers`` against a raw executemany of the same rows.

    python bench/import_customers.py --rows 100000 --json [--rounds 2] [--database-url URL]

Writes a CSV of N customers (name, company, a phone, an email, a stage, two tags, a source and a
WeCom identity each), then, in one run and in alternating order per round so that drift of the
machine and the growth of the database hit both sides alike:

- **import**: ``import_customers`` into a new tenant: both passes (validation, then matching
  and writing in one transaction), timed from the call to its return;
- **baseline**: the very rows that import wrote (customers, contact points, identities, stage
  history, tags, tag links, audit entries), read back in the driver's own format (untimed) and
  inserted into another new tenant of the same tables, with the same indexes, by the driver's
  ``executemany`` (``exec_driver_sql`` with tuples: no ORM, no type processing) in one
  transaction; the ``executemany`` calls and the commit are timed (the import's time includes
  its commit too; the reads in between are not timed).

On PostgreSQL (without row-level security) the import writes its rows by COPY
(:mod:`guanxi.core.storage.bulk`); the baseline stays the driver's ``executemany`` of INSERTs,
as the issue defines it. ``statements_per_batch`` counts cursor statements, which COPY is not
(4 there instead of 9).

Figures: ``import_rows_per_s`` and ``baseline_rows_per_s`` (customers per second, CSV rows for
the import), ``ratio`` = baseline time / import time (1.0 = the import is as fast as the raw
inserts; the goal is ≥ 0.5), ``ratio_executemany_only`` (the same without the baseline's
commit, as this bench measured until 2026-12-07), ``baseline_commit_s``, ``table_rows_per_customer`` (rows the import writes per CSV row),
``statements_per_batch`` (SQL statements of one write batch; constant, or the import has an N+1),
``per_row_growth`` (µs per row of the last tenth of the write pass over the first tenth: 1.0 =
flat), ``max_rss_mb`` (peak RSS of the process after the import rounds, before the baseline's
reads), ``database_bytes_per_customer`` (SQLite only: database pages the first import added, per CSV row).

The machine is shared: read the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import log  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.storage.db import write_transaction  # noqa: E402
from guanxi.testing.sql import count_statements  # noqa: E402

#: the tables an import writes, parents first
WRITTEN = ("customers", "contact_points", "identities", "stage_changes", "tags", "customer_tags", "audit_events")
CHUNK = 10_000


def write_csv(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["display_name", "company", "phones", "emails", "stage", "tags", "source", "external_id", "channel"])
        for i in range(n):
            w.writerow([
                f"Customer {i}", f"Company {i % 500}", f"+86 138{i:08d}", f"c{i}@example.com", ("lead", "mql", "sql")[i % 3],
                f"segment/{i % 7}; vip", "import", f"wm{i:012d}", "wecom",
            ])  # fmt: skip


async def new_tenant(runtime: Runtime) -> uuid.UUID:
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.session(None) as session, session.begin():
        return await create_tenant(session, f"bench-{secrets.token_hex(4)}", "Import benchmark")


async def clone_tenant(runtime: Runtime, source: uuid.UUID) -> uuid.UUID:
    """A new tenant with a copy of the source's pipelines and stages (same ids): the rows the
    import wrote can then be inserted into it unchanged but for the tenant."""
    target = await new_tenant(runtime)
    raw = _raw(runtime)
    async with write_transaction(runtime.engine) as conn:
        for table in ("stages", "pipelines"):
            await conn.exec_driver_sql(f"DELETE FROM {table} WHERE tenant_id = {_ph(runtime, 1)}", (raw(target),))
        for table in ("pipelines", "stages"):
            cols = [c.name for c in m.Base.metadata.tables[table].columns]
            rows = (
                await conn.exec_driver_sql(f"SELECT {', '.join(cols)} FROM {table} WHERE tenant_id = {_ph(runtime, 1)}", (raw(source),))
            ).all()
            at = cols.index("tenant_id")
            values = [tuple(raw(target) if i == at else _json(v) for i, v in enumerate(r)) for r in rows]
            await conn.exec_driver_sql(_insert_sql(runtime, table, cols), values)
    return target


def _raw(runtime: Runtime) -> Any:
    return (lambda u: u.hex) if runtime.engine.dialect.name == "sqlite" else (lambda u: u)


def _json(value: Any) -> Any:
    """asyncpg hands JSON columns back decoded but takes them as text (SQLite: text both ways)."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _ph(runtime: Runtime, i: int) -> str:
    return "?" if runtime.engine.dialect.name == "sqlite" else f"${i}"


def _insert_sql(runtime: Runtime, table: str, cols: list[str]) -> str:
    marks = ", ".join(_ph(runtime, i + 1) for i in range(len(cols)))
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"


async def baseline(runtime: Runtime, source: uuid.UUID, target: uuid.UUID) -> tuple[float, float, int]:
    """Insert the rows the import wrote for ``source`` into ``target`` by raw executemany in one
    transaction; returns (seconds spent in executemany, seconds of the commit, rows inserted)."""
    raw = _raw(runtime)
    spent, rows_written = 0.0, 0
    async with write_transaction(runtime.engine) as conn:
        for table in WRITTEN:
            t = m.Base.metadata.tables[table]
            cols = [c.name for c in t.columns]
            pk = [c.name for c in t.primary_key.columns if c.name != "tenant_id"]
            at = cols.index("tenant_id")
            sql = _insert_sql(runtime, table, cols)
            last: tuple[Any, ...] | None = None
            while True:
                where = f"tenant_id = {_ph(runtime, 1)}"
                params: tuple[Any, ...] = (raw(source),)
                if last is not None:
                    marks = ", ".join(_ph(runtime, i + 2) for i in range(len(pk)))
                    where += f" AND ({', '.join(pk)}) > ({marks})"
                    params += last
                query = f"SELECT {', '.join(cols)} FROM {table} WHERE {where} ORDER BY {', '.join(pk)} LIMIT {CHUNK}"
                rows = (await conn.exec_driver_sql(query, params)).all()
                if not rows:
                    break
                last = tuple(rows[-1][cols.index(c)] for c in pk)
                values = [tuple(raw(target) if i == at else _json(v) for i, v in enumerate(r)) for r in rows]
                t0 = time.perf_counter()
                await conn.exec_driver_sql(sql, values)
                spent += time.perf_counter() - t0
                rows_written += len(values)
        t0 = time.perf_counter()
    return spent, time.perf_counter() - t0, rows_written


async def run_import(runtime: Runtime, path: Path, batch_size: int) -> tuple[uuid.UUID, float, list[tuple[float, int]], int]:
    from guanxi.importer.csv_import import import_customers

    tenant = await new_tenant(runtime)
    marks: list[tuple[float, int]] = []

    def on_progress(done: int, total: int | None) -> None:
        if total is not None:
            marks.append((time.perf_counter(), done))

    with count_statements(runtime.engine) as seen:
        t0 = time.perf_counter()
        report = await import_customers(runtime, tenant, path, batch_size=batch_size, on_progress=on_progress)
        seconds = time.perf_counter() - t0
    if report.error_count or report.created == 0:
        raise SystemExit(f"the import failed: {report.errors[:3]}")
    return tenant, seconds, marks, len(seen)


def growth(marks: list[tuple[float, int]]) -> float | None:
    """µs per row of the last tenth of the write pass over the first tenth."""
    if len(marks) < 20:
        return None
    tenth = len(marks) // 10

    def rate(a: int, b: int) -> float:
        (t0, d0), (t1, d1) = marks[a], marks[b]
        return (t1 - t0) / max(1, d1 - d0)

    return rate(len(marks) - 1 - tenth, len(marks) - 1) / rate(0, tenth)


async def statements_per_batch(runtime: Runtime, tmp: Path, batch_size: int) -> int:
    """SQL statements of one more write batch: an import of 3 batches minus one of 2 batches."""
    counts = []
    for batches in (2, 3):
        path = tmp / f"batches-{batches}.csv"
        write_csv(path, batches * batch_size)
        counts.append((await run_import(runtime, path, batch_size))[3])
    return counts[1] - counts[0]


async def used_bytes(runtime: Runtime) -> int | None:
    """SQLite: bytes of the database in use (pages minus free pages, WAL included); else None."""
    if runtime.engine.dialect.name != "sqlite":
        return None
    async with runtime.engine.connect() as conn:
        pages, free, size = [
            (await conn.exec_driver_sql(f"PRAGMA {p}")).scalar_one() for p in ("page_count", "freelist_count", "page_size")
        ]
    return int((pages - free) * size)


async def run(args: argparse.Namespace, url: str, tmp: Path) -> dict[str, Any]:
    runtime = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": ""})
    await upgrade(runtime)
    await runtime.start()
    try:
        path = tmp / "customers.csv"
        write_csv(path, args.rows)
        per_batch = await statements_per_batch(runtime, tmp, args.batch_size)
        imports: list[float] = []
        baselines: list[float] = []
        commits: list[float] = []
        growths: list[float] = []
        source: uuid.UUID | None = None
        table_rows = 0
        rss_mb = 0.0
        db_bytes: int | None = None
        for r in range(args.rounds):
            steps = ("import", "baseline") if r % 2 == 0 or source is None else ("baseline", "import")
            for step in steps:
                if step == "import":
                    log(f"round {r + 1}: import of {args.rows:,} rows")
                    before = await used_bytes(runtime)
                    tenant, seconds, marks, _ = await run_import(runtime, path, args.batch_size)
                    if source is None and before is not None:
                        db_bytes = round((cast(int, await used_bytes(runtime)) - before) / args.rows)
                    imports.append(seconds)
                    if (g := growth(marks)) is not None:
                        growths.append(g)
                    rss_mb = max(rss_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
                    source = source or tenant
                else:
                    assert source is not None
                    log(f"round {r + 1}: raw executemany of the same rows")
                    target = await clone_tenant(runtime, source)
                    seconds, commit, table_rows = await baseline(runtime, source, target)
                    baselines.append(seconds)
                    commits.append(commit)
        async with runtime.session(source) as session:
            customers = len((await session.execute(select(m.Customer.id))).all())
        import_s, baseline_s, commit_s = sum(imports), sum(baselines), sum(commits)
        return {
            "rows": args.rows,
            "database": runtime.engine.dialect.name,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "import_s": [round(s, 3) for s in imports],
            "baseline_s": [round(s, 3) for s in baselines],
            "baseline_commit_s": [round(s, 3) for s in commits],
            "import_rows_per_s": round(args.rows * len(imports) / import_s, 1),
            "baseline_rows_per_s": round(args.rows * len(baselines) / (baseline_s + commit_s), 1),
            "ratio": round((baseline_s + commit_s) / len(baselines) / (import_s / len(imports)), 3),
            "ratio_executemany_only": round(baseline_s / len(baselines) / (import_s / len(imports)), 3),
            "table_rows_per_customer": round(table_rows / customers, 2),
            "statements_per_batch": per_batch,
            "per_row_growth": round(max(growths), 2) if growths else None,
            "max_rss_mb": round(rss_mb, 1),
            "database_bytes_per_customer": db_bytes,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        }
    finally:
        await runtime.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    add_smoke(parser, rows=600, rounds=2, batch_size=100)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'import.db'}"
        result = asyncio.run(run(args, url, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
