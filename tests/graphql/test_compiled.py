"""Compiled query plans (guanxi.graphql.compiled) must answer exactly what graphql-core answers."""

from __future__ import annotations

import asyncio
import enum
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import strawberry
from strawberry.dataloader import DataLoader

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, interactions, pipelines, tasks
from guanxi.graphql.execution import FastLeafExecutionContext
from guanxi.graphql.schema import GuanxiSchema, build_schema
from guanxi.testing.sql import count_statements
from tests.graphql import test_prefetch, test_sql_statements
from tests.graphql.conftest import use_tenant
from tests.graphql.test_sql_statements import PAGE


@dataclass
class Pair:
    fast: httpx.AsyncClient  # compiled plans on
    plain: httpx.AsyncClient  # GUANXI_GRAPHQL_COMPILE=0
    schema: GuanxiSchema  # the schema behind ``fast``


@pytest.fixture
async def pair(runtime: Runtime, tenant_id: uuid.UUID, admin_key: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    await use_tenant(runtime, tenant_id)
    monkeypatch.delenv("GUANXI_GRAPHQL_COMPILE", raising=False)
    monkeypatch.setenv("GUANXI_GRAPHQL_SQL", "0")  # these tests pin the compiled plans (the SQL layer: test_sqlgen.py)
    fast_app = create_app(runtime)
    monkeypatch.setenv("GUANXI_GRAPHQL_COMPILE", "0")
    plain_app = create_app(runtime)
    monkeypatch.delenv("GUANXI_GRAPHQL_COMPILE")
    assert fast_app.state.schema.compile_operations and not plain_app.state.schema.compile_operations
    auth = {"Authorization": f"Bearer {admin_key}"}
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast_app), base_url="http://t", headers=auth) as fast,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain_app), base_url="http://t", headers=auth) as plain,
    ):
        yield Pair(fast, plain, fast_app.state.schema)


async def _post(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None) -> bytes:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.content


async def twice(p: Pair, query: str, variables: dict[str, Any] | None = None, second: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run on the fast app twice (the second run may use other variables) and on the plain app;
    the bodies must be byte-identical. Returns the second body."""
    first = await _post(p.fast, query, variables)
    assert first == await _post(p.plain, query, variables)
    again = second if second is not None else variables
    body = await _post(p.fast, query, again)
    assert body == await _post(p.plain, query, again)
    if second is None:
        assert body == first
    decoded: dict[str, Any] = json.loads(body)
    return decoded


async def _seed(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await test_prefetch._seed(runtime, tenant_id)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        stages = await pipelines.stages_of(tx.session, (await pipelines.default_pipeline(tx.session)).id)
        page = await customers_page(tx)
        for i, c in enumerate(page):
            await customers.set_stage(tx, c, stages[1 + i % 2].key, reason=f"r{i}")
            if i % 2:
                await customers.set_stage(tx, c, stages[3].key)
            await tasks.create_task(tx, tasks.TaskInput(customer_id=c, title=f"extra {i}"))
            await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=c, channel="wecom", kind="message_out", text=f"out {i}")
            )


async def customers_page(tx: Any) -> list[uuid.UUID]:
    from guanxi.core.services import queries

    rows, _ = await queries.list_customers(tx.session, flt=None, order=queries.CustomerOrder.CREATED_AT_DESC, first=10, after=None)
    return [r.id for r in rows]


NESTED = """query Nested($n: Int) { customers(first: $n) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node {
    __typename id name: displayName company phones attributes createdAt
    stageHistory { __typename id fromStage { key name } toStage { key position category } reason rule actor { name } }
    tasks(includeDone: true) { title done overdue dueAt assignee { email } customer { id displayName owner { name } } }
    interactions(first: 3) { edges { node { kind direction payload customer { id stage { key } tags { label } } } } }
    consents { channel status }
  } }
} }"""

QUERIES: list[tuple[str, dict[str, Any] | None]] = [
    (PAGE, {"n": 3}),
    (
        "query($n: Int, $kinds: [String!]) { customers(first: 10) { edges { node { ...Detail } } } }" + test_prefetch.FRAGMENT,
        {"n": 2, "kinds": ["message_in"]},
    ),
    (NESTED, {"n": 10}),
    (
        "{ a: customers(first: 2, orderBy: NAME_ASC) { edges { node { id ... on Customer { displayName x: displayName } } } }"
        " b: customers(first: 1) { edges { node { displayName } } } __typename }",
        None,
    ),
    ("{ pipelines { __typename id key name isDefault stages { key name position category } } }", None),
    ("{ funnel { pipeline { key } steps { stage { key } current reached conversionFromPrevious } } }", None),
    ("{ users { id email name role team active } tags { id name group label color } }", None),
    ("query One($id: ID!) { customer(id: $id) { id displayName identities { channel externalId profile createdAt } } }", {"id": "ONE"}),
]


async def test_second_run_uses_the_compiled_plan_and_answers_identically(runtime: Runtime, tenant_id: uuid.UUID, pair: Pair) -> None:
    await _seed(runtime, tenant_id)
    some_id = json.loads(await _post(pair.plain, "{ customers(first: 1) { edges { node { id } } } }", None))["data"]["customers"]["edges"][
        0
    ]["node"]["id"]
    for query, given in QUERIES:
        variables = {"id": some_id} if given == {"id": "ONE"} else given
        before = dict(pair.schema.compiled_stats)
        body = await twice(pair, query, variables)
        assert not body.get("errors"), body
        stats = pair.schema.compiled_stats
        assert stats["compiled"] == before["compiled"] + 1, (query, stats)
        assert stats["fast"] == before["fast"] + 1, (query, stats)
        assert stats["fallback"] == before["fallback"]
    nested = await twice(pair, NESTED, {"n": 10})
    nodes = [e["node"] for e in nested["data"]["customers"]["edges"]]
    assert any(c["fromStage"] for n in nodes for c in n["stageHistory"])
    assert all(t["customer"]["id"] == n["id"] for n in nodes for t in n["tasks"])
    assert all(e["node"]["customer"]["id"] == n["id"] for n in nodes for e in n["interactions"]["edges"])


async def test_errors_on_the_second_run_fall_back_and_are_shaped(runtime: Runtime, tenant_id: uuid.UUID, pair: Pair) -> None:
    await _seed(runtime, tenant_id)
    query = "query($n: Int) { customers(first: $n) { edges { node { id displayName } } } }"
    stats = pair.schema.compiled_stats
    body = await twice(pair, query, {"n": 2}, second={"n": 1000})
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE"
    assert stats["fallback"] == 1 and stats["fast"] == 0
    body = await twice(pair, query, {"n": 2}, second={"n": "many"})
    assert body["errors"][0]["extensions"]["code"]
    assert body["data"] is None
    assert stats["fallback"] == 2 and stats["fast"] == 1  # the first run of this pair was compiled already
    # and the plan still serves good requests
    await twice(pair, query, {"n": 3})
    assert stats["fast"] == 3


async def test_not_compiled(runtime: Runtime, tenant_id: uuid.UUID, pair: Pair) -> None:
    await _seed(runtime, tenant_id)
    stats = pair.schema.compiled_stats
    await twice(pair, "query($x: Boolean!) { customers(first: 2) { edges { node { id displayName @include(if: $x) } } } }", {"x": True})
    await twice(pair, "{ __schema { queryType { name } } }")
    await twice(pair, "{ customers(first: 1, after: 123) { edges { node { id } } } }")  # invalid: never compiled
    assert stats["fast"] == 0 and stats["compiled"] == 0
    assert stats["not_compilable"] == 2


async def test_statement_count_is_constant_on_the_fast_path(runtime: Runtime, tenant_id: uuid.UUID, pair: Pair) -> None:
    await test_sql_statements._seed(runtime, tenant_id, 12)
    await _post(pair.fast, "{ pipelines { key } }", None)
    await _post(pair.plain, "{ pipelines { key } }", None)

    async def count(client: httpx.AsyncClient, n: int) -> int:
        with count_statements(runtime.engine) as seen:
            await _post(client, PAGE, {"n": n})
        return len(seen)

    plain = {n: await count(pair.plain, n) for n in (3, 12)}
    await _post(pair.fast, PAGE, {"n": 3})  # compiles
    fast_before = pair.schema.compiled_stats["fast"]
    fast = {n: await count(pair.fast, n) for n in (3, 12)}
    assert pair.schema.compiled_stats["fast"] == fast_before + 2
    assert fast[3] == fast[12] == plain[3] == plain[12] <= 6, (fast, plain)


def test_kill_switch(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_schema(runtime).compile_operations  # type: ignore[attr-defined]
    assert not build_schema(runtime, compile_operations=False).compile_operations  # type: ignore[attr-defined]
    monkeypatch.setenv("GUANXI_GRAPHQL_COMPILE", "0")
    assert not build_schema(runtime).compile_operations  # type: ignore[attr-defined]


# -- a toy schema for the value edge cases ---------------------------------------------------------


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


BATCHES: list[list[int]] = []


async def _load(keys: list[int]) -> list[int]:
    BATCHES.append(list(keys))
    return [k * 10 for k in keys]


@strawberry.type
class Item:
    n: int
    label: str | None
    ratio: float
    colour: Colour
    flag: bool | None
    big: int | None
    tags: list[str]

    @strawberry.field
    async def loaded(self, info: strawberry.Info) -> int:
        result: int = await info.context["loader"].load(self.n)
        return result

    @strawberry.field
    def twice(self, times: int = 2) -> list[int]:
        return [self.n] * times


TAGS: Any = ("a", "b")  # a tuple for a list field: graphql-core takes any iterable


def _items(big: int | None = None) -> list[Item]:
    return [
        Item(n=i, label=None if i % 2 else f"l{i}", ratio=i, colour=Colour.RED if i % 2 else Colour.BLUE, flag=None, big=big, tags=TAGS)
        for i in range(5)
    ]


@strawberry.type
class ToyQuery:
    @strawberry.field
    def items(self, info: strawberry.Info) -> list[Item]:
        return info.context["items"]

    @strawberry.field
    async def later(self) -> list[Item]:
        await asyncio.sleep(0)
        return _items()


def _toy(compile_operations: bool) -> GuanxiSchema:
    return GuanxiSchema(query=ToyQuery, execution_context_class=FastLeafExecutionContext, compile_operations=compile_operations)


TOY = (
    "{ items { __typename n label ratio colour flag big tags loaded twice t3: twice(times: 3) } later { n loaded ...F } }"
    " fragment F on Item { ratio }"
)


async def test_toy_values_match_graphql_core() -> None:
    fast, plain = _toy(True), _toy(False)

    async def run(schema: GuanxiSchema, big: int | None) -> Any:
        result = await schema.execute(TOY, context_value={"items": _items(big), "loader": DataLoader(load_fn=_load)})
        return json.dumps(result.data), [e.formatted for e in result.errors or []]

    expected = await run(plain, None)
    assert json.loads(expected[0])["items"][1]["ratio"] == 1.0 and '"ratio": 1.0' in expected[0]
    assert await run(fast, None) == expected  # compiles
    BATCHES.clear()
    assert await run(fast, None) == expected  # compiled plan
    assert fast.compiled_stats["fast"] == 1
    assert BATCHES == [[0, 1, 2, 3, 4]], BATCHES  # one batch for every item of both lists, not one per item
    # a value graphql-core refuses (Int out of 32 bits): the plan falls back, errors are graphql-core's
    huge = await run(fast, 2**40)
    assert huge == await run(plain, 2**40)
    assert huge[1] and fast.compiled_stats["fallback"] == 1
