"""GraphQL hardening: depth and alias limits, and errors that never leak internals."""

from __future__ import annotations

import json
import logging

import pytest

from tests.graphql.conftest import GQL


async def test_a_query_deeper_than_the_limit_is_refused(gql: GQL) -> None:
    deep = (
        "{ customers { edges { node { interactions { edges { node { customer { interactions { edges { node {"
        " customer { tasks { customer { displayName } } } } } } } } } } } } } }"
    )
    body = await gql(deep, ok=False)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert body.get("data") is None


async def test_too_many_aliases_are_refused(gql: GQL) -> None:
    many = "{ " + " ".join(f"a{i}: pipelines {{ key }}" for i in range(40)) + " }"
    body = await gql(many, ok=False)
    assert "aliases" in body["errors"][0]["message"].lower()


async def test_unexpected_errors_say_internal_error_without_details(
    gql: GQL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from guanxi.core.services import queries

    async def broken(*_a: object, **_k: object) -> int:
        raise RuntimeError("SELECT secret FROM customers -- password=hunter2")

    monkeypatch.setattr(queries, "count_customers", broken)
    with caplog.at_level(logging.ERROR, logger="guanxi.graphql"):
        body = await gql("{ customers { totalCount } }", ok=False)
    (error,) = body["errors"]
    assert error["message"] == "internal error"
    assert error["extensions"] == {"code": "INTERNAL"}
    assert "hunter2" not in str(body)
    assert "hunter2" in caplog.text  # kept for operators in the server log


async def test_syntax_errors_are_graphql_validation_errors(gql: GQL) -> None:
    body = await gql("{ customers { ", ok=False)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION"


async def test_cursor_from_another_ordering_is_refused(gql: GQL) -> None:
    await gql('mutation { createCustomer(input: {displayName: "A"}) { errors { code } } }')
    await gql('mutation { createCustomer(input: {displayName: "B"}) { errors { code } } }')
    page = (await gql("{ customers(first: 1, orderBy: NAME_ASC) { pageInfo { endCursor } } }"))["data"]["customers"]
    body = await gql("query($a: String) { customers(first: 1, after: $a) { totalCount } }", {"a": page["pageInfo"]["endCursor"]}, ok=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_CURSOR"


async def test_merge_through_the_api_keeps_the_merged_id_resolving(gql: GQL) -> None:
    create = "mutation($n: String!) { createCustomer(input: {displayName: $n}) { customer { id } } }"
    a = (await gql(create, {"n": "Survivor"}))["data"]["createCustomer"]["customer"]["id"]
    b = (await gql(create, {"n": "Duplicate"}))["data"]["createCustomer"]["customer"]["id"]
    merge = """mutation($a: ID!, $b: ID!, $d: Boolean!) { mergeCustomers(survivorId: $a, mergedId: $b, dryRun: $d) {
      plan { stageChanges dryRun } customer { displayName } errors { code } } }"""
    dry = (await gql(merge, {"a": a, "b": b, "d": True}))["data"]["mergeCustomers"]
    assert dry["plan"] == {"stageChanges": 1, "dryRun": True}
    done = (await gql(merge, {"a": a, "b": b, "d": False}))["data"]["mergeCustomers"]
    assert done["customer"] == {"displayName": "Survivor"}
    assert (await gql("query($id: ID!) { customer(id: $id) { id displayName } }", {"id": b}))["data"]["customer"] == {
        "id": a,
        "displayName": "Survivor",
    }
    total = (await gql("{ customers { totalCount } }"))["data"]["customers"]["totalCount"]
    assert total == 1


async def test_display_name_cannot_be_cleared(gql: GQL) -> None:
    c = (await gql('mutation { createCustomer(input: {displayName: "A"}) { customer { id } } }'))["data"]["createCustomer"]["customer"]
    body = await gql(
        "mutation($id: ID!) { updateCustomer(id: $id, input: {displayName: null}) { errors { field code } } }", {"id": c["id"]}
    )
    assert body["data"]["updateCustomer"]["errors"] == [{"field": "displayName", "code": "VALIDATION"}]


async def test_caller_mistakes_are_not_logged_as_errors(gql: GQL, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        await gql('{ customer(id: "bad") { id } }', ok=False)
        await gql("{ nope }", ok=False)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_attributes_must_be_a_json_object(gql: GQL) -> None:
    body = await gql('mutation { createCustomer(input: {displayName: "A", attributes: [1, 2]}) { errors { field code message } } }')
    expected = {"field": "attributes", "code": "VALIDATION", "message": "attributes must be a JSON object, not list"}
    assert body["data"]["createCustomer"]["errors"] == [expected]


async def test_error_messages_quote_the_global_ids_the_caller_sent_never_internal_uuids(gql: GQL) -> None:
    """Services word errors with uuids; the API answers with the global ids (the ones sent,
    or the typed global id of one the caller did not send), on payload and GraphQL errors."""
    import re
    import uuid

    from guanxi.graphql.ids import to_global_id

    uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    create = "mutation($n: String!) { createCustomer(input: {displayName: $n}) { customer { id } } }"
    a = (await gql(create, {"n": "Survivor"}))["data"]["createCustomer"]["customer"]["id"]
    b = (await gql(create, {"n": "Duplicate"}))["data"]["createCustomer"]["customer"]["id"]
    ghost_user, ghost_customer = to_global_id("User", uuid.uuid4()), to_global_id("Customer", uuid.uuid4())

    update = "mutation($id: ID!, $o: ID) { updateCustomer(id: $id, input: {ownerId: $o}) { errors { field code message } } }"
    (error,) = (await gql(update, {"id": a, "o": ghost_user}))["data"]["updateCustomer"]["errors"]
    assert error == {"field": "ownerId", "code": "VALIDATION", "message": f"owner {ghost_user} is not an active user of this tenant"}
    (error,) = (await gql(update, {"id": ghost_customer, "o": None}))["data"]["updateCustomer"]["errors"]
    assert error == {"field": None, "code": "NOT_FOUND", "message": f"customer {ghost_customer} not found"}

    key = 'mutation($u: ID) { createApiKey(input: {name: "x", role: SALES, userId: $u}) { errors { field code message } } }'
    (error,) = (await gql(key, {"u": ghost_user}))["data"]["createApiKey"]["errors"]
    assert error == {"field": "userId", "code": "NOT_FOUND", "message": f"user {ghost_user} not found or inactive"}

    merge = "mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b, dryRun: false) { errors { message } } }"
    assert (await gql(merge, {"a": a, "b": b}))["data"]["mergeCustomers"]["errors"] == []
    (error,) = (await gql(merge, {"a": a, "b": b}))["data"]["mergeCustomers"]["errors"]
    assert error["message"] == f"customer {b} was already merged into {a}"
    assert not uuid_re.search(json.dumps(error))
