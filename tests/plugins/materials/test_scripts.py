"""Scripts (话术): snippets by scene with variables filled from the customer, searched, sent
through sendMessage (the outbox) and counted per salesperson."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import Customer
from guanxi.core.services.identities import IdentityInput, attach_identity
from guanxi.graphql.ids import to_global_id
from guanxi.testing.sql import count_statements
from tests.plugins.materials.conftest import Staff, customer, staff

pytestmark = pytest.mark.plugins("materials", "pigeon")

CREATE = """
mutation($input: CreateScriptInput!) {
  createScript(input: $input) { script { id scene title variables uses } errors { field code message } }
}"""
LIST = """
query($scene: String, $search: String) {
  scripts(scene: $scene, search: $search) { title scene uses usage { salesperson { name } count } }
}"""
RENDER = "query($s: ID!, $c: ID!) { renderScript(scriptId: $s, customerId: $c) }"
SEND = """
mutation($s: ID!, $c: ID!, $key: String!) {
  sendScript(scriptId: $s, customerId: $c, channel: "pigeon", idempotencyKey: $key) {
    message { text status } created errors { field code message }
  }
}"""


async def _customer(runtime: Runtime, tenant_id: uuid.UUID, owner: uuid.UUID) -> uuid.UUID:
    cid = await customer(runtime, tenant_id, "赵女士", owner=owner)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await attach_identity(tx, cid, IdentityInput(channel="pigeon", external_id=f"p-{cid.hex[:8]}"))
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(Customer).where(Customer.id == cid).values(company="华为", attributes={"city": "深圳"}))
    return cid


async def test_a_script_is_filled_from_the_customer_sent_through_the_outbox_and_counted(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff
) -> None:
    text = "{{name}}您好，{{ company }}在{{city}}的同事都在用"
    body = await marketing.gql(CREATE, {"input": {"scene": "first_contact", "title": "开场白", "text": text}})
    script = body["data"]["createScript"]["script"]
    assert script["variables"] == ["name", "company", "city"] and script["uses"] == 0
    cid = to_global_id("Customer", await _customer(runtime, tenant_id, sales.user_id))
    expected = "赵女士您好，华为在深圳的同事都在用"
    assert (await sales.gql(RENDER, {"s": script["id"], "c": cid}))["data"]["renderScript"] == expected

    sent = (await sales.gql(SEND, {"s": script["id"], "c": cid, "key": "k1"}))["data"]["sendScript"]
    assert sent["message"] == {"text": expected, "status": "QUEUED"} and sent["created"] is True
    replay = (await sales.gql(SEND, {"s": script["id"], "c": cid, "key": "k1"}))["data"]["sendScript"]
    assert replay["created"] is False  # one idempotency key sends (and counts) once
    await sales.gql(SEND, {"s": script["id"], "c": cid, "key": "k2"})
    other = await staff(runtime, tenant_id, sales.client, "zhou@x.cn", "sales")
    async with runtime.write_session(tenant_id) as s:
        await s.execute(update(Customer).values(owner_id=other.user_id))  # the customer passed to zhou
    await other.gql(SEND, {"s": script["id"], "c": cid, "key": "k3"})

    listed = (await marketing.gql(LIST, {"scene": "first_contact"}))["data"]["scripts"]
    assert listed == [
        {
            "title": "开场白",
            "scene": "first_contact",
            "uses": 3,
            "usage": [{"salesperson": {"name": "wang"}, "count": 2}, {"salesperson": {"name": "zhou"}, "count": 1}],
        }
    ]


async def test_a_missing_variable_is_a_validation_error_naming_it_and_nothing_is_sent(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff
) -> None:
    body = await marketing.gql(CREATE, {"input": {"scene": "price_objection", "title": "x", "text": "{{name}}, {{budget}} {{vip}}"}})
    script = body["data"]["createScript"]["script"]["id"]
    cid = to_global_id("Customer", await _customer(runtime, tenant_id, sales.user_id))
    errors = (await sales.gql(SEND, {"s": script, "c": cid, "key": "k"}))["data"]["sendScript"]["errors"]
    assert errors[0]["code"] == "VALIDATION" and "{{budget}}, {{vip}}" in errors[0]["message"]
    assert (await marketing.gql(LIST))["data"]["scripts"][0]["uses"] == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scene": "Price Objection", "title": "x", "text": "y"}, "scene"),
        ({"scene": "a", "title": "", "text": "y"}, "title"),
        ({"scene": "a", "title": "x", "text": " "}, "text"),
    ],
)
async def test_bad_script_input_names_the_field(marketing: Staff, data: dict[str, str], field: str) -> None:
    errors = (await marketing.gql(CREATE, {"input": data}))["data"]["createScript"]["errors"]
    assert errors[0]["field"] == field and errors[0]["code"] == "VALIDATION", errors


async def test_search_matches_every_word_in_title_or_text_and_costs_fixed_statements(runtime: Runtime, marketing: Staff) -> None:
    for scene, title, text in (
        ("after_sales", "退换货", "七天无理由 100%"),
        ("after_sales", "保修", "一年保修"),
        ("first_contact", "问候", "您好"),
    ):
        await marketing.gql(CREATE, {"input": {"scene": scene, "title": title, "text": text}})
    assert [s["title"] for s in (await marketing.gql(LIST, {"search": "保修"}))["data"]["scripts"]] == ["保修"]
    assert [s["title"] for s in (await marketing.gql(LIST, {"search": "七天 100%"}))["data"]["scripts"]] == ["退换货"]
    assert (await marketing.gql(LIST, {"search": "%"}))["data"]["scripts"][0]["title"] == "退换货"  # % is literal
    assert [s["title"] for s in (await marketing.gql(LIST, {"scene": "after_sales"}))["data"]["scripts"]] == ["保修", "退换货"]
    with count_statements(runtime.engine) as seen:
        await marketing.gql(LIST)
    assert len([s for s in seen if "api_keys" not in s]) == 2, seen  # scripts, uses
