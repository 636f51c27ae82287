"""Page prefetching must give exactly what the per-object (DataLoader) path gives."""

from __future__ import annotations

import uuid

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, identities, interactions, tags, tasks, users
from tests.graphql.conftest import GQL

FRAGMENT = """
fragment Detail on Customer {
  id displayName stage { key } owner { name } tags { label }
  identities { channel externalId } wecom: identities(channel: "wecom") { externalId }
  stageHistory { toStage { key } reason }
  tasks(includeDone: true) { title done }
  interactions(first: $n, kinds: $kinds) { edges { node { kind text } } pageInfo { hasNextPage } }
  latest: interactions(first: 1) { edges { node { text } } }
}"""


async def _seed(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        owner = await users.create_user(tx, email="o@x.com", name="Owner")
        for i in range(4):
            c = await customers.create_customer(tx, customers.CustomerInput(display_name=f"P{i}", owner_id=owner.id if i % 2 else None))
            await tags.change_tags(tx, c.id, add=[f"t{i}", "common"])
            await identities.attach_identity(
                tx, c.id, identities.IdentityInput(channel="wecom" if i % 2 else "douyin", external_id=f"x{i}")
            )
            await tasks.create_task(tx, tasks.TaskInput(customer_id=c.id, title=f"task {i}"))
            for k in range(i + 2):
                kind = "message_in" if k % 2 else "note"
                await interactions.record_interaction(
                    tx, interactions.InteractionInput(customer_id=c.id, channel="wecom", kind=kind, text=f"{i}.{k}")
                )


async def test_prefetched_page_equals_one_by_one_resolution_with_fragments_aliases_and_variables(
    runtime: Runtime, tenant_id: uuid.UUID, gql: GQL
) -> None:
    await _seed(runtime, tenant_id)
    variables = {"n": 2, "kinds": ["message_in"]}
    page = await gql("query($n: Int, $kinds: [String!]) { customers(first: 10) { edges { node { ...Detail } } } }" + FRAGMENT, variables)
    nodes = [e["node"] for e in page["data"]["customers"]["edges"]]
    assert len(nodes) == 4
    for node in nodes:
        one = await gql(
            "query($id: ID!, $n: Int, $kinds: [String!]) { customer(id: $id) { ...Detail } }" + FRAGMENT, {"id": node["id"], **variables}
        )
        assert one["data"]["customer"] == node


async def test_literal_arguments_are_honoured_by_the_prefetch(runtime: Runtime, tenant_id: uuid.UUID, gql: GQL) -> None:
    await _seed(runtime, tenant_id)
    page = await gql(
        "{ customers(first: 10, orderBy: NAME_ASC) { edges { node {"
        ' interactions(first: 3, kinds: ["note"]) { edges { node { kind } } } } } } }'
    )
    counts = [len(e["node"]["interactions"]["edges"]) for e in page["data"]["customers"]["edges"]]
    assert counts == [1, 2, 2, 3]  # P0 has 2 interactions (1 note) … P3 has 5 (3 notes)
