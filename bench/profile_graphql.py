"""Where the GraphQL page's time goes: cProfile over in-process executions of the page query.

    python bench/profile_graphql.py [--customers 500] [--page 50] [--runs 50] [--sort tottime] [--limit 30] [--no-gc]

Seeds a fresh SQLite database like bench/graphql_list.py, then runs ``schema.execute(PAGE)`` with a
``GraphQLContext`` ``--runs`` times under cProfile (no HTTP) and prints the top functions, plus
the same number of baseline pages (bench/_server.py) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._server import baseline_page  # noqa: E402
from bench._smoke import add_smoke, parse  # noqa: E402
from bench.graphql_list import PAGE, make_runtime, seed  # noqa: E402
from guanxi.core.base.context import Actor, RequestContext  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.graphql.context import GraphQLContext  # noqa: E402
from guanxi.graphql.schema import build_schema  # noqa: E402


async def run(args: argparse.Namespace, db: Path) -> None:
    slug = f"prof-{secrets.token_hex(4)}"
    rt = make_runtime(f"sqlite+aiosqlite:///{db}", slug)
    try:
        await upgrade(rt)
        tid = await seed(rt, slug, args.customers)
        schema = build_schema(rt)
        variables = {"n": args.page}

        async def one() -> None:
            ctx = GraphQLContext(runtime=rt, request_context=RequestContext(tenant_id=tid, actor=Actor(kind="system", name="bench")))
            result = await schema.execute(PAGE, variable_values=variables, context_value=ctx)
            assert not result.errors, result.errors

        for _ in range(3):  # warm-up (caches, compiled SQL)
            await one()
            await baseline_page(rt, args.page)
        t0 = time.perf_counter()
        for _ in range(args.runs):
            await baseline_page(rt, args.page)
        base_ms = (time.perf_counter() - t0) / args.runs * 1000
        if args.no_gc:
            gc.collect()
            gc.disable()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for _ in range(args.runs):
            await one()
        prof.disable()
        gql_ms = (time.perf_counter() - t0) / args.runs * 1000
        gc.enable()
        if args.json:
            ratio = round(base_ms / gql_ms, 4) if gql_ms else None
            print(json.dumps({"customers": args.customers, "page_size": args.page, "runs": args.runs, "gql_ms": round(gql_ms, 2),
                              "baseline_ms": round(base_ms, 2), "ratio": ratio}))  # fmt: skip
            return
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.limit)
        print(out.getvalue())
        print(f"GraphQL page (profiled): {gql_ms:.1f} ms/run; baseline page (not profiled): {base_ms:.1f} ms/run")
    finally:
        await rt.engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--page", type=int, default=50)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--sort", default="cumulative")
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--no-gc", action="store_true", help="disable the cyclic garbage collector while profiling")
    p.add_argument(
        "--json", action="store_true", help="print the timings as JSON instead of the profile (ratio: baseline ms / profiled GraphQL ms)"
    )
    add_smoke(p, customers=20, page=5, runs=3)
    args = parse(p)
    with tempfile.TemporaryDirectory(prefix="guanxi-prof-") as tmp:
        asyncio.run(run(args, Path(tmp) / "prof.db"))


if __name__ == "__main__":
    main()
