"""GraphQL conformance: Relay's Node interface with node(id:) and nodes(ids:), backward paging
(last/before), the timeline's totalCount, and a document of several anonymous operations."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from guanxi.graphql.ids import to_global_id
from tests.graphql.conftest import GQL

CREATE = """mutation($n: String!) { createCustomer(input: {displayName: $n, tags: ["vip"]}) {
  customer { id stage { id } tags { id } } } }"""


async def create(gql: GQL, name: str) -> dict[str, Any]:
    return (await gql(CREATE, {"n": name}))["data"]["createCustomer"]["customer"]  # type: ignore[no-any-return]


async def test_node_fetches_every_core_type_by_its_global_id(gql: GQL) -> None:
    c = await create(gql, "Node Person")
    task = await gql('mutation($c: ID!) { createTask(input: {customerId: $c, title: "call"}) { task { id } } }', {"c": c["id"]})
    note = (
        'mutation($c: ID!) { recordInteraction(input: {customerId: $c, channel: "web", kind: "note", text: "hi"}) { interaction { id } } }'
    )
    interaction = await gql(note, {"c": c["id"]})
    identity = await gql(
        'mutation($c: ID!) { attachIdentity(customerId: $c, input: {channel: "wecom", externalId: "wmN1"}) { identity { id } } }',
        {"c": c["id"]},
    )
    users = (await gql("{ users { id } pipelines { id } }"))["data"]
    detail = (await gql("query($c: ID!) { customer(id: $c) { stageHistory { id } } }", {"c": c["id"]}))["data"]["customer"]
    audit = (await gql("{ auditEvents(first: 1) { id } }"))["data"]["auditEvents"]
    ids = {
        "Customer": c["id"],
        "Task": task["data"]["createTask"]["task"]["id"],
        "Interaction": interaction["data"]["recordInteraction"]["interaction"]["id"],
        "Identity": identity["data"]["attachIdentity"]["identity"]["id"],
        "Stage": c["stage"]["id"],
        "Tag": c["tags"][0]["id"],
        "Pipeline": users["pipelines"][0]["id"],
        "StageChange": detail["stageHistory"][0]["id"],
        "AuditEntry": audit[0]["id"],
    }
    if users["users"]:
        ids["User"] = users["users"][0]["id"]
    for type_name, gid in ids.items():
        body = await gql("query($id: ID!) { node(id: $id) { __typename id } }", {"id": gid})
        assert body["data"]["node"] == {"__typename": type_name, "id": gid}
    body = await gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Customer { displayName } ... on Task { title } } }",
        {"ids": [ids["Task"], to_global_id("Customer", uuid.uuid4()), c["id"]]},
    )
    assert body["data"]["nodes"] == [{"id": ids["Task"], "title": "call"}, None, {"id": c["id"], "displayName": "Node Person"}]


async def test_node_of_an_unknown_type_or_id_is_null_and_a_malformed_id_is_bad_id(gql: GQL) -> None:
    for gid in (to_global_id("Customer", uuid.uuid4()), to_global_id("Nothing", uuid.uuid4())):
        assert (await gql("query($id: ID!) { node(id: $id) { id } }", {"id": gid}))["data"]["node"] is None
    body = await gql('{ node(id: "nope") { id } }', ok=False)
    assert body["errors"][0]["extensions"] == {"code": "BAD_ID", "field": "id"}
    too_many = await gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["x"] * 101}, ok=False)
    assert too_many["errors"][0]["extensions"] == {"code": "BAD_PAGE_SIZE", "field": "ids"}


async def test_customer_pages_stay_on_the_compiled_path_now_that_customer_implements_node(gql: GQL, client: httpx.AsyncClient) -> None:
    await create(gql, "A")
    schema = client._transport.app.state.schema  # type: ignore[attr-defined]
    page = "{ customers(first: 5) { totalCount edges { node { id displayName stage { name } tags { name } } } } }"
    await gql(page)

    def fast() -> int:  # answered by the SQL layer, or else by a compiled plan
        return int(schema.compiled_stats["fast"]) + (schema.sql.stats["sql"] if schema.sql is not None else 0)

    before, fell_back = fast(), schema.compiled_stats["fallback"]
    await gql(page)
    assert fast() == before + 1 and schema.compiled_stats["fallback"] == fell_back


async def test_customers_page_backwards_with_last_and_before(gql: GQL) -> None:
    for i in range(5):
        await create(gql, f"P{i}")
    q = """query($last: Int, $before: String, $first: Int, $after: String) {
      customers(orderBy: NAME_ASC, last: $last, before: $before, first: $first, after: $after) {
        edges { cursor node { displayName } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
    tail = (await gql(q, {"last": 2}))["data"]["customers"]
    assert [e["node"]["displayName"] for e in tail["edges"]] == ["P3", "P4"]
    assert tail["pageInfo"]["hasPreviousPage"] is True and tail["pageInfo"]["hasNextPage"] is False
    names = [e["node"]["displayName"] for e in tail["edges"]]
    before = tail["pageInfo"]["startCursor"]
    while True:
        page = (await gql(q, {"last": 2, "before": before}))["data"]["customers"]
        names = [e["node"]["displayName"] for e in page["edges"]] + names
        assert page["pageInfo"]["hasNextPage"] is True
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert names == [f"P{i}" for i in range(5)]
    both = await gql(q, {"last": 2, "first": 2}, ok=False)
    assert both["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE"


async def test_timeline_has_total_count_and_pages_backwards(gql: GQL) -> None:
    c = await create(gql, "T")
    for i in range(4):
        await gql(
            'mutation($c: ID!, $t: String!) { recordInteraction(input: {customerId: $c, channel: "web", kind: "note", text: $t,'
            ' occurredAt: "2026-01-0%sT00:00:00Z"}) { created } }' % (i + 1),
            {"c": c["id"], "t": f"n{i}"},
        )
    q = """query($c: ID!, $last: Int, $before: String) { customer(id: $c) {
      interactions(first: 2) { totalCount edges { node { text } } pageInfo { endCursor } }
      older: interactions(last: $last, before: $before) {
        totalCount edges { node { text } } pageInfo { hasPreviousPage hasNextPage } } } }"""
    first = (await gql(q, {"c": c["id"], "last": 2}))["data"]["customer"]
    assert first["interactions"]["totalCount"] == 4
    assert [e["node"]["text"] for e in first["interactions"]["edges"]] == ["n3", "n2"]
    # newest first: the last two are the oldest
    assert [e["node"]["text"] for e in first["older"]["edges"]] == ["n1", "n0"]
    assert first["older"]["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": False}
    kinds = await gql('query($c: ID!) { customer(id: $c) { interactions(kinds: ["call"]) { totalCount } } }', {"c": c["id"]})
    assert kinds["data"]["customer"]["interactions"]["totalCount"] == 0


async def test_several_operations_without_an_operation_name_are_refused_not_run(gql: GQL, client: httpx.AsyncClient) -> None:
    """GetOperation of the spec: anonymous operations must be alone (a validation rule), and
    named ones need operationName; Strawberry would otherwise run the first one."""
    for document in (
        'query A { users { id } } mutation B { createCustomer(input: {displayName: "ran"}) { customer { id } } }',
        'mutation B { createCustomer(input: {displayName: "ran"}) { customer { id } } } query A { users { id } }',
    ):
        for _ in range(2):  # the second time too (no compiled plan, no cache, picks the first)
            body = await gql(document, ok=False)
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION"
            assert "operationName" in body["errors"][0]["message"]
    for document in (
        '{ users { id } } mutation { createCustomer(input: {displayName: "ran"}) { customer { id } } }',
        "{ users { id } } { tags { id } }",
    ):
        body = await gql(document, ok=False)
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert (await gql('{ customers(filter: {search: "ran"}) { totalCount } }'))["data"]["customers"]["totalCount"] == 0
    chosen = await client.post("/graphql", json={"query": "query A { tags { id } } query B { users { id } }", "operationName": "B"})
    assert chosen.json() == {"data": {"users": []}}
