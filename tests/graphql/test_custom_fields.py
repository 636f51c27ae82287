"""Custom fields through GraphQL: definitions managed by admins, typed values validated on write,
`Customer.fields`, conditions and ordering on a field key compiled into the customer list's SQL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import AuditEvent, CustomerFieldValue
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, fields, users
from guanxi.graphql.ids import to_global_id
from guanxi.testing.sql import count_statements
from tests.graphql.conftest import GQL

DEFINE = """mutation($input: DefineCustomFieldInput!) { defineCustomField(input: $input) {
  field { key label kind choices archived } errors { code field message } } }"""
SET = """mutation($id: ID!, $values: JSON!) { setCustomerFields(customerId: $id, values: $values) {
  changed customer { fields { key kind value text number decimal date boolean choices user { name } } }
  errors { code field message } } }"""
CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id displayName fields { key value } } errors { code field message } } }"""
LIST = """query($filter: CustomerFilter, $order: FieldOrderInput, $first: Int, $after: String) {
  customers(filter: $filter, orderByField: $order, first: $first, after: $after) {
    totalCount edges { cursor node { displayName fields { key value } } } pageInfo { hasNextPage endCursor } } }"""

FIELDS = [
    {"key": "grade", "label": "Grade", "kind": "SINGLE_CHOICE", "choices": ["A", "B", "C"]},
    {"key": "budget", "label": "Budget", "kind": "MONEY"},
    {"key": "employees", "label": "Employees", "kind": "NUMBER"},
    {"key": "renewal", "label": "Renewal date", "kind": "DATE"},
    {"key": "products", "label": "Products", "kind": "MULTI_CHOICE", "choices": ["crm", "erp", "bi"]},
    {"key": "vip", "label": "VIP", "kind": "BOOLEAN"},
    {"key": "note", "label": "Note", "kind": "TEXT"},
    {"key": "advisor", "label": "Advisor", "kind": "USER"},
]


async def _define_all(gql: GQL) -> None:
    for f in FIELDS:
        body = await gql(DEFINE, {"input": f})
        assert body["data"]["defineCustomField"]["errors"] == [], body


async def _customer(gql: GQL, name: str, values: dict[str, Any] | None = None) -> str:
    body = await gql(CREATE, {"input": {"displayName": name, "fields": values}})
    payload = body["data"]["createCustomer"]
    assert payload["errors"] == [], payload
    return str(payload["customer"]["id"])


async def test_values_of_every_kind_are_stored_typed_and_read_back_typed(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    await _define_all(gql)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        advisor = await users.create_user(tx, email="li@example.com", name="Li")
    cid = await _customer(gql, "Acme")
    values = {
        "grade": "A",
        "budget": "12000.50",
        "employees": 42,
        "renewal": "2027-03-01",
        "products": ["bi", "crm"],
        "vip": True,
        "note": "likes tea",
        "advisor": to_global_id("User", advisor.id),
    }
    body = await gql(SET, {"id": cid, "values": values})
    payload = body["data"]["setCustomerFields"]
    assert payload["errors"] == []
    assert sorted(payload["changed"]) == sorted(values)
    got = {f["key"]: f for f in payload["customer"]["fields"]}
    # listed in definition order (position, then key)
    assert [f["key"] for f in payload["customer"]["fields"]] == sorted(values)
    assert got["grade"]["text"] == "A" and got["grade"]["kind"] == "SINGLE_CHOICE"
    assert got["budget"]["decimal"] == "12000.500000" and got["budget"]["number"] == 12000.5
    assert got["employees"]["number"] == 42
    assert got["renewal"]["date"] == "2027-03-01"
    assert got["products"]["choices"] == ["crm", "bi"]  # in the field's choice order
    assert got["vip"]["boolean"] is True
    assert got["note"]["value"] == "likes tea"
    assert got["advisor"]["user"] == {"name": "Li"}
    # setting the same values again changes nothing
    again = await gql(SET, {"id": cid, "values": values})
    assert again["data"]["setCustomerFields"]["changed"] == []
    # null clears one field, others stay
    cleared = await gql(SET, {"id": cid, "values": {"note": None}})
    assert "note" not in {f["key"] for f in cleared["data"]["setCustomerFields"]["customer"]["fields"]}
    assert len(cleared["data"]["setCustomerFields"]["customer"]["fields"]) == len(values) - 1


async def test_a_value_of_the_wrong_type_is_refused_naming_the_field_and_nothing_is_written(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL
) -> None:
    await _define_all(gql)
    cid = await _customer(gql, "Acme")
    bad = [
        ({"grade": "D"}, "values.grade"),
        ({"budget": "a lot"}, "values.budget"),
        ({"employees": True}, "values.employees"),
        ({"renewal": "tomorrow"}, "values.renewal"),
        ({"products": "crm"}, "values.products"),
        ({"products": ["crm", "cloud"]}, "values.products"),
        ({"vip": "yes"}, "values.vip"),
        ({"note": 5}, "values.note"),
        ({"advisor": "not-an-id"}, "values.advisor"),
        ({"advisor": to_global_id("User", uuid.uuid4())}, "values.advisor"),
        ({"nope": 1}, "values.nope"),
        ({"grade": "A", "budget": "x"}, "values.budget"),
    ]
    for values, field in bad:
        body = await gql(SET, {"id": cid, "values": values})
        errors = body["data"]["setCustomerFields"]["errors"]
        assert len(errors) == 1 and errors[0]["field"] == field, (values, errors)
        assert errors[0]["code"] in ("VALIDATION", "BAD_ID"), errors
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(CustomerFieldValue.id))).first() is None
    # createCustomer names the field under `fields` and creates nothing
    body = await gql(CREATE, {"input": {"displayName": "Bad", "fields": {"grade": "Z"}}})
    assert body["data"]["createCustomer"]["errors"][0]["field"] == "fields.grade"
    listed = await gql(LIST, {"filter": {"search": "Bad"}})
    assert listed["data"]["customers"]["totalCount"] == 0


async def test_definitions_are_validated_and_managed_by_admins_with_an_audit_trail(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL
) -> None:
    for bad, field in [
        ({"key": "Grade", "label": "G", "kind": "TEXT"}, "key"),
        ({"key": "grade", "label": "G", "kind": "SINGLE_CHOICE"}, "choices"),
        ({"key": "grade", "label": "G", "kind": "TEXT", "choices": ["A"]}, "choices"),
        ({"key": "grade", "label": "G", "kind": "SINGLE_CHOICE", "choices": ["A", "A"]}, "choices"),
        ({"key": "grade", "label": " ", "kind": "TEXT"}, "label"),
    ]:
        errors = (await gql(DEFINE, {"input": bad}))["data"]["defineCustomField"]["errors"]
        assert errors and errors[0]["code"] == "VALIDATION" and errors[0]["field"] == field, (bad, errors)
    await _define_all(gql)
    dup = await gql(DEFINE, {"input": FIELDS[0]})
    assert dup["data"]["defineCustomField"]["errors"][0]["code"] == "CONFLICT"
    cid = await _customer(gql, "Acme", {"grade": "C"})
    update = """mutation($key: String!, $input: UpdateCustomFieldInput!) { updateCustomField(key: $key, input: $input) {
      field { key label choices archived } errors { code field message } } }"""
    refused = await gql(update, {"key": "grade", "input": {"choices": ["A", "B"]}})
    err = refused["data"]["updateCustomField"]["errors"][0]
    assert err["field"] == "choices" and "1 customer" in err["message"]
    renamed = await gql(update, {"key": "grade", "input": {"label": "等级", "choices": ["A", "B", "C", "D"]}})
    assert renamed["data"]["updateCustomField"]["field"] == {
        "key": "grade",
        "label": "等级",
        "choices": ["A", "B", "C", "D"],
        "archived": False,
    }
    archived = await gql(update, {"key": "note", "input": {"archived": True}})
    assert archived["data"]["updateCustomField"]["field"]["archived"] is True
    listed = await gql("{ customFields { key } all: customFields(includeArchived: true) { key } }")
    assert "note" not in [f["key"] for f in listed["data"]["customFields"]]
    assert "note" in [f["key"] for f in listed["data"]["all"]]
    refused_archived = await gql(SET, {"id": cid, "values": {"note": "x"}})
    assert refused_archived["data"]["setCustomerFields"]["errors"][0]["field"] == "values.note"
    missing = await gql(update, {"key": "nope", "input": {"label": "x"}})
    assert missing["data"]["updateCustomField"]["errors"][0]["code"] == "NOT_FOUND"
    async with runtime.session(tenant_id) as s:
        actions = set((await s.execute(select(AuditEvent.action))).scalars())
    assert {"field.define", "field.update", "customer.fields"} <= actions


async def test_filters_on_field_keys_select_the_right_customers(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    await _define_all(gql)
    await _customer(gql, "A1", {"grade": "A", "budget": 500, "renewal": "2027-01-10", "products": ["crm"], "vip": True})
    await _customer(gql, "A2", {"grade": "A", "budget": 5000, "renewal": "2027-06-01", "products": ["crm", "bi"]})
    await _customer(gql, "B1", {"grade": "B", "budget": 50000, "products": ["erp"], "vip": False})
    await _customer(gql, "none")

    async def names(*conditions: dict[str, Any]) -> list[str]:
        body = await gql(LIST, {"filter": {"fields": list(conditions)}})
        got = body["data"]["customers"]
        assert got["totalCount"] == len(got["edges"])
        return sorted(e["node"]["displayName"] for e in got["edges"])

    assert await names({"field": "grade", "eq": "A"}) == ["A1", "A2"]
    assert await names({"field": "grade", "in": ["A", "B"]}) == ["A1", "A2", "B1"]
    assert await names({"field": "budget", "gte": 1000}) == ["A2", "B1"]
    assert await names({"field": "budget", "gt": "500", "lt": 50000}) == ["A2"]
    assert await names({"field": "renewal", "gte": "2027-01-01", "lte": "2027-03-31"}) == ["A1"]
    assert await names({"field": "products", "eq": "crm"}) == ["A1", "A2"]
    assert await names({"field": "vip", "eq": False}) == ["B1"]
    assert await names({"field": "grade", "isSet": False}) == ["none"]
    assert await names({"field": "grade", "eq": "A"}, {"field": "budget", "lte": 1000}) == ["A1"]
    for condition, field in [
        ({"field": "grade", "eq": "Z"}, "filter.fields[0].eq"),
        ({"field": "grade", "gte": "A"}, "filter.fields[0].gte"),
        ({"field": "budget", "gte": "lots"}, "filter.fields[0].gte"),
        ({"field": "nope", "eq": 1}, "filter.fields[0].field"),
    ]:
        body = await gql(LIST, {"filter": {"fields": [condition]}}, ok=False)
        ext = body["errors"][0]["extensions"]
        assert ext["code"] == "VALIDATION" and ext["field"] == field, (condition, body["errors"])


async def test_ordering_by_a_field_key_pages_through_every_customer_once(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    await _define_all(gql)
    budgets = [300, 100, None, 200, 100, 900]
    for i, b in enumerate(budgets):
        await _customer(gql, f"c{i}", {"budget": b} if b is not None else {})
    for key, descending in (("budget", False), ("budget", True), ("renewal", True), ("grade", False)):
        seen: list[str] = []
        after = None
        while True:
            body = await gql(LIST, {"order": {"field": key, "descending": descending}, "first": 2, "after": after})
            page = body["data"]["customers"]
            seen += [e["node"]["displayName"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert sorted(seen) == sorted(f"c{i}" for i in range(len(budgets))), (key, seen)
        if key == "budget":
            ordered = [budgets[int(n[1:])] for n in seen]
            keyed = [-1 if b is None else b for b in ordered]
            assert keyed == sorted(keyed, reverse=descending), ordered
    bad = await gql(LIST, {"order": {"field": "nope"}}, ok=False)
    assert bad["errors"][0]["extensions"]["field"] == "orderByField.field"
    other = await gql(LIST, {"order": {"field": "budget"}, "first": 1})
    cursor = other["data"]["customers"]["pageInfo"]["endCursor"]
    wrong = await gql(LIST, {"order": {"field": "renewal"}, "after": cursor}, ok=False)
    assert wrong["errors"][0]["extensions"]["code"] == "BAD_CURSOR"


async def test_fields_on_a_page_and_field_filters_cost_a_constant_number_of_statements(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL
) -> None:
    """No N+1: `fields` on every customer of a page is one statement for the definitions and one
    for the values, whatever the page size; a field condition and ordering add no statement per row."""
    await _define_all(gql)
    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        for i in range(40):
            c = await customers.create_customer(tx, customers.CustomerInput(display_name=f"C{i}"))
            await fields.set_customer_fields(tx, c.id, {"grade": "ABC"[i % 3], "budget": i * 10, "products": ["crm", "bi"]})
    await gql("{ pipelines { key } }")
    query = """query($n: Int!) { customers(first: $n, filter: {fields: [{field: "grade", in: ["A", "B"]}]},
      orderByField: {field: "budget", descending: true}) { edges { node { displayName fields { key value } } } } }"""
    counts = {}
    for n in (3, 25):
        with count_statements(runtime.engine) as seen:
            body = await gql(query, {"n": n})
        edges = body["data"]["customers"]["edges"]
        assert len(edges) == n
        assert all(len(e["node"]["fields"]) == 3 for e in edges)
        counts[n] = len(seen)
    # condition definitions, ordering definition, the page, field definitions, values
    assert counts[3] == counts[25] <= 5, counts


async def test_merge_keeps_the_survivors_values_and_fills_its_gaps_and_erasure_removes_them(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.services import merge, privacy

    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        await fields.define_field(tx, fields.FieldInput(key="grade", label="Grade", kind="single_choice", choices=["A", "B"]))
        await fields.define_field(tx, fields.FieldInput(key="note", label="Note", kind="text"))
        survivor = await customers.create_customer(tx, customers.CustomerInput(display_name="Survivor"))
        other = await customers.create_customer(tx, customers.CustomerInput(display_name="Other"))
        await fields.set_customer_fields(tx, survivor.id, {"grade": "A"})
        await fields.set_customer_fields(tx, other.id, {"grade": "B", "note": "likes tea"})
        await merge.merge_customers(tx, survivor.id, other.id)
    async with runtime.session(tenant_id) as s:
        found = await fields.field_values_of(s, [survivor.id, other.id])
        assert {d.key: v for d, v in found[survivor.id]} == {"grade": "A", "note": "likes tea"}
        assert other.id not in found
        exported = await privacy.export_customer_data(runtime, s, survivor.id)
    assert exported["fields"] == {"grade": "A", "note": "likes tea"}
    async with runtime.transaction(ctx) as tx:
        erased = await privacy.erase_customer(tx, survivor.id)
    assert erased["field_values"] == 2
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(CustomerFieldValue.id))).first() is None
