"""The GraphQL guide cannot fall behind the schema.

Every ```graphql block of ``docs/graphql.md`` must parse and validate against the schema built
with core only, and a few of them are run for real over HTTP against a seeded tenant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import graphql
import pytest

from guanxi.core.runtime import Runtime
from guanxi.graphql.schema import build_schema
from tests.graphql import conftest as graphql_fixtures
from tests.graphql.conftest import GQL

# The HTTP fixtures of tests/graphql/, made available to this module's tests.
gql = graphql_fixtures.gql

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "graphql.md"
BLOCK = re.compile(r"^```graphql\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def graphql_blocks() -> list[str]:
    return [m.group("body") for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]


def operation_name(text: str) -> str:
    match = re.match(r"\s*(?:query|mutation|subscription)\s+(\w+)", text)
    return match.group(1) if match else text.strip().splitlines()[0][:40]


def documented(name: str) -> str:
    """The documented operation with this name."""
    (found,) = [b for b in graphql_blocks() if operation_name(b) == name]
    return found


@pytest.fixture(scope="module")
def core_schema() -> graphql.GraphQLSchema:
    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": ""})
    return build_schema(runtime)._schema


def test_the_guide_has_graphql_examples_with_unique_operation_names() -> None:
    names = [operation_name(b) for b in graphql_blocks()]
    assert len(names) >= 10
    assert len(names) == len(set(names)), f"operation names used twice: {sorted(n for n in names if names.count(n) > 1)}"


@pytest.mark.parametrize("text", graphql_blocks(), ids=operation_name)
def test_documented_operation_is_valid_against_the_core_schema(text: str, core_schema: graphql.GraphQLSchema) -> None:
    errors = graphql.validate(core_schema, graphql.parse(text))
    assert not errors, [e.message for e in errors]


def test_every_core_query_and_mutation_field_has_a_documented_example(core_schema: graphql.GraphQLSchema) -> None:
    used: set[tuple[str, str]] = set()
    for text in graphql_blocks():
        document = graphql.parse(text)
        for op in document.definitions:
            assert isinstance(op, graphql.OperationDefinitionNode)
            root = "Mutation" if op.operation == graphql.OperationType.MUTATION else "Query"
            used |= {(root, sel.name.value) for sel in op.selection_set.selections if isinstance(sel, graphql.FieldNode)}
    expected = {(root, name) for root in ("Query", "Mutation") for name in core_schema.get_type(root).fields}  # type: ignore[union-attr]
    assert expected - used == set(), f"fields without an example in {GUIDE.name}"


async def run(gql: GQL, name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = (await gql(documented(name), variables))["data"]
    return data


async def test_documented_mutations_create_a_customer_that_the_documented_detail_query_shows(gql: GQL) -> None:
    created = (
        await run(
            gql,
            "CreateCustomer",
            {
                "input": {
                    "displayName": "王芳",
                    "company": "星辰教育",
                    "phones": ["+86 138 0000 0001"],
                    "emails": ["wang.fang@example.com"],
                    "attributes": {"city": "上海"},
                    "source": "trade_show",
                    "tags": ["vip", "行业/教育"],
                }
            },
        )
    )["createCustomer"]
    assert created["errors"] == []
    cid = created["customer"]["id"]
    assert created["customer"]["phones"] == ["+8613800000001"]
    assert created["customer"]["stage"] == {"key": "lead"}

    moved = (await run(gql, "MoveStage", {"id": cid, "stage": "sql", "reason": "asked for a quote"}))["moveCustomerStage"]
    assert moved["errors"] == [] and moved["customer"]["stage"]["key"] == "sql"
    tagged = (await run(gql, "TagCustomer", {"id": cid, "add": ["渠道/展会"], "remove": ["vip"]}))["tagCustomer"]
    assert sorted(t["label"] for t in tagged["customer"]["tags"]) == ["渠道/展会", "行业/教育"]
    attached = await run(
        gql, "AttachIdentity", {"customerId": cid, "input": {"channel": "wecom", "externalId": "wmABC123", "nickname": "芳芳"}}
    )
    assert attached["attachIdentity"]["errors"] == []
    record = {
        "customerId": cid,
        "channel": "wecom",
        "kind": "message_in",
        "text": "请发一下报价",
        "occurredAt": "2026-03-02T09:30:00+08:00",
        "dedupeKey": "wecom:msg:8842",
    }
    assert (await run(gql, "RecordInteraction", {"input": record}))["recordInteraction"]["created"] is True
    assert (await run(gql, "RecordInteraction", {"input": record}))["recordInteraction"]["created"] is False

    detail = (await run(gql, "CustomerDetail", {"id": cid}))["customer"]
    assert detail["id"] == cid
    assert detail["attributes"] == {"city": "上海"}
    assert detail["stage"]["key"] == "sql"
    assert [(h["fromStage"], h["toStage"]["key"], h["reason"]) for h in detail["stageHistory"]] == [
        (None, "lead", "created"),
        ({"key": "lead"}, "sql", "asked for a quote"),
    ]
    assert detail["wecom"] == [{"externalId": "wmABC123", "nickname": "芳芳"}]
    assert [e["node"]["text"] for e in detail["interactions"]["edges"]] == ["请发一下报价"]


async def test_documented_filter_query_and_merged_id_resolving_to_the_survivor(gql: GQL) -> None:
    ids = []
    for name, tags in (("Alice Chen", ["vip"]), ("Bob Li", ["vip"]), ("Carol Wu", [])):
        payload = (await run(gql, "CreateCustomer", {"input": {"displayName": name, "tags": tags}}))["createCustomer"]
        ids.append(payload["customer"]["id"])
    await run(gql, "MoveStage", {"id": ids[0], "stage": "sql"})
    search = {"filter": {"tagsAny": ["vip"], "stages": ["sql"]}, "orderBy": "NAME_ASC", "first": 20}
    page = (await run(gql, "CustomerSearch", search))["customers"]
    assert page["totalCount"] == 1
    assert [e["node"]["displayName"] for e in page["edges"]] == ["Alice Chen"]

    merged = (await run(gql, "MergeCustomers", {"survivorId": ids[0], "mergedId": ids[1], "dryRun": False}))["mergeCustomers"]
    assert merged["errors"] == [] and merged["customer"]["id"] == ids[0]
    assert (await run(gql, "CustomerById", {"id": ids[1]}))["customer"] == {"id": ids[0], "displayName": "Alice Chen"}
    assert (await run(gql, "CustomerPage", {"first": 10}))["customers"]["totalCount"] == 2


async def test_documented_funnel_reports_current_reached_and_conversion(gql: GQL) -> None:
    ids = [(await run(gql, "CreateCustomer", {"input": {"displayName": f"F{i}"}}))["createCustomer"]["customer"]["id"] for i in range(4)]
    for cid in ids[:2]:
        await run(gql, "MoveStage", {"id": cid, "stage": "mql"})
    funnel = (await run(gql, "Funnel"))["funnel"]
    assert funnel["pipeline"]["key"] == "default"
    by = {s["stage"]["key"]: s for s in funnel["steps"]}
    assert (by["lead"]["current"], by["lead"]["reached"], by["lead"]["conversionFromPrevious"]) == (2, 4, None)
    assert (by["mql"]["current"], by["mql"]["reached"], by["mql"]["conversionFromPrevious"]) == (2, 2, 0.5)
    assert by["sql"]["conversionFromPrevious"] == 0.0
    assert by["lost"]["conversionFromPrevious"] is None


async def test_documented_attribute_merge_patch_gives_the_documented_result(gql: GQL) -> None:
    start = {"grade": "A", "city": "上海", "prefs": {"lang": "zh", "tz": "Asia/Shanghai"}}
    created = (await run(gql, "CreateCustomer", {"input": {"displayName": "王芳", "attributes": start}}))["createCustomer"]
    patched = await gql(documented("PatchAttributes"), {"id": created["customer"]["id"]})
    assert patched == {"data": {"updateCustomer": {"customer": {"attributes": {"grade": "B", "prefs": {"lang": "zh"}}}, "errors": []}}}


async def test_documented_node_queries_and_backward_paging_answer_as_described(gql: GQL) -> None:
    ids = []
    for name in ("Ann", "Bo", "Cy"):
        ids.append((await run(gql, "CreateCustomer", {"input": {"displayName": name}}))["createCustomer"]["customer"]["id"])
    assert (await run(gql, "NodeById", {"id": ids[0]}))["node"] == {"__typename": "Customer", "id": ids[0], "displayName": "Ann"}
    unknown = "Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"
    assert (await run(gql, "NodesByIds", {"ids": [ids[1], unknown]}))["nodes"] == [{"__typename": "Customer", "id": ids[1]}, None]
    last = (await run(gql, "CustomerPageBackward", {"last": 2}))["customers"]
    assert [e["node"]["displayName"] for e in last["edges"]] == ["Bo", "Cy"] and last["pageInfo"]["hasPreviousPage"] is True
    before = (await run(gql, "CustomerPageBackward", {"last": 2, "before": last["pageInfo"]["startCursor"]}))["customers"]
    assert [e["node"]["displayName"] for e in before["edges"]] == ["Ann"] and before["pageInfo"]["hasPreviousPage"] is False


async def test_documented_pipeline_operations_shape_stages_and_move_customers_between_pipelines(gql: GQL) -> None:
    """The guide's pipeline examples, run in order: create a pipeline with an arrival rule, place
    a customer by source, add, rename, reorder stages, refuse removing a stage that holds
    customers (with the count), remove it into a target, archive and move across pipelines."""
    pipeline_input = {
        "key": "renewal",
        "name": "Renewal",
        "sources": ["contract_end"],
        "stages": [
            {"key": "due", "name": "Renewal due"},
            {"key": "renewed", "name": "Renewed", "category": "WON"},
            {"key": "lapsed", "name": "Lapsed", "category": "LOST"},
        ],
    }
    created = (await run(gql, "CreatePipeline", {"input": pipeline_input}))["createPipeline"]
    assert created["errors"] == [] and [s["key"] for s in created["pipeline"]["stages"]] == ["due", "renewed", "lapsed"]
    placed = (await run(gql, "CreateCustomer", {"input": {"displayName": "续约客户", "source": "contract_end"}}))["createCustomer"]
    assert placed["customer"]["stage"] == {"key": "due"}
    updated = (await run(gql, "UpdatePipeline", {"key": "renewal", "input": {"name": "Renewals"}}))["updatePipeline"]
    assert updated["pipeline"]["name"] == "Renewals" and updated["pipeline"]["sources"] == ["contract_end"]
    stage = await run(gql, "CreateStage", {"pipeline": "renewal", "input": {"key": "quoted", "name": "Quoted"}, "position": 1})
    assert stage["createStage"]["stage"] == {"key": "quoted", "name": "Quoted", "position": 1, "category": "OPEN"}
    renamed = (await run(gql, "UpdateStage", {"pipeline": "renewal", "stage": "quoted", "name": "Quote sent"}))["updateStage"]
    assert renamed["stage"] == {"key": "quoted", "name": "Quote sent"}
    order = ["quoted", "due", "renewed", "lapsed"]
    reordered = (await run(gql, "ReorderStages", {"pipeline": "renewal", "keys": order}))["reorderStages"]
    assert [s["key"] for s in reordered["pipeline"]["stages"]] == order
    refused = (await run(gql, "DeleteStage", {"pipeline": "renewal", "stage": "due"}))["deleteStage"]
    assert refused["errors"][0]["code"] == "CONFLICT" and "holds 1 customers" in refused["errors"][0]["message"]
    done = (await run(gql, "DeleteStage", {"pipeline": "renewal", "stage": "due", "moveTo": "quoted"}))["deleteStage"]
    assert done["result"] == {"stage": "due", "moved": 1, "movedTo": "quoted", "deleted": False, "archived": True}
    archived = (await run(gql, "ArchiveStage", {"pipeline": "default", "stage": "churned"}))["archiveStage"]
    assert archived["result"]["archived"] is True
    other = (await run(gql, "CreateCustomer", {"input": {"displayName": "新客户"}}))["createCustomer"]["customer"]
    across = {"id": other["id"], "stage": "renewed", "pipeline": "renewal", "reason": "signed last year"}
    moved = (await run(gql, "MoveStage", across))["moveCustomerStage"]
    assert moved["errors"] == [] and moved["customer"]["stage"]["key"] == "renewed"
    wrong = (await run(gql, "MoveStage", {"id": other["id"], "stage": "nope"}))["moveCustomerStage"]["errors"][0]
    assert wrong["message"] == "unknown stage 'nope' in pipeline 'renewal' (stages: quoted, renewed, lapsed)"
