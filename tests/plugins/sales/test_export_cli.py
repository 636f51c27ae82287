"""``guanxi sales export-customers`` (issue 20 item 8): the CSV export from the command line, acting
as an API key's holder (a salesperson's export holds only their own customers), filtered with the
``CustomerFilter`` of ``customers(filter:)`` as JSON (custom-field conditions included), custom
fields as columns, streamed: the statements grow per page of rows, never per row."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import insert

from guanxi import Runtime
from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer
from guanxi.plugins.sales import export
from guanxi.testing.plugin import api_key
from guanxi.testing.sql import count_statements
from tests.plugins.sales.conftest import Team
from tests.plugins.sales.test_export import _data

pytestmark = pytest.mark.plugins("sales")


def cli_runtime(runtime: Runtime) -> Runtime:
    return Runtime(runtime.settings, runtime.pm, {})


async def invoke(rt: Runtime, *args: str, env: dict[str, str] | None = None) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, build_cli(rt), ["sales", "export-customers", *args], obj=rt, env=env)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_a_salesperson_exports_their_own_customers_filtered_by_a_custom_field(runtime: Runtime, team: Team, tmp_path: Path) -> None:
    made = await _data(runtime, team)
    li = await api_key(runtime, team.tenant_id, "sales", user_id=team.users["li"])
    result = await invoke(cli_runtime(runtime), "--api-key", li)
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert list(rows[0]) == [*export.BASE_COLUMNS, "budget", "grade"]  # custom fields as columns
    assert {r["id"] for r in rows} == {made["a"], made["b"]}  # not wu's customer
    out = tmp_path / "a.csv"
    flt = json.dumps({"fields": [{"field": "grade", "eq": "A"}]})
    result = await invoke(cli_runtime(runtime), "--filter", flt, "-o", str(out), env={"GUANXI_API_KEY": li})
    assert result.exit_code == 0, result.output
    (row,) = rows_of(out.read_text(encoding="utf-8"))
    assert (row["id"], row["display_name"], row["grade"], row["budget"]) == (made["a"], "王芳", "A", "12000")
    admin = await api_key(runtime, team.tenant_id, "admin")
    result = await invoke(cli_runtime(runtime), "--api-key", admin, "--filter", flt)
    assert {r["id"] for r in rows_of(result.stdout)} == {made["a"], made["w"]}  # an admin sees wu's A customer too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", '{"fields": [{"field": "nope", "eq": "A"}]}'], "VALIDATION"),
        (["--filter", '{"fields": [{"field": "grade", "eq": "Z"}]}'], "VALIDATION"),
        (["--filter", '{"unassigned": "maybe"}'], "VALIDATION: filter.unassigned"),
        (["--filter", '{"stagez": ["lead"]}'], "VALIDATION: filter: Expected value of type 'CustomerFilter'"),
        (["--filter", "{not json"], "Invalid value for --filter"),
    ],
)
async def test_a_bad_filter_fails_with_its_code_and_writes_no_file(
    runtime: Runtime, team: Team, tmp_path: Path, args: list[str], message: str
) -> None:
    await _data(runtime, team)
    li = await api_key(runtime, team.tenant_id, "sales", user_id=team.users["li"])
    out = tmp_path / "x.csv"
    result = await invoke(cli_runtime(runtime), "--api-key", li, "-o", str(out), *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert not out.exists()


async def test_a_key_that_may_not_export_or_an_unknown_key_gets_nothing(runtime: Runtime, team: Team) -> None:
    await _data(runtime, team)
    marketing = await api_key(runtime, team.tenant_id, "marketing")
    result = await invoke(cli_runtime(runtime), "--api-key", marketing)
    assert result.exit_code == 1 and "FORBIDDEN" in result.output and "王芳" not in result.output
    result = await invoke(cli_runtime(runtime), "--api-key", "gx_0123_nope")
    assert result.exit_code == 1 and "UNAUTHENTICATED" in result.output


async def _bulk(runtime: Runtime, tenant_id: uuid.UUID, owner: uuid.UUID, n: int) -> None:
    rows: list[dict[str, Any]] = [
        {"tenant_id": tenant_id, "id": uuid.uuid4(), "display_name": f"Bulk {i}", "owner_id": owner, "phones": [], "emails": []}
        for i in range(n)
    ]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for start in range(0, n, 500):
            await tx.session.execute(insert(Customer), rows[start : start + 500])


async def test_thousands_of_rows_stream_in_pages_with_a_constant_number_of_statements_per_page(
    runtime: Runtime, team: Team, tmp_path: Path
) -> None:
    await _data(runtime, team)
    li = await api_key(runtime, team.tenant_id, "sales", user_id=team.users["li"])

    async def run(expected_rows: int) -> int:
        rt = cli_runtime(runtime)
        out = tmp_path / "all.csv"
        with count_statements(rt.engine) as seen:
            result = await invoke(rt, "--api-key", li, "--filter", '{"unassigned": false}', "-o", str(out))
        assert result.exit_code == 0, result.output
        assert len(rows_of(out.read_text(encoding="utf-8"))) == expected_rows
        return len(seen)

    await _bulk(runtime, team.tenant_id, team.users["li"], 2998)
    small = await run(3000)  # 6 pages of 500 (the last one short), then the end
    await _bulk(runtime, team.tenant_id, team.users["li"], 2000)
    large = await run(5000)  # 10 pages
    per_page = (large - small) / 4
    # a page: its customers, their custom-field values, the users they name, the session's set-up
    assert per_page == int(per_page) and 1 <= per_page <= 4, (small, large)
    assert small - 6 * per_page <= 8, (small, large)  # the rest: authentication, the fields, the audit, the last empty page
