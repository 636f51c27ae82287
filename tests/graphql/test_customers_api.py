"""The customer API through GraphQL over HTTP."""

from __future__ import annotations

from typing import Any

from tests.graphql.conftest import GQL

CREATE = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    customer { id displayName phones emails stage { key } tags { label } }
    errors { field code message }
  }
}"""


async def create(gql: GQL, **fields: Any) -> dict[str, Any]:
    body = await gql(CREATE, {"input": fields})
    payload = body["data"]["createCustomer"]
    assert payload["errors"] == [], payload["errors"]
    return payload["customer"]  # type: ignore[no-any-return]


async def test_create_customer_returns_it_with_stage_and_tags(gql: GQL) -> None:
    c = await create(gql, displayName="王芳", phones=["+86 138 0000 0001"], tags=["vip", "行业/教育"])
    assert c["displayName"] == "王芳"
    assert c["phones"] == ["+8613800000001"]
    assert c["stage"] == {"key": "lead"}
    assert sorted(t["label"] for t in c["tags"]) == ["vip", "行业/教育"]


async def test_bad_input_comes_back_as_typed_error_with_field(gql: GQL) -> None:
    body = await gql(CREATE, {"input": {"displayName": "X", "emails": ["not-an-email"]}})
    payload = body["data"]["createCustomer"]
    assert payload["customer"] is None
    assert payload["errors"][0]["field"] == "emails"
    assert payload["errors"][0]["code"] == "VALIDATION"
    assert "not an email address" in payload["errors"][0]["message"]


async def test_customers_list_paginates_with_cursors_and_total_count(gql: GQL) -> None:
    for i in range(5):
        await create(gql, displayName=f"Customer {i}")
    q = """query($after: String) { customers(first: 2, after: $after, orderBy: NAME_ASC) {
      totalCount edges { node { displayName } } pageInfo { hasNextPage endCursor } } }"""
    names, after = [], None
    while True:
        page = (await gql(q, {"after": after}))["data"]["customers"]
        assert page["totalCount"] == 5
        names += [e["node"]["displayName"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert names == [f"Customer {i}" for i in range(5)]


async def test_filter_by_stage_tags_and_search(gql: GQL) -> None:
    a = await create(gql, displayName="Alice Chen", tags=["vip", "industry/retail"])
    await create(gql, displayName="Bob Li", tags=["vip"])
    await create(gql, displayName="Carol Wu", tags=["industry/retail"], stage="mql")
    q = "query($f: CustomerFilter) { customers(filter: $f) { totalCount edges { node { displayName } } } }"

    async def names(f: dict[str, Any]) -> list[str]:
        data = (await gql(q, {"f": f}))["data"]["customers"]
        got = sorted(e["node"]["displayName"] for e in data["edges"])
        assert data["totalCount"] == len(got)
        return got

    assert await names({"tagsAll": ["vip", "industry/retail"]}) == ["Alice Chen"]
    assert await names({"tagsAny": ["vip", "industry/retail"]}) == ["Alice Chen", "Bob Li", "Carol Wu"]
    assert await names({"stages": ["mql"]}) == ["Carol Wu"]
    assert await names({"search": "chen"}) == ["Alice Chen"]
    assert await names({"tagsAny": ["no-such-tag"]}) == []
    one = (await gql("query($id: ID!) { customer(id: $id) { displayName } }", {"id": a["id"]}))["data"]["customer"]
    assert one == {"displayName": "Alice Chen"}


async def test_a_malformed_id_is_an_error_with_a_code(gql: GQL) -> None:
    body = await gql('{ customer(id: "nope") { id } }', ok=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_ID"


async def test_page_size_above_the_limit_is_refused(gql: GQL) -> None:
    body = await gql("{ customers(first: 1000) { totalCount } }", ok=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE"


async def test_customer_detail_has_timeline_history_tasks_and_identities(gql: GQL) -> None:
    c = await create(gql, displayName="Dana")
    for i in range(7):
        await gql(
            "mutation($i: RecordInteractionInput!) { recordInteraction(input: $i) { created errors { message } } }",
            {
                "i": {
                    "customerId": c["id"],
                    "channel": "wecom",
                    "kind": "message_in",
                    "text": f"msg {i}",
                    "occurredAt": f"2026-01-0{i + 1}T10:00:00+00:00",
                }
            },
        )
    await gql(
        'mutation($id: ID!) { moveCustomerStage(id: $id, stage: "sql", reason: "asked for a quote") { errors { message } } }',
        {"id": c["id"]},
    )
    await gql(
        "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { title overdue } errors { message } } }",
        {"i": {"customerId": c["id"], "title": "Send quote", "dueAt": "2020-01-01T00:00:00+00:00"}},
    )
    await gql(
        "mutation($id: ID!, $i: IdentityInput!) { attachIdentity(customerId: $id, input: $i) { errors { message } } }",
        {"id": c["id"], "i": {"channel": "wecom", "externalId": "wm123", "nickname": "Dana W"}},
    )
    q = """query($id: ID!, $after: String) { customer(id: $id) {
      stage { key } identities { channel externalId nickname }
      stageHistory { fromStage { key } toStage { key } reason }
      tasks { title overdue done }
      interactions(first: 5, after: $after) { edges { node { text } } pageInfo { hasNextPage endCursor } } } }"""
    d = (await gql(q, {"id": c["id"]}))["data"]["customer"]
    assert d["stage"] == {"key": "sql"}
    assert d["identities"] == [{"channel": "wecom", "externalId": "wm123", "nickname": "Dana W"}]
    assert [(h["fromStage"], h["toStage"]["key"], h["reason"]) for h in d["stageHistory"]] == [
        (None, "lead", "created"),
        ({"key": "lead"}, "sql", "asked for a quote"),
    ]
    assert d["tasks"] == [{"title": "Send quote", "overdue": True, "done": False}]
    texts = [e["node"]["text"] for e in d["interactions"]["edges"]]
    assert texts == ["msg 6", "msg 5", "msg 4", "msg 3", "msg 2"]
    assert d["interactions"]["pageInfo"]["hasNextPage"] is True
    d2 = (await gql(q, {"id": c["id"], "after": d["interactions"]["pageInfo"]["endCursor"]}))["data"]["customer"]
    assert [e["node"]["text"] for e in d2["interactions"]["edges"]] == ["msg 1", "msg 0"]


async def test_funnel_counts_current_and_reached_with_conversion(gql: GQL) -> None:
    ids = [(await create(gql, displayName=f"F{i}"))["id"] for i in range(4)]
    for cid in ids[:2]:
        await gql('mutation($id: ID!) { moveCustomerStage(id: $id, stage: "mql") { errors { message } } }', {"id": cid})
    steps = (await gql("{ funnel { steps { stage { key } current reached conversionFromPrevious } } }"))["data"]["funnel"]["steps"]
    by = {s["stage"]["key"]: s for s in steps}
    assert (by["lead"]["current"], by["lead"]["reached"]) == (2, 4)
    assert (by["mql"]["current"], by["mql"]["reached"], by["mql"]["conversionFromPrevious"]) == (2, 2, 0.5)
    assert by["sql"]["conversionFromPrevious"] == 0.0


async def test_funnel_counts_a_skipped_stage_as_passed_and_has_no_conversion_from_an_empty_stage(gql: GQL) -> None:
    move = "mutation($id: ID!, $s: String!) { moveCustomerStage(id: $id, stage: $s) { errors { message } } }"
    a, b, c, d = [(await create(gql, displayName=n))["id"] for n in "ABCD"]
    await gql(move, {"id": b, "s": "sql"})  # skipped mql
    await gql(move, {"id": c, "s": "mql"})
    await gql(move, {"id": d, "s": "won"})  # straight to won
    await gql(move, {"id": d, "s": "retained"})
    steps = (await gql("{ funnel { steps { stage { key } current reached conversionFromPrevious } } }"))["data"]["funnel"]["steps"]
    by = {s["stage"]["key"]: (s["current"], s["reached"], s["conversionFromPrevious"]) for s in steps}
    assert by["lead"] == (1, 4, None)
    assert by["mql"] == (1, 3, 0.75)
    assert by["sql"] == (1, 2, 0.6667)
    assert by["opportunity"] == (0, 1, 0.5)
    assert by["won"] == (0, 1, 1.0)
    assert by["retained"] == (1, 1, None)
    assert by["lost"] == (0, 0, None)
    assert a  # A stays a lead


async def test_consent_set_through_the_api_is_readable_on_the_customer(gql: GQL) -> None:
    c = await create(gql, displayName="Opt")
    body = await gql(
        'mutation($id: ID!) { setConsent(customerId: $id, channel: "email", status: OPTED_OUT,'
        ' source: "unsubscribe link") { errors { code } } }',
        {"id": c["id"]},
    )
    assert body["data"]["setConsent"]["errors"] == []
    got = (await gql("query($id: ID!) { customer(id: $id) { consents { channel status source } } }", {"id": c["id"]}))["data"]["customer"]
    assert got["consents"] == [{"channel": "email", "status": "OPTED_OUT", "source": "unsubscribe link"}]


async def test_update_customer_attributes_is_a_json_merge_patch(gql: GQL) -> None:
    """updateCustomer's attributes merge (RFC 7396): keys given are set, nested objects merge,
    null removes a key, keys not given stay; attributes: null removes them all."""
    c = await create(gql, displayName="王芳", attributes={"grade": "A", "city": "上海", "prefs": {"lang": "zh", "tz": "Asia/Shanghai"}})
    update = """mutation($id: ID!, $input: UpdateCustomerInput!) {
      updateCustomer(id: $id, input: $input) { customer { attributes } errors { field code message } } }"""

    async def patch(attributes: Any) -> Any:
        payload = (await gql(update, {"id": c["id"], "input": {"attributes": attributes}}))["data"]["updateCustomer"]
        assert payload["errors"] == []
        return payload["customer"]["attributes"]

    assert await patch({"grade": "B"}) == {"grade": "B", "city": "上海", "prefs": {"lang": "zh", "tz": "Asia/Shanghai"}}
    assert await patch({"city": None, "prefs": {"tz": None, "vip": True}}) == {"grade": "B", "prefs": {"lang": "zh", "vip": True}}
    assert await patch({}) == {"grade": "B", "prefs": {"lang": "zh", "vip": True}}
    assert await patch(None) == {}
    payload = (await gql(update, {"id": c["id"], "input": {"attributes": ["a"]}}))["data"]["updateCustomer"]
    assert payload["errors"] == [{"field": "attributes", "code": "VALIDATION", "message": "attributes must be a JSON object, not list"}]
