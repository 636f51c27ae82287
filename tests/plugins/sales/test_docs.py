"""docs/plugins/sales.md cannot fall behind the schema: every GraphQL example validates with the
plugin enabled, and the deals, contracts and reports examples run for real, in order, on one
tenant (a product, a deal, won, a contract, a payment, the lists and both reports), as does the
handover example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import graphql
import pytest

from guanxi.core.runtime import Runtime
from guanxi.graphql.schema import build_schema
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales")
DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "sales.md"
BLOCKS = re.findall(r"^```graphql\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
OPERATIONS = {m.group(1): m.group(0) for b in BLOCKS for m in re.finditer(r"^(?:query|mutation) (\w+).*?^}$", b, re.MULTILINE | re.DOTALL)}


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "sales"})
    return build_schema(runtime)._schema


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split("{")[0].strip()[:40])
def test_each_graphql_example_validates_against_the_schema(block: str, schema: graphql.GraphQLSchema) -> None:
    errors = graphql.validate(schema, graphql.parse(block))
    assert not errors, [e.message for e in errors]


async def test_the_deals_contracts_and_reports_examples_run(runtime: Runtime, team: Team) -> None:
    async def run(name: str, **variables: Any) -> dict[str, Any]:
        body = await team.call["admin"](OPERATIONS[name], variables)
        assert "errors" not in body, body
        for payload in body["data"].values():
            if isinstance(payload, dict) and "errors" in payload:
                assert payload["errors"] == [], body
        data: dict[str, Any] = body["data"]
        return data

    product = (await run("CreateProduct"))["createProduct"]["product"]
    customer = await new_customer(runtime, team.tenant_id, "王芳", owner=team.users["li"])
    deal = (await run("CreateDeal", customerId=customer, productId=product["id"]))["createDeal"]["deal"]
    assert deal["amount"] == 72000
    assert (await run("WinDeal", dealId=deal["id"]))["moveDeal"]["deal"]["status"] == "WON"
    contract = (await run("CreateContract", dealId=deal["id"]))["createContract"]["contract"]
    paid = (await run("RecordPayment", instalmentId=contract["instalments"][0]["id"]))["recordPayment"]["contract"]
    assert paid["received"] == 20000
    listed = await run("Deals")
    assert listed["deals"] == [] and listed["pipelineValue"]["deals"] == 0  # the deal is won
    assert [c["received"] for c in (await run("Contracts"))["contracts"]] == [20000]
    await run("Funnel")
    await run("Performance")
    await run("CustomerReports")
    assert {"Duplicates", "CreatePool", "EastPool"} <= set(OPERATIONS)
    other = await new_customer(runtime, team.tenant_id, "李雷", owner=team.users["li"])
    open_deal = 'mutation($c: ID!) { createDeal(input: {customerId: $c, title: "x", stage: "proposal"}) { errors { code } } }'
    assert (await team.call["li"](open_deal, {"c": other}))["data"]["createDeal"]["errors"] == []
    stages = (await run("AddDealStage"))["addDealStage"]["pipeline"]["stages"]
    assert [s["key"] for s in stages] == ["qualify", "demo", "proposal", "negotiation", "won", "lost"]
    archived = (await run("ArchiveDealStage"))["archiveDealStage"]
    assert (archived["moved"], archived["movedTo"], archived["pipeline"]["archivedStages"]) == (1, "demo", [{"key": "proposal"}])
    assert (await run("ArchiveProduct", productId=product["id"]))["archiveProduct"]["product"]["archived"] is True


async def test_the_documented_handover_runs(runtime: Runtime, team: Team) -> None:
    (operation,) = [b for b in BLOCKS if "handOverCustomers" in b]
    await new_customer(runtime, team.tenant_id, "A", owner=team.users["li"])
    body = await team.call["admin"](operation, {"input": {"fromUserId": team.gid("li"), "toUserId": team.gid("wu"), "reason": "离职"}})
    assert body["data"]["handOverCustomers"] == {
        "result": {"customers": 1, "tasks": 0, "poolHolds": 0, "plugins": {"sales": {"open_deals": 0}}},
        "errors": [],
    }


async def test_the_documented_follow_up_plan_runs(runtime: Runtime, team: Team) -> None:
    import datetime as dt

    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import fields
    from guanxi.graphql.ids import from_global_id
    from guanxi.plugins.sales import followups

    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B"]))
    customer = await new_customer(runtime, team.tenant_id, "王芳", owner=team.users["li"])
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.set_customer_fields(tx, from_global_id(customer, "Customer"), {"grade": "A"})
    made = await team.call["mia"](OPERATIONS["CreateFollowUpPlan"])
    assert made["data"]["createFollowUpPlan"]["errors"] == [], made
    assert made["data"]["createFollowUpPlan"]["plan"]["filter"] == {"fields": [{"field": "grade", "eq": "A"}]}
    listed = await team.call["li"](OPERATIONS["FollowUpPlans"])
    assert [p["key"] for p in listed["data"]["followUpPlans"]] == ["a-monthly"]
    assert await followups.run_plans(runtime, team.tenant_id, dt.datetime.now(dt.UTC)) == 1
    tasks = await team.call["li"]("{ myTasks { title } }")
    assert tasks["data"]["myTasks"] == [{"title": "月度回访"}]
    changed = (await team.call["mia"](OPERATIONS["ChangeFollowUpPlan"]))["data"]["updateFollowUpPlan"]
    assert changed["errors"] == [] and (changed["plan"]["everyDays"], changed["plan"]["taskTitle"]) == (14, "双周回访")
    paused = await team.call["mia"](OPERATIONS["PauseFollowUpPlan"])
    assert paused["data"]["pauseFollowUpPlan"] == {"plan": {"key": "a-monthly", "active": False}, "errors": []}
    assert await followups.run_plans(runtime, team.tenant_id, dt.datetime.now(dt.UTC) + dt.timedelta(days=15)) == 0
    resumed = await team.call["mia"](OPERATIONS["ResumeFollowUpPlan"])
    assert resumed["data"]["resumeFollowUpPlan"] == {"plan": {"key": "a-monthly", "active": True}, "errors": []}
    assert await followups.run_plans(runtime, team.tenant_id, dt.datetime.now(dt.UTC) + dt.timedelta(days=15)) == 1


async def test_the_documented_pool_runs(team: Team) -> None:
    made = await team.call["admin"](OPERATIONS["CreatePool"])
    assert made["data"]["createLeadPool"] == {
        "pool": {
            "key": "east",
            "name": "华东公海",
            "holdLimit": 30,
            "returnAfterDays": 15,
            "claimRoles": ["sales"],
            "claimTeams": ["east"],
            "dailyClaimLimits": [{"role": "sales", "limit": 20}],
        },
        "errors": [],
    }
    changed = await team.call["mia"](OPERATIONS["ChangePool"])
    assert changed["data"]["updateLeadPool"] == {
        "pool": {
            "key": "east",
            "holdLimit": 20,
            "returnAfterDays": 10,
            "claimTeams": ["east", "north"],
            "dailyClaimLimits": [{"role": "sales", "limit": 10}],
        },
        "errors": [],
    }


async def test_the_documented_csv_export_runs(runtime: Runtime, team: Team, http: Any) -> None:
    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import fields
    from guanxi.graphql.ids import from_global_id
    from guanxi.testing.plugin import api_key

    (block,) = re.findall(r"^```http\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    path = block.splitlines()[0].split()[1]
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B"]))
    a = await new_customer(runtime, team.tenant_id, "王芳", owner=team.users["li"])
    await new_customer(runtime, team.tenant_id, "B", owner=team.users["li"])
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.set_customer_fields(tx, from_global_id(a, "Customer"), {"grade": "A"})
    key = await api_key(runtime, team.tenant_id, "sales", user_id=team.users["li"])
    response = await http.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    assert len(lines) == 2 and lines[1].startswith(a) and lines[0].endswith(",grade")


async def test_the_documented_export_command_runs(runtime: Runtime, team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``console`` example of the CSV export, run through the CLI as a salesperson's key."""
    import shlex

    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import fields
    from guanxi.graphql.ids import from_global_id
    from guanxi.testing.plugin import api_key
    from tests.plugins.sales.test_export_cli import cli_runtime, invoke, rows_of

    (block,) = re.findall(r"^```console\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    key = await api_key(runtime, team.tenant_id, "sales", user_id=team.users["li"])
    words = shlex.split(block.removeprefix("$ ").replace("\\\n", " ").replace('"$LI_KEY"', key))
    assert words[:3] == ["guanxi", "sales", "export-customers"]
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B"]))
    a = await new_customer(runtime, team.tenant_id, "王芳", owner=team.users["li"])
    await new_customer(runtime, team.tenant_id, "B", owner=team.users["li"])  # no grade
    w = await new_customer(runtime, team.tenant_id, "Wu's", owner=team.users["wu"])
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.set_customer_fields(tx, from_global_id(a, "Customer"), {"grade": "A"})
        await fields.set_customer_fields(tx, from_global_id(w, "Customer"), {"grade": "A"})
    monkeypatch.chdir(tmp_path)
    result = await invoke(cli_runtime(runtime), *words[3:])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in rows_of((tmp_path / "grade-a.csv").read_text(encoding="utf-8"))] == [a]  # not wu's


async def test_the_documented_return_rules_run(team: Team) -> None:
    """The rules the doc lists are offered, and the documented pool applies two of them."""
    offered = await team.call["mia"](OPERATIONS["PoolReturnRules"])
    assert [r["key"] for r in offered["data"]["poolReturnRules"]] == ["sales.contract_lapsed", "sales.no_won_deal"]
    made = await team.call["mia"](OPERATIONS["CreateInquiryPool"])
    assert made["data"]["createLeadPool"] == {
        "pool": {
            "key": "inquiries",
            "returnAfterDays": 15,
            "returnRules": [
                {
                    "rule": "sales.contract_lapsed",
                    "value": 30,
                    "unit": "DAYS",
                    "text": "30 days after the last contract ended without a new one",
                },
                {"rule": "sales.no_won_deal", "value": 3, "unit": "MONTHS", "text": "no won deal 3 months after the first inquiry"},
            ],
        },
        "errors": [],
    }


async def test_the_documented_grade_rule_runs(runtime: Runtime, team: Team) -> None:
    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import fields

    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B", "C"]))
    made = await team.call["mia"](OPERATIONS["SetGradeRule"])
    assert made["data"]["setGradeRule"]["errors"] == [], made
    read = await team.call["li"](OPERATIONS["GradeRule"])
    assert read["data"]["gradeRule"] == {
        "field": "grade",
        "bands": [{"grade": "A", "minScore": 70.0}, {"grade": "B", "minScore": 40.0}],
        "otherwise": "C",
    }
