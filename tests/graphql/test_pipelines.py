"""Pipelines and stages as tenant data through GraphQL: several pipelines, an arrival rule by
source or channel, moves between pipelines with history, stages created, renamed, reordered,
archived and deleted (history intact; a stage holding customers refused with the count or
emptied into a target), the funnel per pipeline, admins only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import AuditEvent, Stage, StageChange
from guanxi.core.runtime import Runtime
from guanxi.core.services import identities, users
from guanxi.core.services.identities import IdentityInput
from guanxi.testing.plugin import api_key
from guanxi.testing.sql import count_statements
from tests.graphql.conftest import GQL

CREATE_PIPELINE = """mutation($input: CreatePipelineInput!) { createPipeline(input: $input) {
  pipeline { key name isDefault sources stages { key name position category archived } archivedStages { key } }
  errors { code field message } } }"""
CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id stage { key } } errors { code field message } } }"""
MOVE = """mutation($id: ID!, $stage: String!, $pipeline: String) { moveCustomerStage(id: $id, stage: $stage, pipeline: $pipeline) {
  customer { stage { key } stageHistory { fromStage { key } toStage { key } reason } } errors { code field message } } }"""
REMOVAL = "result { stage moved movedTo deleted archived } errors { code field message }"
RENEWAL = {
    "key": "renewal",
    "name": "Renewal",
    "sources": ["contract_end"],
    "stages": [
        {"key": "due", "name": "Renewal due"},
        {"key": "quoted", "name": "Quoted"},
        {"key": "renewed", "name": "Renewed", "category": "WON"},
        {"key": "lapsed", "name": "Lapsed", "category": "LOST"},
    ],
}


async def _pipeline(gql: GQL, data: dict[str, Any]) -> dict[str, Any]:
    body = await gql(CREATE_PIPELINE, {"input": data})
    payload = body["data"]["createPipeline"]
    assert payload["errors"] == [], payload
    return dict(payload["pipeline"])


async def _customer(gql: GQL, name: str, **extra: Any) -> tuple[str, str]:
    body = await gql(CREATE, {"input": {"displayName": name, **extra}})
    payload = body["data"]["createCustomer"]
    assert payload["errors"] == [], payload
    return str(payload["customer"]["id"]), str(payload["customer"]["stage"]["key"])


async def _pipelines(gql: GQL) -> dict[str, Any]:
    body = await gql("{ pipelines { key isDefault sources stages { key name position } archivedStages { key name } } }")
    return {p["key"]: p for p in body["data"]["pipelines"]}


async def test_several_pipelines_and_a_new_customer_starts_where_the_arrival_rule_says(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL
) -> None:
    created = await _pipeline(gql, RENEWAL)
    assert [s["key"] for s in created["stages"]] == ["due", "quoted", "renewed", "lapsed"]
    assert [s["category"] for s in created["stages"]] == ["OPEN", "OPEN", "WON", "LOST"]
    douyin = await _pipeline(gql, {"key": "douyin_leads", "name": "Douyin leads", "sources": ["douyin"]})
    assert [s["key"] for s in douyin["stages"]][:2] == ["lead", "mql"]  # a copy of the default lifecycle
    assert set(await _pipelines(gql)) == {"default", "renewal", "douyin_leads"}
    # by source
    _, stage = await _customer(gql, "Due soon", source="contract_end")
    assert stage == "due"
    # by channel: a customer a channel brings has the channel as its source
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        _, _, made = await identities.resolve_identity(tx, IdentityInput(channel="douyin", external_id="dy-1", nickname="Dou"))
    assert made
    listed = await gql('{ customers(filter: {pipelines: ["douyin_leads"]}) { totalCount edges { node { displayName stage { key } } } } }')
    assert listed["data"]["customers"]["totalCount"] == 1
    assert listed["data"]["customers"]["edges"][0]["node"] == {"displayName": "Dou", "stage": {"key": "lead"}}
    # no rule: the default pipeline; an explicit pipeline wins over the rule
    _, stage = await _customer(gql, "Walk-in", source="fair")
    assert stage == "lead"
    _, stage = await _customer(gql, "Chosen", source="fair", pipeline="renewal", stage="quoted")
    assert stage == "quoted"
    bad = await gql(CREATE, {"input": {"displayName": "X", "pipeline": "nope"}})
    assert bad["data"]["createCustomer"]["errors"][0]["field"] == "pipeline"
    bad = await gql(CREATE, {"input": {"displayName": "X", "pipeline": "renewal", "stage": "mql"}})
    assert bad["data"]["createCustomer"]["errors"][0]["code"] == "VALIDATION"
    counts = await gql('{ customers(filter: {pipelines: ["renewal"]}) { totalCount } }')
    assert counts["data"]["customers"]["totalCount"] == 2
    # a new default pipeline takes the customers no rule places
    made_default = await gql(
        'mutation { updatePipeline(key: "renewal", input: {isDefault: true}) { pipeline { isDefault } errors { code } } }'
    )
    assert made_default["data"]["updatePipeline"] == {"pipeline": {"isDefault": True}, "errors": []}
    _, stage = await _customer(gql, "Later walk-in")
    assert stage == "due"
    assert [k for k, p in (await _pipelines(gql)).items() if p["isDefault"]] == ["renewal"]


async def test_a_customer_moves_within_its_pipeline_and_to_another_with_history(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    await _pipeline(gql, RENEWAL)
    cid, _ = await _customer(gql, "Acme")
    # a stage key of the customer's own pipeline
    moved = (await gql(MOVE, {"id": cid, "stage": "sql"}))["data"]["moveCustomerStage"]
    assert moved["errors"] == [] and moved["customer"]["stage"] == {"key": "sql"}
    # a key the pipeline lacks is refused, naming the stages
    wrong = (await gql(MOVE, {"id": cid, "stage": "quoted"}))["data"]["moveCustomerStage"]["errors"][0]
    assert wrong["code"] == "VALIDATION" and "lead" in wrong["message"]
    # to another pipeline: it stands there now, and moves on there
    across = (await gql(MOVE, {"id": cid, "stage": "quoted", "pipeline": "renewal"}))["data"]["moveCustomerStage"]
    assert across["customer"]["stage"] == {"key": "quoted"}
    on = (await gql(MOVE, {"id": cid, "stage": "renewed"}))["data"]["moveCustomerStage"]
    history = [(h["fromStage"] and h["fromStage"]["key"], h["toStage"]["key"]) for h in on["customer"]["stageHistory"]]
    assert history == [(None, "lead"), ("lead", "sql"), ("sql", "quoted"), ("quoted", "renewed")]
    funnel = await gql('{ funnel(pipeline: "renewal") { pipeline { key } steps { stage { key } current reached } } }')
    steps = {s["stage"]["key"]: (s["current"], s["reached"]) for s in funnel["data"]["funnel"]["steps"]}
    assert steps == {"due": (0, 1), "quoted": (0, 1), "renewed": (1, 1), "lapsed": (0, 0)}
    default = await gql("{ funnel { pipeline { key } steps { stage { key } current reached } } }")
    assert default["data"]["funnel"]["pipeline"]["key"] == "default"
    by_key = {s["stage"]["key"]: (s["current"], s["reached"]) for s in default["data"]["funnel"]["steps"]}
    assert by_key["sql"] == (0, 1) and by_key["lead"] == (0, 1)


async def test_stages_are_added_renamed_and_reordered_with_their_history_intact(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    cid, _ = await _customer(gql, "Acme")
    await gql(MOVE, {"id": cid, "stage": "mql"})
    added = await gql(
        'mutation { createStage(pipeline: "default", input: {key: "demo", name: "Demo booked"}, position: 2) '
        "{ stage { key position } errors { code } } }"
    )
    assert added["data"]["createStage"] == {"stage": {"key": "demo", "position": 2}, "errors": []}
    renamed = await gql(
        'mutation { updateStage(pipeline: "default", stage: "mql", name: "Interested") { stage { key name } errors { code } } }'
    )
    assert renamed["data"]["updateStage"]["stage"] == {"key": "mql", "name": "Interested"}
    order = ["lead", "demo", "mql", "sql", "opportunity", "won", "lost", "retained", "churned"]
    reordered = await gql(
        'mutation($k: [String!]!) { reorderStages(pipeline: "default", keys: $k) '
        "{ pipeline { stages { key position } } errors { code } } }",
        {"k": order},
    )
    assert [s["key"] for s in reordered["data"]["reorderStages"]["pipeline"]["stages"]] == order
    assert [s["position"] for s in reordered["data"]["reorderStages"]["pipeline"]["stages"]] == list(range(len(order)))
    partial = await gql('mutation { reorderStages(pipeline: "default", keys: ["lead"]) { errors { code field } } }')
    assert partial["data"]["reorderStages"]["errors"] == [{"code": "VALIDATION", "field": "keys"}]
    for bad, code in [
        ('createStage(pipeline: "default", input: {key: "Demo", name: "x"}) { errors { code field } }', "VALIDATION"),
        ('createStage(pipeline: "default", input: {key: "demo", name: "x"}) { errors { code field } }', "CONFLICT"),
        ('createStage(pipeline: "nope", input: {key: "x", name: "x"}) { errors { code field } }', "VALIDATION"),
        ('updateStage(pipeline: "default", stage: "nope", name: "x") { errors { code field } }', "VALIDATION"),
    ]:
        body = await gql(f"mutation {{ {bad} }}")
        assert next(iter(body["data"].values()))["errors"][0]["code"] == code, (bad, body)
    # the history still reads the renamed stage by its new name
    body = await gql("query($id: ID!) { customer(id: $id) { stage { key name } stageHistory { toStage { key name } } } }", {"id": cid})
    assert body["data"]["customer"]["stage"] == {"key": "mql", "name": "Interested"}
    assert body["data"]["customer"]["stageHistory"][-1]["toStage"] == {"key": "mql", "name": "Interested"}
    async with runtime.session(tenant_id) as s:
        actions = set((await s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("stage.%")))).all())
    assert actions == {"stage.create", "stage.update", "stage.reorder"}


async def test_deleting_or_archiving_a_stage_that_holds_customers_needs_a_target_and_keeps_history(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL
) -> None:
    ids = [(await _customer(gql, f"C{i}"))[0] for i in range(3)]
    for cid in ids:
        await gql(MOVE, {"id": cid, "stage": "mql"})
    refused = await gql(f'mutation {{ deleteStage(pipeline: "default", stage: "mql") {{ {REMOVAL} }} }}')
    error = refused["data"]["deleteStage"]["errors"][0]
    assert error["code"] == "CONFLICT" and "3 customers" in error["message"]
    refused = await gql(f'mutation {{ archiveStage(pipeline: "default", stage: "mql") {{ {REMOVAL} }} }}')
    assert "3 customers" in refused["data"]["archiveStage"]["errors"][0]["message"]
    to_itself = await gql(f'mutation {{ deleteStage(pipeline: "default", stage: "mql", moveTo: "mql") {{ {REMOVAL} }} }}')
    assert to_itself["data"]["deleteStage"]["errors"][0]["field"] == "moveTo"
    # with a target: customers moved (on their history), the stage archived since history names it
    done = await gql(f'mutation {{ deleteStage(pipeline: "default", stage: "mql", moveTo: "sql") {{ {REMOVAL} }} }}')
    assert done["data"]["deleteStage"]["result"] == {"stage": "mql", "moved": 3, "movedTo": "sql", "deleted": False, "archived": True}
    body = await gql(
        "query($id: ID!) { customer(id: $id) { stage { key } stageHistory { fromStage { key archived } toStage { key } reason } } }",
        {"id": ids[0]},
    )
    customer = body["data"]["customer"]
    assert customer["stage"] == {"key": "sql"}
    assert [h["toStage"]["key"] for h in customer["stageHistory"]] == ["lead", "mql", "sql"]
    assert customer["stageHistory"][-1]["fromStage"] == {"key": "mql", "archived": True}
    assert customer["stageHistory"][-1]["reason"] == "stage mql deleted"
    pipes = await _pipelines(gql)
    assert "mql" not in [s["key"] for s in pipes["default"]["stages"]]
    assert pipes["default"]["archivedStages"] == [{"key": "mql", "name": "Marketing qualified"}]
    assert [s["position"] for s in pipes["default"]["stages"]] == list(range(len(pipes["default"]["stages"])))
    # an archived stage takes no customers and leaves the funnel
    blocked = (await gql(MOVE, {"id": ids[1], "stage": "mql"}))["data"]["moveCustomerStage"]["errors"][0]
    assert blocked["code"] == "VALIDATION" and "archived" in blocked["message"]
    funnel = await gql("{ funnel { steps { stage { key } } } }")
    assert "mql" not in [s["stage"]["key"] for s in funnel["data"]["funnel"]["steps"]]
    # restored, it comes back last
    back = await gql(f'mutation {{ archiveStage(pipeline: "default", stage: "mql", restore: true) {{ {REMOVAL} }} }}')
    assert back["data"]["archiveStage"]["result"]["archived"] is False
    assert [s["key"] for s in (await _pipelines(gql))["default"]["stages"]][-1] == "mql"
    # a stage nobody ever stood in is deleted for good
    await gql('mutation { createStage(pipeline: "default", input: {key: "unused", name: "Unused"}) { errors { code } } }')
    gone = await gql(f'mutation {{ deleteStage(pipeline: "default", stage: "unused") {{ {REMOVAL} }} }}')
    assert gone["data"]["deleteStage"]["result"] == {"stage": "unused", "moved": 0, "movedTo": None, "deleted": True, "archived": False}
    async with runtime.session(tenant_id) as s:
        assert (await s.scalars(select(Stage).where(Stage.key == "unused"))).first() is None
        assert len((await s.scalars(select(StageChange))).all()) == 3 * 3
    # the last open stage cannot go
    one = await _pipeline(gql, {"key": "tiny", "name": "Tiny", "stages": [{"key": "only", "name": "Only"}]})
    assert one["stages"][0]["key"] == "only"
    last = await gql(f'mutation {{ archiveStage(pipeline: "tiny", stage: "only") {{ {REMOVAL} }} }}')
    assert last["data"]["archiveStage"]["errors"][0]["code"] == "VALIDATION"


async def test_pipeline_definitions_are_validated_and_only_admins_change_them(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL, client: httpx.AsyncClient
) -> None:
    for bad, field in [
        ({"key": "Renewal", "name": "R"}, "key"),
        ({"key": "r", "name": " "}, "name"),
        ({"key": "r", "name": "R", "stages": [{"key": "won", "name": "Won", "category": "WON"}]}, "stages"),
        ({"key": "r", "name": "R", "stages": [{"key": "a", "name": "A"}, {"key": "a", "name": "B"}]}, "stages[1].key"),
    ]:
        errors = (await gql(CREATE_PIPELINE, {"input": bad}))["data"]["createPipeline"]["errors"]
        assert errors and errors[0]["code"] == "VALIDATION" and errors[0]["field"] == field, (bad, errors)
    dup = await gql(CREATE_PIPELINE, {"input": {"key": "default", "name": "Again"}})
    assert dup["data"]["createPipeline"]["errors"][0]["code"] == "CONFLICT"
    not_default = await gql('mutation { updatePipeline(key: "default", input: {isDefault: false}) { errors { field } } }')
    assert not_default["data"]["updatePipeline"]["errors"] == [{"field": "isDefault"}]
    for role in ("manager", "sales"):
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            user = await users.create_user(tx, email=f"{role}@example.com", name=role, role=role)
        key = await api_key(runtime, tenant_id, role, user_id=user.id)
        response = await client.post(
            "/graphql",
            json={"query": 'mutation { createPipeline(input: {key: "x", name: "X"}) { errors { code } } }'},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_listing_pipelines_costs_the_same_statements_whatever_their_number(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    query = "{ pipelines { key sources stages { key } archivedStages { key } } }"
    counts = []
    for n in (1, 4):
        for i in range((len(counts) and 3) or 0):
            await _pipeline(gql, {"key": f"p{i}", "name": f"P{i}"})
        await gql(query)  # the key's first-use bookkeeping is not the query's
        await runtime.drain()  # the stamp is written beside the request: let it finish first
        with count_statements(runtime.engine) as seen:
            body = await gql(query)
        assert len(body["data"]["pipelines"]) == n
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 3, counts  # auth, stages, pipelines
