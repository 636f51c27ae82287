"""CSV export of a filtered customer list (issue 20 item 8): ``GET /sales/customers.csv``
authenticated like the API, streamed in pages, custom fields as columns; a salesperson exports
only their own customers, a manager their team's, another tenant nothing of this one."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import AuditEvent, User
from guanxi.core.runtime import Runtime
from guanxi.core.services import fields
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales import export
from guanxi.testing.plugin import api_key
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales")


async def _data(runtime: Runtime, team: Team) -> dict[str, str]:
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B"]))
        await fields.define_field(tx, fields.FieldInput(key="budget", label="Budget", kind="money"))
        for user in (await tx.session.scalars(select(User).where(User.id.in_(team.users.values())))).all():
            user.team = "north" if user.id != team.users["wu"] else None
    made = {
        "a": await new_customer(runtime, team.tenant_id, "王芳", "+8613912345678", owner=team.users["li"]),
        "b": await new_customer(runtime, team.tenant_id, "=HYPERLINK(evil)", owner=team.users["li"]),
        "w": await new_customer(runtime, team.tenant_id, "Wu's", owner=team.users["wu"]),
    }
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.set_customer_fields(tx, from_global_id(made["a"], "Customer"), {"grade": "A", "budget": 12000})
        await fields.set_customer_fields(tx, from_global_id(made["b"], "Customer"), {"grade": "B"})
        await fields.set_customer_fields(tx, from_global_id(made["w"], "Customer"), {"grade": "A"})
    return made


async def _csv(http: httpx.AsyncClient, key: str | None, query: str = "") -> tuple[int, list[dict[str, str]], httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await http.get(f"/sales/customers.csv{query}", headers=headers)
    if response.status_code != 200:
        return response.status_code, [], response
    return 200, list(csv.DictReader(io.StringIO(response.text))), response


async def _key(runtime: Runtime, team: Team, name: str) -> str:
    role = {"mia": "manager", "admin": "admin"}.get(name, "sales")
    return await api_key(runtime, team.tenant_id, role, user_id=team.users.get(name))


async def test_a_salesperson_exports_their_own_customers_with_custom_fields_as_columns(
    runtime: Runtime, team: Team, http: httpx.AsyncClient
) -> None:
    made = await _data(runtime, team)
    status, rows, response = await _csv(http, await _key(runtime, team, "li"))
    assert status == 200 and response.headers["content-type"].startswith("text/csv")
    assert list(rows[0]) == [*export.BASE_COLUMNS, "budget", "grade"]  # the fields in their order
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {made["a"], made["b"]}  # not wu's
    a = by_id[made["a"]]
    assert (a["display_name"], a["phones"], a["owner"], a["grade"], a["budget"]) == ("王芳", "+8613912345678", "li@corp.cn", "A", "12000")
    assert by_id[made["b"]]["display_name"] == "'=HYPERLINK(evil)"  # a spreadsheet shows it as text
    async with runtime.session(team.tenant_id) as s:
        assert (await s.scalars(select(AuditEvent).where(AuditEvent.action == "sales.customers.export"))).all()


async def test_filters_apply_and_a_manager_exports_the_team(runtime: Runtime, team: Team, http: httpx.AsyncClient) -> None:
    made = await _data(runtime, team)
    _, rows, _ = await _csv(http, await _key(runtime, team, "admin"), "?field.grade=A")
    assert {r["id"] for r in rows} == {made["a"], made["w"]}
    _, rows, _ = await _csv(http, await _key(runtime, team, "mia"))  # team north: li's customers, not wu's
    assert {r["id"] for r in rows} == {made["a"], made["b"]}
    _, rows, _ = await _csv(http, await _key(runtime, team, "admin"), "?search=%E7%8E%8B")
    assert [r["id"] for r in rows] == [made["a"]]


async def test_the_export_streams_page_after_page(
    runtime: Runtime, team: Team, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _data(runtime, team)
    for i in range(5):
        await new_customer(runtime, team.tenant_id, f"C{i}", owner=team.users["li"])
    monkeypatch.setattr(export, "PAGE", 2)
    _, rows, _ = await _csv(http, await _key(runtime, team, "li"))
    assert len(rows) == 7 and len({r["id"] for r in rows}) == 7


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [("?field.nope=A", 400, "VALIDATION"), ("?field.grade=Z", 400, "VALIDATION"), ("?unassigned=maybe", 400, "VALIDATION")],
)
async def test_a_bad_filter_is_a_clear_400(
    runtime: Runtime, team: Team, http: httpx.AsyncClient, query: str, status: int, code: str
) -> None:
    await _data(runtime, team)
    got, _, response = await _csv(http, await _key(runtime, team, "li"), query)
    assert got == status and response.json()["extra"]["code"] == code, response.text


async def test_no_key_a_role_without_export_and_another_tenant_get_nothing(runtime: Runtime, team: Team, http: httpx.AsyncClient) -> None:
    from guanxi.core.services.pipelines import create_tenant

    await _data(runtime, team)
    assert (await _csv(http, None))[0] == 401
    marketing = await api_key(runtime, team.tenant_id, "marketing")
    assert (await _csv(http, marketing))[0] == 403
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    status, rows, response = await _csv(http, await api_key(runtime, beta, "admin"))
    assert status == 200 and rows == [] and "王芳" not in response.text


def test_cells_render_values_and_neutralise_formulas() -> None:
    users: dict[uuid.UUID, Any] = {}
    assert export._cell("+8613912345678", users) == "+8613912345678"
    assert export._cell("-3", users) == "-3"
    assert export._cell("@SUM(A1)", users) == "'@SUM(A1)"
    assert export._cell(["crm", "=1+1"], users) == "crm;'=1+1"
    assert export._cell(True, users) == "true" and export._cell(None, users) == ""
