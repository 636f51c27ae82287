"""Benchmark: the scoring plugin's set-based batch recompute against one hand-written UPDATE.

    python bench/scoring.py --customers 20000 --interactions 200000 --json [--batch-size 2000] [--database-url URL]

Seeds a new tenant with N customers (a third with a company and an email, one in ten with a
Douyin identity carrying followers and an engagement rate) and M interactions spread over 180
days (messages, clicks, email opens, visits, calls, purchases with an amount, follows,
unsubscribes, complaints), with Core bulk inserts (no hook runs while seeding). Then, in one run:

- ``recompute_s``: ``recompute_tenant`` over everyone (every component, history, stage rules),
  batch by batch of customer ids; ``customers_per_s`` = N / recompute_s;
- ``baseline_s``: one hand-written SQL ``UPDATE scoring_scores SET total = totals.total FROM (…)``
  computing the same totals as the plugin's rules (engagement with its per-day caps and decay,
  purchase recency, frequency and monetary value, social followers and engagement rate,
  profile completeness; no parts, no history, no stage rules) over the same data;
  ``same_totals`` says that both gave every customer the same total (within 1e-6);
  ``ratio`` = recompute_s / baseline_s (the goal is ≤ 2);
- ``first_recompute_s``: the tenant's first recompute, which creates every score row and a
  history row per customer (the UPDATE has no rows to set before it); ``first_ratio`` compares it
  with the mean baseline round. It is reported apart: the rounds below measure the recompute as it
  runs from then on (nightly, or after a rule change), over existing scores;
- both then run ``--rounds`` times, alternating which goes first, each round with its own
  ``as_of``; ``recompute_s`` and ``baseline_s`` are sums over the rounds, ``*_rounds_s`` the
  rounds;
- ``incremental_ms_p50`` / ``incremental_ms_p95``: one customer's score update as after an
  interaction (the event hook's transaction), over ``--samples`` customers;
- ``incremental_statements``: SQL statements of one such update.

Stage rules are off unless ``--stage-rules``: moving a customer (stage change, owner, task, their
events) is per-customer business work, not scoring, and would dominate the figure when most of the
seeded leads cross a threshold at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import random
import secrets
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import log, pct  # noqa: E402
from guanxi.core.base.ids import new_id  # noqa: E402
from guanxi.core.domain import models as m  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.core.storage.statistics import refresh_statistics  # noqa: E402
from guanxi.plugins.scoring.settings import PERIOD_SECONDS, ScoringSettings  # noqa: E402
from guanxi.plugins.scoring.sql import LN2, LN10, epoch_seconds  # noqa: E402
from guanxi.testing.sql import count_statements  # noqa: E402

KINDS = [
    ("message_in", 40),
    ("click", 15),
    ("email_open", 15),
    ("follow", 5),
    ("visit", 5),
    ("call", 5),
    ("purchase", 10),
    ("note", 2),
    ("unsubscribe", 2),
    ("complaint", 1),
]


def _advance(progress: Any, task: Any, done: int, total: int) -> None:
    progress.update(task, completed=done, total=total)


def _progress(total: int, what: str) -> Any:
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(transient=True, console=Console(stderr=True))
    progress.start()
    return progress, progress.add_task(what, total=total)


async def seed(runtime: Runtime, n: int, interactions: int, seed_value: int, batch: int = 5000) -> uuid.UUID:
    from guanxi.core.services.pipelines import create_tenant

    rng = random.Random(seed_value)
    async with runtime.session(None) as session, session.begin():
        tenant_id = await create_tenant(session, f"bench-{secrets.token_hex(4)}", "Scoring benchmark")
    async with runtime.session(tenant_id) as session:
        stages = list((await session.execute(select(m.Stage.id).order_by(m.Stage.position))).scalars())
    now = dt.datetime.now(dt.UTC)
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    per_customer = [interactions // n + (1 if i < interactions % n else 0) for i in range(n)]
    progress, task = _progress(n, f"seeding {n:,} customers, {interactions:,} interactions")
    try:
        for lo in range(0, n, batch):
            customers, identities, inters = [], [], []
            for i in range(lo, min(n, lo + batch)):
                cid = new_id()
                created = now - dt.timedelta(days=200)
                customers.append(
                    {
                        "tenant_id": tenant_id,
                        "id": cid,
                        "display_name": f"Customer {i}",
                        "company": "ACME" if i % 3 == 0 else None,
                        "phones": [],
                        "emails": [f"c{i}@example.com"] if i % 3 == 0 else [],
                        "attributes": {},
                        "owner_id": None,
                        "stage_id": stages[0],
                        "source": "bench",
                        "search_text": f"customer {i}",
                        "merged_into_id": None,
                        "merged_at": None,
                        "last_interaction_at": None,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                if i % 10 == 0:
                    identities.append(
                        {
                            "tenant_id": tenant_id,
                            "id": new_id(),
                            "customer_id": cid,
                            "channel": "douyin",
                            "external_id": f"dy{i}",
                            "union_id": None,
                            "nickname": None,
                            "avatar_url": None,
                            "follower_count": int(10 ** rng.uniform(1, 6)),
                            "profile": {"engagement_rate": round(rng.uniform(0, 0.2), 4)},
                            "created_at": created,
                            "updated_at": created,
                        }
                    )
                for _ in range(per_customer[i]):
                    kind = rng.choices(kinds, weights)[0]
                    inters.append(
                        {
                            "tenant_id": tenant_id,
                            "id": new_id(),
                            "customer_id": cid,
                            "identity_id": None,
                            "channel": rng.choice(("wecom", "email", "douyin")),
                            "kind": kind,
                            "direction": "in",
                            "occurred_at": now - dt.timedelta(seconds=rng.uniform(0, 180 * 86400)),
                            "recorded_at": now,
                            "text": None,
                            "payload": {"amount": round(rng.uniform(10, 2000), 2)} if kind == "purchase" else {},
                            "dedupe_key": None,
                            "actor_id": None,
                        }
                    )
            async with runtime.session(tenant_id) as session, session.begin():
                await session.execute(insert(m.Customer), customers)
                if identities:
                    await session.execute(insert(m.Identity), identities)
                for k in range(0, len(inters), 10_000):
                    await session.execute(insert(m.Interaction), inters[k : k + 10_000])
            progress.update(task, completed=min(n, lo + batch))
    finally:
        progress.stop()
    return tenant_id


def baseline_sql(dialect: str, settings: ScoringSettings) -> str:
    """One hand-written ``UPDATE`` setting every live customer's total to what the plugin computes
    with ``settings`` (its rules written out as SQL): engagement (points per kind, at most ``cap``
    per day, decayed), purchase recency, frequency and monetary value, social followers and
    engagement rate per channel, profile completeness. No parts, no history, no stage rules.
    Bind parameters: ``tenant_id``, ``as_of`` (stored format), ``as_of_epoch`` (seconds)."""
    pg = dialect == "postgresql"

    def epoch(col: str) -> str:
        return f"CAST(extract(epoch FROM {col}) AS FLOAT)" if pg else f"((julianday({col}) - 2440587.5) * 86400.0)"

    least, greatest = ("least", "greatest") if pg else ("min", "max")

    def decay(age: str, half_life_days: float) -> str:
        return f"exp({greatest}({-LN2 / (half_life_days * 86400.0)!r} * ({age}), -700.0))"

    def number(key: str, column: str = "payload") -> str:
        """A JSON value as a float when it holds a plain decimal number, else NULL."""
        if pg:
            v = f"trim({column} ->> '{key}')"
            return f"CASE WHEN {v} ~ '^-?([0-9]+\\.?[0-9]*|\\.[0-9]+)$' THEN CAST({v} AS FLOAT) END"
        v = f"trim(json_extract({column}, '$.\"{key}\"'))"
        return (
            f"CASE WHEN {v} GLOB '*[0-9]*' AND {v} NOT GLOB '*[^0-9.-]*' AND {v} NOT GLOB '?*-*' AND {v} NOT GLOB '*.*.*'"
            f" THEN CAST({v} AS FLOAT) END"
        )

    eng, pur, soc, prof = settings.engagement, settings.purchase, settings.social, settings.profile
    if any(r.channel is not None for r in eng.rules):
        raise SystemExit("the baseline writes out kind-only engagement rules (the defaults)")
    kinds = ", ".join(f"'{r.kind}'" for r in eng.rules)
    points = " ".join(f"WHEN '{r.kind}' THEN {float(r.points)!r}" for r in eng.rules)
    caps = " ".join(f"WHEN '{r.kind}' THEN {r.cap if r.cap is not None else 2_000_000_000}" for r in eng.rules)
    periods = " ".join(f"WHEN '{r.kind}' THEN {float(PERIOD_SECONDS[r.period])!r}" for r in eng.rules)
    amount = f"coalesce({', '.join(number(k) for k in pur.amount_keys)}, 0.0)"
    rate = f"CAST(profile ->> '{soc.engagement_key}' AS FLOAT)" if pg else f"json_extract(profile, '$.\"{soc.engagement_key}\"')"
    filled = {
        "company": "(c.company IS NOT NULL AND c.company != '')",
        "source": "(c.source IS NOT NULL AND c.source != '')",
        "phones": "(json_array_length(c.phones) > 0)",
        "emails": "(json_array_length(c.emails) > 0)",
    }
    profile_points = " + ".join(f"(CASE WHEN {filled[f]} THEN {float(p)!r} ELSE 0.0 END)" for f, p in prof.completeness.items() if p)
    if prof.attributes:
        raise SystemExit("the baseline writes out completeness only (the defaults have no attribute rules)")
    log10 = f"/ {LN10!r}"
    return f"""
WITH matched AS (
  SELECT customer_id, kind, id, occurred_at, {epoch("occurred_at")} AS occ FROM interactions
  WHERE tenant_id = :tenant_id AND kind IN ({kinds}) AND occurred_at <= :as_of
), ranked AS (
  SELECT customer_id, kind, occ, row_number() OVER (
    PARTITION BY customer_id, kind, floor(occ / (CASE kind {periods} END)) ORDER BY occurred_at, id) AS rn
  FROM matched
), engagement AS (
  SELECT customer_id, sum(CASE WHEN rn <= (CASE kind {caps} END)
    THEN (CASE kind {points} END) * {decay(":as_of_epoch - occ", eng.half_life_days)} ELSE 0.0 END) AS value
  FROM ranked GROUP BY customer_id
), purchases AS (
  SELECT customer_id, count(*) AS n, sum({amount}) AS spent, max({epoch("occurred_at")}) AS last_occ FROM interactions
  WHERE tenant_id = :tenant_id AND kind = 'purchase' AND occurred_at <= :as_of GROUP BY customer_id
), purchase AS (
  SELECT customer_id,
    {float(pur.recency_points)!r} * {decay(":as_of_epoch - last_occ", pur.recency_half_life_days)}
    + {float(pur.frequency_points)!r} * {least}(n, {pur.frequency_cap})
    + {float(pur.monetary_points_per_decade)!r} * ln(1.0 + {greatest}(spent, 0.0)) {log10} AS value
  FROM purchases
), followers AS (
  SELECT customer_id, {least}({float(soc.points_per_decade)!r} * ln(1.0 + {greatest}(max(follower_count), 0.0)) {log10},
    {float(soc.max_points_per_identity)!r}) AS value
  FROM identities WHERE tenant_id = :tenant_id AND follower_count > 0 GROUP BY customer_id, channel
), rates AS (
  SELECT customer_id, {float(soc.engagement_points)!r} * {least}({greatest}(max({rate}), 0.0), 1.0) AS value
  FROM identities WHERE tenant_id = :tenant_id AND {rate} > 0 GROUP BY customer_id, channel
), social AS (
  SELECT customer_id, sum(value) AS value FROM (SELECT * FROM followers UNION ALL SELECT * FROM rates) AS s GROUP BY customer_id
), totals AS (
  SELECT c.id AS customer_id,
    {profile_points or "0.0"} + coalesce(e.value, 0.0) + coalesce(p.value, 0.0) + coalesce(s.value, 0.0) AS total
  FROM customers AS c
  LEFT JOIN engagement AS e ON e.customer_id = c.id
  LEFT JOIN purchase AS p ON p.customer_id = c.id
  LEFT JOIN social AS s ON s.customer_id = c.id
  WHERE c.tenant_id = :tenant_id AND c.merged_into_id IS NULL
)
UPDATE scoring_scores SET total = totals.total FROM totals
WHERE scoring_scores.tenant_id = :tenant_id AND scoring_scores.customer_id = totals.customer_id"""


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from guanxi.plugins.scoring.models import ScoringScore
    from guanxi.plugins.scoring.recompute import recompute_tenant, rescore, settings_of

    environ = {"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "scoring"}
    if not args.stage_rules:
        environ["GUANXI__PLUGINS__SCORING__STAGE_RULES"] = "[]"
    runtime = Runtime.from_config(environ=environ)
    await upgrade(runtime)
    await runtime.start()
    try:
        t0 = time.perf_counter()
        tenant_id = await seed(runtime, args.customers, args.interactions, args.seed)
        seed_s = time.perf_counter() - t0
        log(f"seeded in {seed_s:.1f} s")
        async with runtime.engine.begin() as conn:
            await refresh_statistics(conn)  # PostgreSQL: statistics that know the seeded tenant
        dialect = runtime.engine.dialect.name
        tid_param = tenant_id.hex if dialect == "sqlite" else tenant_id
        await runtime.tenant_plugins(tenant_id)  # loads the tenant's settings
        sql = baseline_sql(dialect, settings_of(runtime, tenant_id))
        recompute_rounds: list[float] = []
        baseline_rounds: list[float] = []
        worst = 0.0
        report = None
        baseline_rows = 0
        start = dt.datetime.now(dt.UTC)
        progress, task = _progress(args.customers, "first recompute (creates the scores)")
        try:
            t0 = time.perf_counter()
            await recompute_tenant(
                runtime, tenant_id, as_of=start, batch_size=args.batch_size, on_progress=partial(_advance, progress, task)
            )
            first_recompute_s = time.perf_counter() - t0
        finally:
            progress.stop()
        async with runtime.engine.begin() as conn:  # PostgreSQL: the score rows the UPDATE joins were just created
            await refresh_statistics(conn)
        for r in range(args.rounds):
            as_of = start + dt.timedelta(hours=r + 1)
            totals: dict[str, dict[Any, float]] = {}
            for step in ("recompute", "baseline") if r % 2 == 0 else ("baseline", "recompute"):
                if step == "recompute":
                    progress, task = _progress(args.customers, f"round {r + 1}: recomputing")
                    try:
                        t0 = time.perf_counter()
                        report = await recompute_tenant(
                            runtime,
                            tenant_id,
                            as_of=as_of,
                            batch_size=args.batch_size,
                            on_progress=partial(_advance, progress, task),
                        )
                        recompute_rounds.append(time.perf_counter() - t0)
                    finally:
                        progress.stop()
                else:
                    log(f"round {r + 1}: the hand-written UPDATE")
                    as_of_param = as_of.replace(tzinfo=None).isoformat(sep=" ") if dialect == "sqlite" else as_of
                    params = {"as_of": as_of_param, "as_of_epoch": epoch_seconds(as_of), "tenant_id": tid_param}
                    async with runtime.write_session(tenant_id) as session:
                        t0 = time.perf_counter()
                        # hand-written SQL that filters by tenant itself: marked so the tenant chokepoint lets it through
                        result = await session.execute(text(sql).execution_options(guanxi_unscoped=True), params)
                        baseline_rounds.append(time.perf_counter() - t0)
                        baseline_rows = int(getattr(result, "rowcount", 0) or 0)
                async with runtime.session(tenant_id) as session:
                    rows = await session.execute(select(ScoringScore.customer_id, ScoringScore.total))
                    totals[step] = {cid: float(total) for cid, total in rows}
            a, b = totals["recompute"], totals["baseline"]
            differences = [abs(a[k] - b[k]) / max(1.0, abs(a[k])) for k in a] if a.keys() == b.keys() else [float("inf")]
            worst = max([worst, *differences])
        recompute_s, baseline_s = sum(recompute_rounds), sum(baseline_rounds)
        async with runtime.session(tenant_id) as session:
            ids = list((await session.execute(select(m.Customer.id))).scalars())
        sample = random.Random(args.seed).sample(ids, min(args.samples, len(ids)))
        times = []
        statements = 0
        for cid in sample:
            with count_statements(runtime.engine) as seen:
                t0 = time.perf_counter()
                await rescore(runtime, tenant_id, cid, "bench")
                times.append((time.perf_counter() - t0) * 1000)
            statements = max(statements, len(seen))
    finally:
        await runtime.stop()
    return {
        "customers": args.customers,
        "interactions": args.interactions,
        "database": dialect,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "batches": report.batches if report else 0,
        "seed_s": round(seed_s, 2),
        "recompute_s": round(recompute_s, 3),
        "customers_per_s": round(args.customers / recompute_s, 1),
        "baseline_s": round(baseline_s, 3),
        "baseline_rows": baseline_rows,
        "recompute_rounds_s": [round(x, 3) for x in recompute_rounds],
        "baseline_rounds_s": [round(x, 3) for x in baseline_rounds],
        "same_totals": worst <= 1e-6,
        "max_relative_difference": worst,
        "ratio": round(recompute_s / baseline_s, 2) if baseline_s else None,
        "first_recompute_s": round(first_recompute_s, 3),
        "first_ratio": round(first_recompute_s / (baseline_s / len(baseline_rounds)), 2) if baseline_s else None,
        "incremental_ms_p50": round(pct(times, 0.5), 2),
        "incremental_ms_p95": round(pct(times, 0.95), 2),
        "incremental_statements": statements,
        "moved_by_stage_rules": report.moved if report else 0,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--samples", type=int, default=50, help="customers timed for the incremental update")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2, help="recompute and baseline runs, alternating which goes first")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--stage-rules", action="store_true", help="keep the default stage rules (moves, owners and tasks count in recompute_s)"
    )
    add_smoke(parser, customers=300, interactions=3000, batch_size=100, samples=5, rounds=2)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'scoring.db'}"
        result = asyncio.run(run(args, url))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
