"""createCustomer with a phone or e-mail another customer has: created anyway (the default),
refused with DUPLICATE naming the contact point, or linked to the existing customer, as the
caller chooses (issue 20 item 7). A salesperson is refused, never linked, when the existing
customer is someone else's, and learns no id of it."""

from __future__ import annotations

import uuid

import httpx

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import users
from guanxi.testing.plugin import api_key
from tests.graphql.conftest import GQL

CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id displayName phones emails company tags { label } } linked errors { code field message } } }"""


async def _count(gql: GQL) -> int:
    return int((await gql("{ customers { totalCount } }"))["data"]["customers"]["totalCount"])


async def test_a_duplicate_contact_point_is_created_refused_or_linked_as_the_caller_chooses(gql: GQL) -> None:
    first = await gql(CREATE, {"input": {"displayName": "王芳", "phones": ["+86 139 0000 0001"], "emails": ["wf@example.com"]}})
    existing = first["data"]["createCustomer"]["customer"]
    refused = await gql(CREATE, {"input": {"displayName": "Wang", "phones": ["+8613900000001"], "onDuplicate": "REFUSE"}})
    error = refused["data"]["createCustomer"]["errors"][0]
    assert error["code"] == "DUPLICATE" and error["field"] == "phones"
    assert "+8613900000001" in error["message"] and existing["id"] in error["message"]
    refused = await gql(CREATE, {"input": {"displayName": "Wang", "emails": ["WF@example.com"], "onDuplicate": "REFUSE"}})
    assert refused["data"]["createCustomer"]["errors"][0]["field"] == "emails"
    assert await _count(gql) == 1
    fresh = await gql(CREATE, {"input": {"displayName": "Other", "phones": ["+8613900000009"], "onDuplicate": "REFUSE"}})
    assert fresh["data"]["createCustomer"]["errors"] == []
    linked = await gql(
        CREATE,
        {
            "input": {
                "displayName": "Wang F.",
                "phones": ["+8613900000001", "+8613900000002"],
                "company": "星辰教育",
                "tags": ["展会"],
                "onDuplicate": "LINK",
            }
        },
    )
    payload = linked["data"]["createCustomer"]
    assert payload["errors"] == [] and payload["linked"] is True
    assert payload["customer"]["id"] == existing["id"] and payload["customer"]["displayName"] == "王芳"
    assert payload["customer"]["phones"] == ["+8613900000001", "+8613900000002"]
    assert payload["customer"]["company"] == "星辰教育" and payload["customer"]["tags"] == [{"label": "展会"}]
    # nothing to link to: created, not linked
    made = (await gql(CREATE, {"input": {"displayName": "New", "emails": ["new@example.com"], "onDuplicate": "LINK"}}))["data"]
    assert made["createCustomer"]["linked"] is False
    # the default creates a second customer, as before
    again = (await gql(CREATE, {"input": {"displayName": "Twin", "phones": ["+8613900000001"]}}))["data"]["createCustomer"]
    assert again["errors"] == [] and again["customer"]["id"] != existing["id"] and again["linked"] is False
    assert await _count(gql) == 4


async def test_a_salesperson_is_refused_without_an_id_when_the_duplicate_is_someone_elses(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL, client: httpx.AsyncClient
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        li = await users.create_user(tx, email="li@example.com", name="Li", role="sales")
        wu = await users.create_user(tx, email="wu@example.com", name="Wu", role="sales")
    keys = {u.name: await api_key(runtime, tenant_id, "sales", user_id=u.id) for u in (li, wu)}

    async def as_user(name: str, variables: dict[str, object]) -> dict[str, object]:
        response = await client.post(
            "/graphql", json={"query": CREATE, "variables": variables}, headers={"Authorization": f"Bearer {keys[name]}"}
        )
        return dict(response.json()["data"]["createCustomer"])

    mine = await as_user("Li", {"input": {"displayName": "Li's lead", "phones": ["+8613700000001"]}})
    assert mine["errors"] == []
    for choice in ("LINK", "REFUSE"):
        other = await as_user("Wu", {"input": {"displayName": "Same person", "phones": ["+8613700000001"], "onDuplicate": choice}})
        assert other["customer"] is None
        (error,) = other["errors"]  # type: ignore[misc]
        assert error["code"] == "DUPLICATE" and "customer" not in error["message"].replace("another customer", "")
    # Li links to their own lead
    own = await as_user("Li", {"input": {"displayName": "Again", "phones": ["+8613700000001"], "onDuplicate": "LINK"}})
    assert own["linked"] is True and own["customer"]["id"] == mine["customer"]["id"]  # type: ignore[index]
