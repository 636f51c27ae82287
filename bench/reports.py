"""Benchmark: the sales reports against one hand-written SQL query for the same figure.

    python bench/reports.py --customers 100000 --json [--database-url URL]

Loads the demo tenant (``--customers`` customers, about six months of interactions, deals,
contracts and payments: the sales plugin enabled), then times, in the same run and on the same
database, each report's SQL as the GraphQL field runs it (through the tenant session) and a
hand-written SQL query computing the same figure (on a plain connection). Prints JSON:

- ``funnel_s`` / ``funnel_hand_s``: the deal funnel by owner vs a hand-written GROUP BY (entered
  per owner and stage, average time in stage by a correlated lookup); ``funnel_ratio`` = report / hand
- ``performance_s`` / ``performance_hand_s``: salesperson performance vs a hand-written query of
  its figures per user (new leads, follow-ups, response time, deals won, revenue; its revenue
  column is checked against the report's); ``performance_ratio`` = report / hand
- ``ratio``: the larger of the two ratios; ``interactions``, ``deals``, ``payments``: the data
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Uuid, bindparam, text  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from guanxi.core.domain.models import UTCDateTime  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402
from guanxi.demo.generator import load_demo  # noqa: E402

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
START, END = NOW - dt.timedelta(days=180), NOW


def hand_funnel(pg: bool) -> str:
    """Entered per owner and stage and the average seconds in the stage (the next move by a
    correlated lookup), written by hand."""
    nxt = ("SELECT min(n.at) FROM sales_deal_moves n WHERE n.tenant_id = m.tenant_id AND n.deal_id = m.deal_id "
           "AND (n.at > m.at OR (n.at = m.at AND n.id > m.id))")  # fmt: skip
    stay = f"extract(epoch from (({nxt}) - m.at))" if pg else f"(julianday(({nxt})) - julianday(m.at)) * 86400.0"
    return f"""SELECT d.owner_id, s.key, count(DISTINCT d.id), avg({stay}) FROM sales_deals d
  JOIN sales_deal_moves m ON m.tenant_id = d.tenant_id AND m.deal_id = d.id
  JOIN sales_deal_stages s ON s.tenant_id = d.tenant_id AND s.id = m.to_stage_id
  WHERE d.tenant_id = :t AND d.created_at >= :a AND d.created_at < :b GROUP BY d.owner_id, s.key"""


HAND_REVENUE = """SELECT c.owner_id, sum(p.amount) AS amount FROM sales_payments p
  JOIN sales_contracts c ON c.tenant_id = p.tenant_id AND c.id = p.contract_id
  WHERE p.tenant_id = :t AND p.received_at >= :a AND p.received_at < :b GROUP BY c.owner_id"""


def hand_performance(pg: bool) -> str:
    """The performance report's figures per user, written by hand: grouped subqueries, the
    response time by a correlated lookup of the next outbound message."""
    gap = "extract(epoch from (r.answered - r.at))" if pg else "(julianday(r.answered) - julianday(r.at)) * 86400.0"
    return f"""SELECT u.id, l.n, f.n, rs.avg_s, w.n, w.amount, rv.amount FROM users u
  LEFT JOIN (SELECT owner_id, count(*) AS n FROM customers WHERE tenant_id = :t AND created_at >= :a AND created_at < :b
             AND merged_into_id IS NULL GROUP BY owner_id) l ON l.owner_id = u.id
  LEFT JOIN (SELECT c.owner_id, count(*) AS n FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
             WHERE i.tenant_id = :t AND i.direction IN ('out', 'internal') AND i.occurred_at >= :a AND i.occurred_at < :b
             GROUP BY c.owner_id) f ON f.owner_id = u.id
  LEFT JOIN (SELECT r.owner_id, avg({gap}) AS avg_s FROM (
               SELECT c.owner_id, i.occurred_at AS at, (SELECT min(o.occurred_at) FROM interactions o WHERE o.tenant_id = i.tenant_id
                 AND o.customer_id = i.customer_id AND o.kind = 'message_out' AND o.occurred_at >= i.occurred_at) AS answered
               FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
               WHERE i.tenant_id = :t AND i.kind = 'message_in' AND i.occurred_at >= :a AND i.occurred_at < :b) r
             GROUP BY r.owner_id) rs ON rs.owner_id = u.id
  LEFT JOIN (SELECT owner_id, count(*) AS n, sum(amount) AS amount FROM sales_deals WHERE tenant_id = :t AND status = 'won'
             AND closed_at >= :a AND closed_at < :b GROUP BY owner_id) w ON w.owner_id = u.id
  LEFT JOIN ({HAND_REVENUE}) rv ON rv.owner_id = u.id
  WHERE u.tenant_id = :t AND u.active AND u.role IN ('sales', 'manager')"""


def uid(value: Any) -> str | None:
    """A user id as the ORM and a plain connection give it (a UUID, or SQLite's 32 hex digits)."""
    return None if value is None else str(uuid.UUID(str(value)))


async def timed(make: Any, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await make()
        best = min(best, time.perf_counter() - t0)
    return best, result


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from guanxi.plugins.sales.reports import sql

    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'reports.db'}"
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "sales"})
    await upgrade(rt)
    await rt.start()
    try:
        summary = await load_demo(rt, slug="bench-reports", customers=args.customers, seed=5, now=NOW)
        tenant = summary.tenant_id
        pg = rt.engine.dialect.name == "postgresql"

        async def hand(query: str) -> list[Any]:
            stmt = text(query).bindparams(
                bindparam("a", type_=UTCDateTime()), bindparam("b", type_=UTCDateTime()), bindparam("t", type_=Uuid())
            )
            async with rt.engine.connect() as conn:
                return list((await conn.execute(stmt, {"a": START, "b": END, "t": tenant})).all())

        async def funnel() -> list[Any]:
            async with rt.session(tenant) as s:
                return await sql.funnel(s, pg, START, END, "owner", None)

        async def performance() -> list[Any]:
            async with rt.session(tenant) as s:
                return await sql.performance(s, pg, START, END, False)

        funnel_s, rows = await timed(funnel, args.repeat)
        funnel_hand_s, hand_rows = await timed(lambda: hand(hand_funnel(pg)), args.repeat)
        if {(uid(r[0]), r[3], int(r[7])) for r in rows} != {(uid(o), k, int(n)) for o, k, n, _ in hand_rows}:
            raise SystemExit("the funnel report and the hand-written query disagree")
        performance_s, perf = await timed(performance, args.repeat)
        performance_hand_s, _figures = await timed(lambda: hand(hand_performance(pg)), args.repeat)
        revenue = await hand(HAND_REVENUE)
        got = {uid(r[0]): round(float(r[8]), 2) for r in perf if float(r[8])}
        want = {uid(o): round(float(a), 2) for o, a in revenue if o is not None and float(a)}
        if got != want:
            raise SystemExit(f"the performance report's revenue and the hand-written query disagree: {got} vs {want}")
    finally:
        await rt.stop()
    funnel_ratio, performance_ratio = funnel_s / funnel_hand_s, performance_s / performance_hand_s
    return {
        "customers": summary.customers,
        "interactions": summary.interactions + summary.payments,
        "deals": summary.deals,
        "payments": summary.payments,
        "funnel_s": round(funnel_s, 4),
        "funnel_hand_s": round(funnel_hand_s, 4),
        "funnel_ratio": round(funnel_ratio, 3),
        "performance_s": round(performance_s, 4),
        "performance_hand_s": round(performance_hand_s, 4),
        "performance_ratio": round(performance_ratio, 3),
        "ratio": round(max(funnel_ratio, performance_ratio), 3),
        "database": url.split(":", 1)[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--json", action="store_true")
    add_smoke(parser, customers=60)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
