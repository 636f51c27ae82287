"""Benchmark: every sales report against one hand-written SQL query for the same figure.

    python bench/reports.py --customers 100000 --json [--database-url URL] [--repeat 3]

Loads the demo tenant (``--customers`` customers, at most 100,000; about 13 interactions each over
six months, deals, contracts and payments: the sales plugin enabled; the demo generator writes
with bulk Core inserts), then times, in the same run and on the same database, each report's SQL
as its GraphQL field runs it (through the tenant session) and a hand-written SQL query computing
the same figures (on a plain connection, a different formulation: correlated lookups and plain
GROUP BYs where the report uses window functions). Each pair's results are compared. Prints JSON:

- per report ``<name>_s`` / ``<name>_hand_s`` (best of ``--repeat``), ``<name>_ratio`` = report /
  hand, and ``same_<name>``: the report and the hand-written query give the same figures. Reports:
  ``funnel`` (by owner: entered per stage, average time in stage), ``performance`` (by owner: new
  leads, follow-ups, response time, deals won and their amount, revenue, due and collected),
  ``performance_source`` (the same figures by the customer's source), ``repeat`` (repeat purchase
  rate and purchase frequency by source), ``cohorts`` (retention by month of first purchase),
  ``attribution_first`` / ``attribution_last`` (won revenue by the channel of the first / last touch)
- ``ratio``: the largest ratio; ``customers``, ``interactions``, ``deals``, ``payments``,
  ``seed_s``: the data and how long loading it took

It exits non-zero if any report disagrees with its hand-written query.
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


def seconds(pg: bool, later: str, earlier: str) -> str:
    return f"extract(epoch from ({later} - {earlier}))" if pg else f"(julianday({later}) - julianday({earlier})) * 86400.0"


def hand_funnel(pg: bool) -> str:
    """Entered per owner and stage and the average seconds in the stage (the next move by a
    correlated lookup), written by hand."""
    nxt = ("SELECT min(n.at) FROM sales_deal_moves n WHERE n.tenant_id = m.tenant_id AND n.deal_id = m.deal_id "
           "AND (n.at > m.at OR (n.at = m.at AND n.id > m.id))")  # fmt: skip
    return f"""SELECT d.owner_id, s.key, count(DISTINCT d.id), avg({seconds(pg, f"({nxt})", "m.at")}) FROM sales_deals d
  JOIN sales_deal_moves m ON m.tenant_id = d.tenant_id AND m.deal_id = d.id
  JOIN sales_deal_stages s ON s.tenant_id = d.tenant_id AND s.id = m.to_stage_id
  WHERE d.tenant_id = :t AND d.created_at >= :a AND d.created_at < :b GROUP BY d.owner_id, s.key"""


def hand_performance(pg: bool, by: str) -> str:
    """The performance report's figures per user (``by`` = "owner") or per customer source,
    written by hand: one grouped subquery per figure, the response time by a correlated lookup of
    the next outbound message."""
    key = "c.owner_id" if by == "owner" else "c.source"
    # deals count for the deal's owner, payments and instalments for the contract's owner
    deal_key, contract_key = ("d.owner_id", "k.owner_id") if by == "owner" else (key, key)
    gap = seconds(pg, "r.answered", "r.at")
    figures = f"""
  LEFT JOIN (SELECT {key} AS k, count(*) AS n FROM customers c WHERE c.tenant_id = :t AND c.created_at >= :a AND c.created_at < :b
             AND c.merged_into_id IS NULL GROUP BY {key}) l ON l.k = g.k
  LEFT JOIN (SELECT {key} AS k, count(*) AS n FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
             WHERE i.tenant_id = :t AND i.direction IN ('out', 'internal') AND i.occurred_at >= :a AND i.occurred_at < :b
             GROUP BY {key}) f ON f.k = g.k
  LEFT JOIN (SELECT r.k, avg({gap}) AS avg_s, count(r.answered) AS n FROM (
               SELECT {key} AS k, i.occurred_at AS at, (SELECT min(o.occurred_at) FROM interactions o WHERE o.tenant_id = i.tenant_id
                 AND o.customer_id = i.customer_id AND o.kind = 'message_out' AND o.occurred_at >= i.occurred_at) AS answered
               FROM interactions i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
               WHERE i.tenant_id = :t AND i.kind = 'message_in' AND i.occurred_at >= :a AND i.occurred_at < :b) r
             GROUP BY r.k) rs ON rs.k = g.k
  LEFT JOIN (SELECT {deal_key} AS k, count(*) AS n, sum(d.amount) AS amount FROM sales_deals d
             JOIN customers c ON c.tenant_id = d.tenant_id AND c.id = d.customer_id WHERE d.tenant_id = :t AND d.status = 'won'
             AND d.closed_at >= :a AND d.closed_at < :b GROUP BY {deal_key}) w ON w.k = g.k
  LEFT JOIN (SELECT {contract_key} AS k, sum(p.amount) AS amount FROM sales_payments p
             JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
             JOIN sales_contracts k ON k.tenant_id = p.tenant_id AND k.id = p.contract_id
             WHERE p.tenant_id = :t AND p.received_at >= :a AND p.received_at < :b GROUP BY {contract_key}) rv ON rv.k = g.k
  LEFT JOIN (SELECT {contract_key} AS k, sum(x.amount) AS due, sum(CASE WHEN x.paid > x.amount THEN x.amount ELSE x.paid END) AS collected
             FROM sales_instalments x JOIN customers c ON c.tenant_id = x.tenant_id AND c.id = x.customer_id
             JOIN sales_contracts k ON k.tenant_id = x.tenant_id AND k.id = x.contract_id
             WHERE x.tenant_id = :t AND x.due_on >= :da AND x.due_on < :db GROUP BY {contract_key}) co ON co.k = g.k"""
    select_ = "SELECT g.k, l.n, f.n, rs.avg_s, rs.n, w.n, w.amount, rv.amount, co.due, co.collected"
    if by == "owner":
        groups = "(SELECT id AS k FROM users WHERE tenant_id = :t AND active AND role IN ('sales', 'manager'))"
    else:
        groups = "(SELECT DISTINCT source AS k FROM customers WHERE tenant_id = :t)"
    return f"{select_} FROM {groups} g {figures}"


def purchase_condition(pg: bool, alias: str) -> str:
    """A purchase or payment whose amount is not negative (a refund is no purchase)."""
    if pg:
        amount = f"CASE WHEN json_typeof({alias}.payload -> 'amount') = 'number' THEN ({alias}.payload ->> 'amount')::float END"
    else:
        amount = f"json_extract({alias}.payload, '$.amount')"
    return f"{alias}.kind IN ('purchase', 'payment') AND coalesce({amount}, 0) >= 0"


def hand_repeat(pg: bool) -> str:
    gap = seconds(pg, "x.l", "x.f")
    return f"""SELECT c.source, count(*), sum(CASE WHEN x.n >= 2 THEN 1 ELSE 0 END), sum(x.n),
         avg(CASE WHEN x.n >= 2 THEN {gap} / (x.n - 1) END)
  FROM (SELECT i.customer_id, count(*) AS n, min(i.occurred_at) AS f, max(i.occurred_at) AS l FROM interactions i
        WHERE i.tenant_id = :t AND {purchase_condition(pg, "i")} AND i.occurred_at >= :a AND i.occurred_at < :b
        GROUP BY i.customer_id) x
  JOIN customers c ON c.tenant_id = :t AND c.id = x.customer_id GROUP BY c.source"""


def month(pg: bool, col: str) -> str:
    return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM')" if pg else f"strftime('%Y-%m', {col})"


def hand_cohorts(pg: bool) -> str:
    return f"""SELECT {month(pg, "f.first_at")}, {month(pg, "i.occurred_at")}, count(DISTINCT i.customer_id)
  FROM (SELECT p.customer_id, min(p.occurred_at) AS first_at FROM interactions p
        WHERE p.tenant_id = :t AND {purchase_condition(pg, "p")} GROUP BY p.customer_id) f
  JOIN interactions i ON i.tenant_id = :t AND i.customer_id = f.customer_id AND {purchase_condition(pg, "i")}
  WHERE f.first_at >= :a AND f.first_at < :b GROUP BY 1, 2"""


def hand_attribution(touch: str) -> str:
    """Won revenue by the channel of the first touch or of the last inbound touch before the win:
    the touch is the interaction no other one precedes (follows) — an anti-join (NOT EXISTS),
    where the report takes the first row of an ORDER BY ... LIMIT 1. (A row_number() window over
    every interaction, joined back to the deals, is quadratic on SQLite: it is not indexed.)"""
    if touch == "first":
        on = "i.tenant_id = d.tenant_id AND i.customer_id = d.customer_id"
        earlier = "(j.occurred_at < i.occurred_at OR (j.occurred_at = i.occurred_at AND j.id < i.id))"
        beaten = f"SELECT 1 FROM interactions j WHERE j.tenant_id = i.tenant_id AND j.customer_id = i.customer_id AND {earlier}"
    else:
        on = "i.tenant_id = d.tenant_id AND i.customer_id = d.customer_id AND i.direction = 'in' AND i.occurred_at <= d.closed_at"
        later = "(j.occurred_at > i.occurred_at OR (j.occurred_at = i.occurred_at AND j.id > i.id))"
        beaten = (
            "SELECT 1 FROM interactions j WHERE j.tenant_id = i.tenant_id AND j.customer_id = i.customer_id AND j.direction = 'in' "
            f"AND j.occurred_at <= d.closed_at AND {later}"
        )
    return f"""SELECT i.channel, count(*), sum(d.amount) FROM sales_deals d
  LEFT JOIN interactions i ON {on} AND NOT EXISTS ({beaten})
  WHERE d.tenant_id = :t AND d.status = 'won' AND d.currency = :cur AND d.closed_at >= :a AND d.closed_at < :b GROUP BY i.channel"""


def uid(value: Any) -> str | None:
    """A user id as the ORM and a plain connection give it (a UUID, or SQLite's 32 hex digits)."""
    return None if value is None else str(uuid.UUID(str(value)))


def num(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def days(value: Any) -> float | None:
    return None if value is None else round(float(value) / 86400, 2)


async def timed(make: Any, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await make()
        best = min(best, time.perf_counter() - t0)
    return best, result


def performance_figures(rows: list[Any], owner: bool) -> dict[Any, tuple[Any, ...]]:
    """(leads, follow-ups, avg response minutes, responses, won, won amount, revenue, due,
    collected) per group, rows without any figure left out (the report lists every salesperson)."""
    out = {}
    for k, leads, follow, avg_s, answered, won, won_amount, revenue, due, collected in rows:
        figures = (
            int(leads or 0), int(follow or 0), None if avg_s is None else round(float(avg_s) / 60, 1), int(answered or 0),
            int(won or 0), num(won_amount or 0), num(revenue or 0), num(due or 0), num(collected or 0),
        )  # fmt: skip
        if any(figures):
            out[uid(k) if owner else k] = figures
    return out


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from guanxi.plugins.sales.deals.service import tenant_currency
    from guanxi.plugins.sales.reports import customers, performance, sql

    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'reports.db'}"
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "sales"})
    await upgrade(rt)
    await rt.start()
    out: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        slug = f"bench-reports-{args.customers}" if args.reuse else f"bench-reports-{uuid.uuid4().hex[:8]}"
        summary = await load_demo(rt, slug=slug, customers=args.customers, seed=5, now=NOW, if_empty=args.reuse)
        seed_s = time.perf_counter() - t0
        tenant = summary.tenant_id
        pg = rt.engine.dialect.name == "postgresql"
        if not summary.loaded:
            log(f"reusing the tenant {slug!r} loaded by an earlier run")
        async with rt.engine.connect() as conn:
            counts = {
                table: int((await conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t").bindparams(
                    bindparam("t", type_=Uuid())), {"t": tenant})).scalar_one())
                for table in ("customers", "interactions", "sales_deals", "sales_payments")
            }  # fmt: skip
        async with rt.session(tenant) as s:
            currency = await tenant_currency(s)

        async def hand(query: str) -> list[Any]:
            stmt = text(query).bindparams(
                bindparam("a", type_=UTCDateTime()), bindparam("b", type_=UTCDateTime()), bindparam("t", type_=Uuid())
            )
            params = {"a": START, "b": END, "t": tenant, "cur": currency, "da": START.date(), "db": END.date()}
            async with rt.engine.connect() as conn:
                return list((await conn.execute(stmt, {k: v for k, v in params.items() if f":{k}" in query})).all())

        async def report(name: str, make: Any, hand_sql: str, shape: Any, hand_shape: Any) -> None:
            async def through_session() -> list[Any]:
                async with rt.session(tenant) as s:
                    return list(await make(s))

            report_s, rows = await timed(through_session, args.repeat)
            hand_s, hand_rows = await timed(lambda: hand(hand_sql), args.repeat)
            got, want = shape(rows), hand_shape(hand_rows)
            out[f"{name}_s"], out[f"{name}_hand_s"] = round(report_s, 4), round(hand_s, 4)
            ratios[name] = report_s / hand_s
            out[f"{name}_ratio"] = round(ratios[name], 3)
            out[f"same_{name}"] = got == want and bool(want)
            if not out[f"same_{name}"]:
                diff = sorted(set(got.items()) ^ set(want.items()), key=str)[:6]
                log(f"{name}: the report and the hand-written query disagree (or found nothing): {diff}")

        await report(
            "funnel",
            lambda s: sql.funnel(s, pg, START, END, "owner", None),
            hand_funnel(pg),
            lambda rows: {(uid(r[0]), r[3]): (int(r[7]), days(r[8])) for r in rows},
            lambda rows: {(uid(o), k): (int(n), days(a)) for o, k, n, a in rows},
        )
        for name, by in (("performance", "owner"), ("performance_source", "source")):
            await report(
                name,
                lambda s, by=by: performance.performance(s, pg, START, END, by),
                hand_performance(pg, by),
                lambda rows, by=by: performance_figures([(r[0], *r[2:]) for r in rows], by == "owner"),
                lambda rows, by=by: performance_figures(rows, by == "owner"),
            )
        await report(
            "repeat",
            lambda s: customers.repeat_purchase(s, pg, START, END, "source"),
            hand_repeat(pg),
            lambda rows: {r[0]: (int(r[2]), int(r[3]), int(r[4]), days(r[5])) for r in rows},
            lambda rows: {k: (int(b), int(rb), int(n), days(g)) for k, b, rb, n, g in rows},
        )
        await report(
            "cohorts",
            lambda s: customers.cohorts(s, pg, START, END, None),
            hand_cohorts(pg),
            lambda rows: {
                (f"{c // 12:04d}-{c % 12 + 1:02d}", f"{(c + o) // 12:04d}-{(c + o) % 12 + 1:02d}"): int(n) for _, _, c, o, n in rows
            },
            lambda rows: {(c, m): int(n) for c, m, n in rows},
        )
        for touch in ("first", "last"):
            await report(
                f"attribution_{touch}",
                lambda s, touch=touch: customers.attribution(s, pg, START, END, "channel", touch, currency),
                hand_attribution(touch),
                lambda rows: {k: (int(n), num(a)) for k, n, a in rows},
                lambda rows: {k: (int(n), num(a)) for k, n, a in rows},
            )
    finally:
        await rt.stop()
    return {
        "customers": counts["customers"],
        "interactions": counts["interactions"],
        "deals": counts["sales_deals"],
        "payments": counts["sales_payments"],
        "seed_s": round(seed_s, 1) if summary.loaded else None,
        **out,
        "ratio": round(max(ratios.values()), 3),
        "database": url.split(":", 1)[0],
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="with --database-url: load the demo tenant once and reuse it on later runs of the same size"
    )
    add_smoke(parser, customers=60)
    args = parse(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    same = all(v for k, v in result.items() if k.startswith("same_"))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
