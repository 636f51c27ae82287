"""Deal pipelines as editable data and an archivable catalogue, through GraphQL and the CLI: stages
added (with a probability), renamed, re-weighed, reordered, archived and deleted with the deals'
history intact; removing a stage that holds open deals is refused with their count unless a
target stage is given (then every open deal of the tenant moves, each move recorded); archived
products cannot go on new deals but stay on the deals that have them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from guanxi.cli import build_cli
from guanxi.core.runtime import Runtime
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales.deals.models import SalesDealMove
from guanxi.testing.sql import count_statements
from tests.plugins.sales.conftest import Team, new_customer
from tests.plugins.sales.test_deals import DEAL, MOVE, PRODUCT, deal_for

pytestmark = pytest.mark.plugins("sales")

PIPELINES = "{ dealPipelines { key name stages { key name probability category archived } archivedStages { key } } }"
PIPELINE = "pipeline { key name stages { key name probability category } archivedStages { key } } errors { code field message }"
ADD = f"""mutation($stage: DealStageInput!, $position: Int) {{ addDealStage(pipeline: "new-business", stage: $stage, position: $position) {{
  {PIPELINE} }} }}"""
UPDATE = f"""mutation($stage: String!, $name: String, $p: Int) {{ updateDealStage(pipeline: "new-business", stage: $stage, name: $name,
  probability: $p) {{ {PIPELINE} }} }}"""
REORDER = f"""mutation($keys: [String!]!) {{ reorderDealStages(pipeline: "new-business", keys: $keys) {{ {PIPELINE} }} }}"""
RENAME = f"""mutation($name: String!) {{ renameDealPipeline(pipeline: "new-business", name: $name) {{ {PIPELINE} }} }}"""
REMOVAL = "stage moved movedTo deleted archived pipeline { stages { key } archivedStages { key } } errors { code field message }"
ARCHIVE = f"""mutation($stage: String!, $to: String, $restore: Boolean) {{ archiveDealStage(pipeline: "new-business", stage: $stage,
  moveTo: $to, restore: $restore) {{ {REMOVAL} }} }}"""
DELETE = f"""mutation($stage: String!, $to: String) {{ deleteDealStage(pipeline: "new-business", stage: $stage, moveTo: $to) {{
  {REMOVAL} }} }}"""
ARCHIVE_PRODUCT = """mutation($id: ID!, $archived: Boolean) { archiveProduct(productId: $id, archived: $archived) {
  product { sku archived } errors { code field message } } }"""


def keys(pipeline: dict[str, Any]) -> list[str]:
    return [s["key"] for s in pipeline["stages"]]


async def test_stages_are_added_renamed_reweighed_and_reordered_and_deals_follow_the_new_probability(runtime: Runtime, team: Team) -> None:
    cid = await new_customer(runtime, team.tenant_id, "王芳", owner=team.users["li"])
    deal = await deal_for(team, "li", cid, amount=10000, stage="proposal")
    added = (await team.call["mia"](ADD, {"stage": {"key": "demo", "name": "Demo 演示", "probability": 25}, "position": 1}))["data"]
    assert keys(added["addDealStage"]["pipeline"]) == ["qualify", "demo", "proposal", "negotiation", "won", "lost"]
    updated = (await team.call["mia"](UPDATE, {"stage": "proposal", "name": "Quote 报价", "p": 50}))["data"]["updateDealStage"]
    assert {"key": "proposal", "name": "Quote 报价", "probability": 50, "category": "OPEN"} in updated["pipeline"]["stages"]
    order = ["demo", "qualify", "proposal", "negotiation", "won", "lost"]
    assert keys((await team.call["mia"](REORDER, {"keys": order}))["data"]["reorderDealStages"]["pipeline"]) == order
    renamed = (await team.call["mia"](RENAME, {"name": "新业务"}))["data"]["renameDealPipeline"]["pipeline"]
    assert renamed["name"] == "新业务"
    value = (await team.call["li"]("{ pipelineValue { weighted stages { key } } }"))["data"]["pipelineValue"]
    assert value["weighted"] == 5000 and [s["key"] for s in value["stages"]] == ["demo", "qualify", "proposal", "negotiation"]
    listed = (await team.call["li"]("{ deals { id stage { key name probability } } }"))["data"]["deals"]
    assert listed == [{"id": deal["id"], "stage": {"key": "proposal", "name": "Quote 报价", "probability": 50}}]


@pytest.mark.parametrize(
    ("query", "variables", "code", "field"),
    [
        (ADD, {"stage": {"key": "Bad Key", "name": "x", "probability": 5}}, "VALIDATION", "key"),
        (ADD, {"stage": {"key": "qualify", "name": "x", "probability": 5}}, "CONFLICT", "key"),
        (ADD, {"stage": {"key": "x", "name": "x", "probability": 101}}, "VALIDATION", "probability"),
        (UPDATE, {"stage": "nope", "name": "x"}, "NOT_FOUND", "stage"),
        (UPDATE, {"stage": "qualify", "p": -1}, "VALIDATION", "probability"),
        (UPDATE, {"stage": "qualify", "name": " "}, "VALIDATION", "name"),
        (REORDER, {"keys": ["qualify", "won"]}, "VALIDATION", "keys"),
        (ARCHIVE, {"stage": "won"}, "VALIDATION", "stage"),
        (DELETE, {"stage": "lost"}, "VALIDATION", "stage"),
        (ARCHIVE, {"stage": "nope"}, "NOT_FOUND", "stage"),
    ],
)
async def test_bad_stage_edits_answer_a_clear_error_code(
    runtime: Runtime, team: Team, query: str, variables: dict[str, Any], code: str, field: str
) -> None:
    await team.call["mia"]("{ dealPipelines { key } }")
    cid = await new_customer(runtime, team.tenant_id, "x", owner=team.users["li"])
    await deal_for(team, "li", cid)  # makes the default pipeline
    body = await team.call["mia"](query, variables)
    (payload,) = body["data"].values()
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)], body
    missing = await team.call["mia"](query.replace('pipeline: "new-business"', 'pipeline: "nope"'), variables)
    (payload,) = missing["data"].values()
    assert payload["errors"][0]["code"] == "NOT_FOUND"


async def test_a_stage_holding_open_deals_is_archived_only_with_a_target_and_every_deal_moves_with_its_history(
    runtime: Runtime, team: Team
) -> None:
    """The count and the move cover every open deal of the tenant, not only those the manager
    sees; each moved deal gets a move (from the archived stage) on its history, in a constant
    number of statements."""
    deals = []
    for i, owner in enumerate(("li", "wu", "li")):
        cid = await new_customer(runtime, team.tenant_id, f"c{i}", owner=team.users[owner])
        deals.append(await deal_for(team, owner, cid, amount=1000, stage="proposal"))
    await team.call["li"](MOVE, {"id": deals[2]["id"], "stage": "won"})
    refused = (await team.call["mia"](ARCHIVE, {"stage": "proposal"}))["data"]["archiveDealStage"]
    assert refused["errors"][0]["code"] == "CONFLICT" and "holds 2 open deals" in refused["errors"][0]["message"]
    bad = (await team.call["mia"](ARCHIVE, {"stage": "proposal", "to": "won"}))["data"]["archiveDealStage"]["errors"][0]
    assert (bad["code"], bad["field"]) == ("VALIDATION", "moveTo")
    with count_statements(runtime.engine) as seen:
        done = (await team.call["mia"](ARCHIVE, {"stage": "proposal", "to": "qualify"}))["data"]["archiveDealStage"]
    assert done["errors"] == [] and (done["moved"], done["movedTo"], done["archived"], done["deleted"]) == (2, "qualify", True, False)
    assert done["pipeline"]["archivedStages"] == [{"key": "proposal"}] and "proposal" not in keys(done["pipeline"])
    # one insert of the moves, one update of the deals: no statement per deal
    assert len([s for s in seen if s.startswith("INSERT INTO sales_deal_moves")]) == 1, seen
    assert len([s for s in seen if s.startswith("UPDATE sales_deals ")]) == 1, seen
    for deal, owner in ((deals[0], "li"), (deals[1], "wu")):
        (row,) = (await team.call[owner]("{ deals(status: OPEN) { id stage { key } } }"))["data"]["deals"]
        assert row == {"id": deal["id"], "stage": {"key": "qualify"}}
    won = (await team.call["li"]("{ deals(status: WON) { stage { key } } }"))["data"]["deals"]
    assert won == [{"stage": {"key": "won"}}]
    async with runtime.session(team.tenant_id) as s:
        history = (await s.execute(select(func.count()).select_from(SalesDealMove))).scalar_one()
    assert history == 3 + 1 + 2  # the three creations, the win, the two moves out of the archived stage
    entering = (await team.call["li"](MOVE, {"id": deals[0]["id"], "stage": "proposal"}))["data"]["moveDeal"]["errors"][0]
    assert (entering["code"], entering["field"]) == ("CONFLICT", "stage")
    cid = await new_customer(runtime, team.tenant_id, "new", owner=team.users["li"])
    new = await team.call["li"](DEAL, {"input": {"customerId": cid, "title": "x", "stage": "proposal"}})
    assert new["data"]["createDeal"]["errors"][0]["code"] == "NOT_FOUND"
    restored = (await team.call["mia"](ARCHIVE, {"stage": "proposal", "restore": True}))["data"]["archiveDealStage"]
    assert keys(restored["pipeline"])[-1] == "proposal" and restored["pipeline"]["archivedStages"] == []


async def test_deleting_a_stage_removes_it_only_when_nothing_names_it(runtime: Runtime, team: Team) -> None:
    cid = await new_customer(runtime, team.tenant_id, "x", owner=team.users["li"])
    deal = await deal_for(team, "li", cid, stage="negotiation")
    await team.call["mia"](ADD, {"stage": {"key": "unused", "name": "Unused", "probability": 5}})
    gone = (await team.call["mia"](DELETE, {"stage": "unused"}))["data"]["deleteDealStage"]
    assert (gone["deleted"], gone["archived"]) == (True, False) and "unused" not in keys(gone["pipeline"])
    refused = (await team.call["mia"](DELETE, {"stage": "negotiation"}))["data"]["deleteDealStage"]["errors"][0]
    assert refused["code"] == "CONFLICT" and "holds 1 open deals" in refused["message"]
    kept = (await team.call["mia"](DELETE, {"stage": "negotiation", "to": "qualify"}))["data"]["deleteDealStage"]
    assert (kept["deleted"], kept["archived"], kept["moved"]) == (False, True, 1)  # the deal's history names it
    (row,) = (await team.call["li"]("{ deals { id stage { key } } }"))["data"]["deals"]
    assert row == {"id": deal["id"], "stage": {"key": "qualify"}}


async def test_only_admins_and_managers_edit_deal_pipelines_and_products(runtime: Runtime, team: Team) -> None:
    for query, variables in (
        (ADD, {"stage": {"key": "x", "name": "x", "probability": 5}}),
        (UPDATE, {"stage": "qualify", "p": 5}),
        (REORDER, {"keys": []}),
        (RENAME, {"name": "x"}),
        (ARCHIVE, {"stage": "qualify"}),
        (DELETE, {"stage": "qualify"}),
        (ARCHIVE_PRODUCT, {"id": "UHJvZHVjdDox"}),
    ):
        body = await team.call["li"](query, variables)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


async def test_an_archived_product_stays_on_its_deals_but_cannot_go_on_new_ones(runtime: Runtime, team: Team) -> None:
    product = (await team.call["mia"](PRODUCT, {"input": {"sku": "erp", "name": "ERP", "price": 1000}}))["data"]["createProduct"]["product"]
    cid = await new_customer(runtime, team.tenant_id, "x", owner=team.users["li"])
    deal = await deal_for(team, "li", cid, lines=[{"productId": product["id"], "quantity": 3}])
    archived = (await team.call["mia"](ARCHIVE_PRODUCT, {"id": product["id"]}))["data"]["archiveProduct"]
    assert archived == {"product": {"sku": "erp", "archived": True}, "errors": []}
    assert (await team.call["li"]("{ products { sku } }"))["data"]["products"] == []
    everything = (await team.call["li"]("{ products(includeArchived: true) { sku archived } }"))["data"]["products"]
    assert everything == [{"sku": "erp", "archived": True}]
    refused = await team.call["li"](DEAL, {"input": {"customerId": cid, "title": "y", "lines": [{"productId": product["id"]}]}})
    error = refused["data"]["createDeal"]["errors"][0]
    assert (error["code"], error["field"]) == ("CONFLICT", "lines.productId") and "'erp' is archived" in error["message"]
    (kept,) = (await team.call["li"]("{ deals { id amount lines { product { sku archived } quantity } } }"))["data"]["deals"]
    assert kept == {"id": deal["id"], "amount": 3000, "lines": [{"product": {"sku": "erp", "archived": True}, "quantity": 3}]}
    won = (await team.call["li"](MOVE, {"id": deal["id"], "stage": "won"}))["data"]["moveDeal"]["deal"]
    assert won["status"] == "WON"  # a deal with an archived product still closes (and counts in reports)
    unknown = (await team.call["mia"](ARCHIVE_PRODUCT, {"id": deal["id"]}))["data"]["archiveProduct"]["errors"][0]
    assert unknown["code"] == "BAD_ID"
    back = (await team.call["mia"](ARCHIVE_PRODUCT, {"id": product["id"], "archived": False}))["data"]["archiveProduct"]["product"]
    assert back == {"sku": "erp", "archived": False}
    assert from_global_id(product["id"], "Product")
    await deal_for(team, "li", cid, lines=[{"productId": product["id"]}])


def test_cli_edits_deal_pipelines_and_archives_products(tmp_path: Path) -> None:
    """`guanxi sales deal-pipelines …` and `guanxi sales products archive`: the GraphQL mutations'
    twins; an error (open deals, an unknown stage) stops the command with the reason."""
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "GUANXI_PLUGINS": "sales"})

    def invoke(*args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(build_cli(rt), [*args], obj=rt)
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    invoke("db", "upgrade")
    invoke("demo", "--customers", "30")
    sales = ("sales", "deal-pipelines")
    assert "new-business: New business 新业务" in invoke(*sales, "list", "--tenant", "demo")
    assert "stage demo added at 1" in invoke(*sales, "add-stage", "new-business", "demo", "Demo", "--probability", "20", "--position", "1",
                                              "--tenant", "demo")  # fmt: skip
    assert "stage demo: 'Live demo', 30%" in invoke(
        *sales, "update-stage", "new-business", "demo", "--name", "Live demo", "--probability", "30", "--tenant", "demo"
    )
    order = ("qualify", "proposal", "demo", "negotiation", "won", "lost")
    assert " → ".join(order) in invoke(*sales, "reorder", "new-business", *order, "--tenant", "demo")
    assert "holds" in invoke(*sales, "archive-stage", "new-business", "proposal", "--tenant", "demo", ok=False)
    out = invoke(*sales, "archive-stage", "new-business", "proposal", "--move-to", "demo", "--tenant", "demo")
    assert "stage proposal archived;" in out and "open deals moved to demo" in out
    assert "stage demo deleted" not in invoke(*sales, "delete-stage", "new-business", "nope", "--tenant", "demo", ok=False)
    listed = invoke(*sales, "list", "--archived", "--tenant", "demo")
    assert "proposal [open] 40% Proposal 方案报价 (archived)" in listed and "1. demo [open] 30% Live demo" in listed
    assert "deal pipeline new-business is now '新业务'" in invoke(*sales, "rename", "new-business", "新业务", "--tenant", "demo")
    assert "product crm-std archived" in invoke("sales", "products", "archive", "crm-std", "--tenant", "demo")
    assert "product crm-std restored" in invoke("sales", "products", "archive", "crm-std", "--restore", "--tenant", "demo")
    assert "no product 'nope'" in invoke("sales", "products", "archive", "nope", "--tenant", "demo", ok=False)
