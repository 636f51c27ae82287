"""Every bench in bench/ runs end to end at its ``--smoke`` size, so none can rot unnoticed
(bench/referral_tree.py failed with 401 for weeks once authentication landed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def smoke(script: str, cwd: Path, *args: str) -> dict[str, Any]:
    """Run ``bench/<script> --smoke *args`` without the caller's GUANXI settings (a bench
    configures itself); it must exit 0, and its last output line is its JSON object."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUANXI")}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return result


def test_the_benches_are_found() -> None:
    assert {
        "graphql_list.py",
        "ingest.py",
        "profile_graphql.py",
        "referral_tree.py",
        "scoring.py",
        "wecom_ingest.py",
        "douyin_ingest.py",
        "insights.py",
        "email_send.py",
        "journey.py",
        "import_customers.py",
        "ack_group.py",
        "soak.py",
        "reports.py",
        "drain.py",
        "customer_count.py",
    } <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_bench_runs_at_its_smoke_size_and_prints_json_with_a_ratio(script: str, tmp_path: Path) -> None:
    result = smoke(script, tmp_path)
    ratio = result.get("ratio")
    assert isinstance(ratio, int | float) and not isinstance(ratio, bool) and ratio > 0, result
    if "ingest" in script:  # a ratio against a baseline that only answered errors means nothing
        assert result.get("errors") == 0, result
        assert result.get("baseline_errors") == 0, result
    if script == "drain.py":  # the worker and the hand-written baseline each applied every event once
        assert result["exactly_once"] and result["baseline_exactly_once"], result
    if script == "scoring.py":  # the recompute and the hand-written UPDATE gave everyone the same total
        assert result["same_totals"] and result["first_recompute_s"] > 0 and result["first_ratio"] > 0, result


def test_the_soak_reports_intervals_cpu_rss_backlog_and_what_grew(tmp_path: Path) -> None:
    """``soak.py --smoke`` (15 s at 4 requests/s): every interval has throughput, latency, server
    CPU, RSS and inbox backlog; the trend of CPU per request and the statement probes are there,
    every request was answered, and the tenant grew by the webhooks' new senders."""
    result = smoke("soak.py", tmp_path)
    assert result["errors"] == 0 and result["dropped"] == 0
    assert len(result["intervals"]) == 3
    for interval in result["intervals"]:
        assert {"rps", "page_p50_ms", "webhook_p99_ms", "server_cpu", "cpu_ms_per_request", "rss_mb", "inbox_backlog"} <= set(interval)
        assert interval["rss_mb"] > 0
    assert result["requests_answered"] == 60  # 4/s for 15 s, open loop: every scheduled request went out
    assert result["customers_after"] > result["seeded_customers"]
    assert result["cpu_ms_per_request_slope"] is not None
    assert result["probe_start"] and result["probe_end"] and result["growth"]


def test_the_page_bench_with_a_plugin_field_runs_at_its_smoke_size_without_errors(tmp_path: Path) -> None:
    """``graphql_list.py --plugin-field`` (the page with ``insights { channels }``, merged into the
    SQL layer's JSON) runs at its smoke size: same page as the baseline, no failed request."""
    result = smoke("graphql_list.py", tmp_path, "--plugin-field")
    assert result["plugin_field"] and result["same_page"] and result["sql_layer"], result
    assert result["errors"] == 0 and result["baseline_errors"] == 0, result


@pytest.mark.parametrize("script", ["ack_group.py", "import_customers.py"])
async def test_a_bench_runs_on_postgresql_with_its_database_url(script: str, own_database_url: str, tmp_path: Path) -> None:
    """The PostgreSQL path of a bench (``--database-url``) runs at its smoke size on a database of
    its own, in CI's PostgreSQL leg."""
    import asyncio

    if not own_database_url.startswith("postgresql"):
        pytest.skip("a bench's PostgreSQL path: CI's PostgreSQL leg runs it (GUANXI_TEST_DATABASE_URL)")
    result = await asyncio.to_thread(smoke, script, tmp_path, "--database-url", own_database_url)
    assert result["database"] == "postgresql" and result["ratio"] > 0, result
