"""N+1 guard: a page of customers with nested lists costs a constant number of SQL statements."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, identities, interactions, tags
from guanxi.testing.sql import count_statements
from tests.graphql.conftest import GQL

PAGE = """query($n: Int!) { customers(first: $n) {
  totalCount
  edges { node {
    id displayName stage { name } owner { name } tags { name }
    identities { channel nickname }
    interactions(first: 5) { edges { node { kind text occurredAt } } }
  } }
} }"""


async def _seed(runtime: Runtime, tenant_id: uuid.UUID, n: int) -> None:
    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        for i in range(n):
            c = await customers.create_customer(tx, customers.CustomerInput(display_name=f"C{i}"))
            await tags.change_tags(tx, c.id, add=["vip", f"group/{i % 3}"])
            await identities.attach_identity(tx, c.id, identities.IdentityInput(channel="wecom", external_id=f"wm{i}", nickname=f"n{i}"))
            for k in range(7):
                await interactions.record_interaction(
                    tx, interactions.InteractionInput(customer_id=c.id, channel="wecom", kind="message_in", text=f"{i}-{k}")
                )


@pytest.mark.parametrize("sql_layer", [False, True])
async def test_statement_count_is_the_same_for_pages_of_5_and_50(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL, client: httpx.AsyncClient, sql_layer: bool
) -> None:
    """The present path: 6 statements whatever the page size; the SQL layer (guanxi.graphql.sqlgen),
    once the query is known: one."""
    schema = client._transport.app.state.schema  # type: ignore[attr-defined]
    if not sql_layer:
        schema.sql = None
    await _seed(runtime, tenant_id, 50)
    await gql("{ pipelines { key } }")  # warm up: the tenant id is cached after the first request
    if sql_layer:
        await gql(PAGE, {"n": 1})  # the first request of a query runs the present path, which plans it
    counts = {}
    for n in (5, 50):
        with count_statements(runtime.engine) as seen:
            body = await gql(PAGE, {"n": n})
        assert len(body["data"]["customers"]["edges"]) == n
        assert all(len(e["node"]["interactions"]["edges"]) == 5 for e in body["data"]["customers"]["edges"])
        counts[n] = len(seen)
    # customers page, count, stages, tags, identities, interactions (no owners in this data)
    assert counts[5] == counts[50] == 1 if sql_layer else counts[5] == counts[50] <= 6, counts


async def test_timeline_total_count_costs_one_statement_for_a_whole_page(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL, client: httpx.AsyncClient
) -> None:
    """interactions { totalCount } on every customer of a page: one grouped COUNT, whatever the size
    (the present path; with the SQL layer the whole page is one statement, pinned above)."""
    client._transport.app.state.schema.sql = None  # type: ignore[attr-defined]
    await _seed(runtime, tenant_id, 20)
    await gql("{ pipelines { key } }")
    page = "query($n: Int!) { customers(first: $n) { edges { node { interactions(first: 1) { totalCount } } } } }"
    counts = {}
    for n in (2, 20):
        with count_statements(runtime.engine) as seen:
            body = await gql(page, {"n": n})
        assert [e["node"]["interactions"]["totalCount"] for e in body["data"]["customers"]["edges"]] == [7] * n
        counts[n] = len(seen)
    # customers page, recent interactions, the grouped count
    assert counts[2] == counts[20] == 3, counts


async def test_a_page_reads_payload_and_profile_only_when_the_query_selects_them(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    """The page's interaction and identity statements leave out ``payload`` / ``profile`` when no
    field of that name is selected anywhere in the query; selected (also under an alias of the
    timeline with the same arguments, or in a fragment), they come back as stored; cursors of
    the timeline's edges are the same whether or not the page encodes them eagerly."""
    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="P"))
        await identities.attach_identity(
            tx, c.id, identities.IdentityInput(channel="wecom", external_id="wm-p", nickname="p", profile={"city": "杭州"})
        )
        await interactions.record_interaction(
            tx, interactions.InteractionInput(customer_id=c.id, channel="wecom", kind="message_in", text="hi", payload={"k": [1, 2]})
        )
    await gql("{ pipelines { key } }")
    lean = """{ customers(first: 5) { edges { node {
      identities { nickname } interactions(first: 5) { edges { cursor node { text } } }
    } } } }"""
    with count_statements(runtime.engine) as seen:
        body = await gql(lean)
    node = body["data"]["customers"]["edges"][0]["node"]
    assert node["identities"] == [{"nickname": "p"}] and node["interactions"]["edges"][0]["node"] == {"text": "hi"}
    page_sql = [s for s in seen if "identities" in s or "interactions" in s]
    assert page_sql and not any(re.search(r"\w\.(payload|profile)\b", s) for s in page_sql), page_sql  # NULL AS payload
    full = """{ customers(first: 5) { edges { node {
      ...F
      a: interactions(first: 5) { edges { cursor node { text } } }
      b: interactions(first: 5) { edges { node { payload } } pageInfo { endCursor } }
    } } } }
    fragment F on Customer { identities { profile } }"""
    node = (await gql(full))["data"]["customers"]["edges"][0]["node"]
    assert node["identities"] == [{"profile": {"city": "杭州"}}]
    assert node["b"]["edges"][0]["node"] == {"payload": {"k": [1, 2]}}
    assert node["b"]["pageInfo"]["endCursor"] == node["a"]["edges"][0]["cursor"]
