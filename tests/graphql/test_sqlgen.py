"""GraphQL compiled to SQL (guanxi.graphql.sqlgen) answers exactly what the present path answers.

A differential test (hypothesis) generates queries over the compiled subset of the schema
(random field subsets, aliases, fragments, first/after, filters, orderings, variables), with
plugin fields on ``Customer`` (scoring, insights, sales: resolved by their batched resolvers and
merged into the database's JSON; wecom: disabled for the tenant, an error) and some outside it
(an uncompiled field, a bad cursor, a page too large, a plugin argument out of range, a forbidden
root field), and requires equal JSON from the app with the SQL layer and the app without it, for
an admin key and for a sales key (who sees only the customers they own). A second test walks every
statement the layer sends and requires the tenant predicate on every tenant table in it (and the
owner predicate for the sales key).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.domain import models as m
from guanxi.core.runtime import Runtime
from guanxi.core.services import consent, customers, interactions, merge, pipelines, tenant_plugins
from guanxi.core.storage.tenancy import _tenant_tables
from guanxi.graphql.schema import GuanxiSchema
from guanxi.testing.plugin import api_key
from tests.graphql import test_compiled
from tests.graphql.conftest import use_tenant

#: plugins adding fields to Customer (wecom is disabled for the test's tenant)
pytestmark = pytest.mark.plugins("scoring", "insights", "sales", "wecom")


@dataclass
class Sides:
    sql: dict[str, httpx.AsyncClient]  # by role: the app with the SQL layer
    plain: dict[str, httpx.AsyncClient]  # by role: GUANXI_GRAPHQL_SQL=0
    schema: GuanxiSchema
    cursors: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    owner_gid: str = ""


async def _seed(runtime: Runtime, tenant_id: uuid.UUID) -> uuid.UUID:
    """test_compiled's data (owner, tags, identities, tasks, timelines, stage moves) plus consents,
    a second pipeline's customer and a customer merged away; returns the owner (a sales user)."""
    await test_compiled._seed(runtime, tenant_id)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        owner = (await tx.session.execute(select(m.User).where(m.User.email == "o@x.com"))).scalar_one()
        owner.role = "sales"
        page = await test_compiled.customers_page(tx)
        for i, c in enumerate(page[:3]):
            await consent.set_consent(tx, c, "email" if i else "sms", "opted_out" if i % 2 else "opted_in", source=f"s{i}")
        a = await customers.create_customer(tx, customers.CustomerInput(display_name="Zed", company="Acme", phones=["+8613800000000"]))
        b = await customers.create_customer(tx, customers.CustomerInput(display_name="Zed twin", owner_id=owner.id))
        await interactions.record_interaction(tx, interactions.InteractionInput(customer_id=a.id, channel="sms", kind="note", text="é ✓"))
        await merge.merge_customers(tx, a.id, b.id)
        stages = await pipelines.stages_of(tx.session, (await pipelines.default_pipeline(tx.session)).id)
        await customers.set_stage(tx, page[0], stages[-1].key)
        return owner.id


@pytest.fixture
async def sides(runtime: Runtime, tenant_id: uuid.UUID, admin_key: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sides]:
    await use_tenant(runtime, tenant_id)
    owner = await _seed(runtime, tenant_id)
    # another tenant with the same shape of data: nothing of it may show
    async with runtime.write_session(None) as session:
        other = await pipelines.create_tenant(session, f"o-{uuid.uuid4().hex[:8]}", "Other")
    await test_compiled._seed(runtime, other)
    keys = {"admin": admin_key, "sales": await api_key(runtime, tenant_id, "sales", user_id=owner)}
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await tenant_plugins.set_plugin_enabled(tx, "wecom", False)
    monkeypatch.setenv("GUANXI_GRAPHQL_SQL", "0")
    plain_app = create_app(runtime)
    monkeypatch.delenv("GUANXI_GRAPHQL_SQL")
    sql_app = create_app(runtime)
    assert sql_app.state.schema.sql is not None and plain_app.state.schema.sql is None
    clients = []

    def client(app: Any, key: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers={"Authorization": f"Bearer {key}"})
        clients.append(c)
        return c

    s = Sides({r: client(sql_app, k) for r, k in keys.items()}, {r: client(plain_app, k) for r, k in keys.items()}, sql_app.state.schema)
    try:
        body = (await s.plain["admin"].post("/graphql", json={"query": "{ customers(first: 50) { edges { cursor } } }"})).json()
        s.cursors = [e["cursor"] for e in body["data"]["customers"]["edges"]]
        async with runtime.session(tenant_id) as session:
            s.stages = list((await session.execute(select(m.Stage.key))).scalars())
        s.owner_gid = __import__("guanxi.graphql.ids", fromlist=["to_global_id"]).to_global_id("User", owner)
        yield s
    finally:
        for c in clients:
            await c.aclose()


# -- query generation ------------------------------------------------------------------------------

SCALARS = {
    "Customer": ["id", "displayName", "company", "phones", "emails", "attributes", "source", "lastInteractionAt", "createdAt", "updatedAt"],
    "Stage": ["id", "key", "name", "position", "category", "archived", "__typename"],
    "User": ["id", "email", "name", "role", "team", "active"],
    "Tag": ["id", "name", "group", "label", "color"],
    "Identity": [
        "id",
        "channel",
        "externalId",
        "unionId",
        "nickname",
        "avatarUrl",
        "followerCount",
        "profile",
        "createdAt",
        "unreachableAt",
    ],
    "Interaction": ["id", "channel", "kind", "direction", "occurredAt", "text", "payload", "__typename"],
    "Task": ["id", "title", "notes", "dueAt", "doneAt", "createdAt", "done", "overdue"],
    "Consent": ["channel", "status", "source", "changedAt"],
    "PageInfo": ["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"],
}


@st.composite
def _fields(draw: Any, type_name: str, extra: list[str] | None = None) -> str:
    names = draw(st.lists(st.sampled_from(SCALARS[type_name] + (extra or [])), min_size=1, max_size=6, unique=True))
    out = []
    for n in names:
        alias = draw(st.sampled_from(["", "", "", "a_"]))
        out.append(f"{alias}{n}: {n}" if alias else n)
    return " ".join(out)


@st.composite
def plugin_fields(draw: Any) -> list[str]:
    """Plugins' fields on Customer, merged into the SQL page: some with arguments out of range
    (the resolver's error: the present path answers) and wecom's, disabled for the tenant."""
    out: list[str] = []
    if draw(st.booleans()):
        history = f" history(first: {draw(st.integers(1, 3))}) {{ total cause }}" if draw(st.booleans()) else ""
        components = " components { name value reasons }" if draw(st.booleans()) else ""
        alias = draw(st.sampled_from(["", "sc: "]))
        out.append(f"{alias}score {{ total updatedAt{components}{history} }}")
    if draw(st.booleans()):
        days = draw(st.sampled_from([1, 30, 365, 400]))  # 400: out of range, an error
        parts = draw(
            st.lists(
                st.sampled_from(
                    [
                        "sentiment { texts average negative alerts trend { day texts } }",
                        "channels { channel inbound lastAt }",
                        "activeHours { hour inbound }",
                        "tags { tag rule reason }",
                        f"lastTouches(first: {draw(st.sampled_from([1, 3, 0]))}) {{ channel kind direction occurredAt sentiment score }}",
                    ]
                ),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        out.append(f"insights(days: {days}) {{ {' '.join(parts)} }}")
    if draw(st.booleans()):
        out.append("poolHistory { pool action userId rule reason at }")
    if draw(st.integers(0, 7)) == 0:
        out.append("wecom { state addWay tags }")  # wecom is disabled for the tenant: PLUGIN_DISABLED
    return out


@dataclass
class Query:
    text: str
    variables: dict[str, Any]
    compiled: bool  # whether the SQL layer must answer it


@st.composite
def queries(draw: Any, cursors: list[str], stages: list[str], owner_gid: str) -> Query:
    variables: dict[str, Any] = {}
    declared: list[str] = []
    compiled = True

    def arg(name: str, value: Any, gql_type: str, literal: str) -> str:
        if draw(st.booleans()):
            var = f"v{len(declared)}"
            declared.append(f"${var}: {gql_type}")
            variables[var] = value
            return f"{name}: ${var}"
        return f"{name}: {literal}"

    node: list[str] = [draw(_fields("Customer"))]
    if draw(st.booleans()):
        node.append(f"stage {{ {draw(_fields('Stage'))} }}")
    if draw(st.booleans()):
        node.append(f"owner {{ {draw(_fields('User'))} }}")
    if draw(st.booleans()):
        node.append(f"tags {{ {draw(_fields('Tag'))} }}")
    if draw(st.booleans()):
        channel = draw(st.sampled_from([None, "wecom", "douyin"]))
        channel_arg = f'(channel: "{channel}")' if channel else ""
        node.append(f"identities{channel_arg} {{ {draw(_fields('Identity'))} }}")
    if draw(st.booleans()):
        n = draw(st.integers(0, 4))
        args: list[str] = [arg("first", n, "Int", str(n))]
        if draw(st.booleans()):
            kinds = draw(st.lists(st.sampled_from(["note", "message_in", "message_out"]), min_size=1, max_size=2, unique=True))
            args.append(arg("kinds", kinds, "[String!]", "[" + ", ".join(f'"{k}"' for k in kinds) + "]"))
        parts = []
        if draw(st.booleans()):
            parts.append("totalCount")
        if draw(st.booleans()):
            parts.append(f"pageInfo {{ {draw(_fields('PageInfo'))} }}")
        parts.append(f"edges {{ {'cursor ' if draw(st.booleans()) else ''}node {{ {draw(_fields('Interaction'))} }} }}")
        node.append(f"interactions({', '.join(args)}) {{ {' '.join(parts)} }}")
    if draw(st.booleans()):
        include = draw(st.sampled_from(["", "(includeDone: true)", "(includeDone: false)"]))
        assignee = f" assignee {{ {draw(_fields('User'))} }}" if draw(st.booleans()) else ""
        node.append(f"tasks{include} {{ {draw(_fields('Task'))}{assignee} }}")
    if draw(st.booleans()):
        node.append(f"consents {{ {draw(_fields('Consent'))} }}")
    if draw(st.integers(0, 9)) == 0:
        node.append("stageHistory { reason }")  # not compiled: the present path answers
        compiled = False
    node += draw(plugin_fields())
    body = " ".join(draw(st.permutations(node)))
    fragment = ""
    style = draw(st.sampled_from(["plain", "inline", "named"]))
    if style == "inline":
        body = f"... on Customer {{ {body} }}"
    elif style == "named":
        fragment = f" fragment F on Customer {{ {body} }}"
        body = "...F"

    root_args: list[str] = []
    first = draw(st.integers(0, 12))
    if draw(st.integers(0, 14)) == 0:
        first = 1000  # more than the largest page: an error, from the present path
    root_args.append(arg("first", first, "Int", str(first)))
    order = draw(st.sampled_from([None, "CREATED_AT_DESC", "CREATED_AT_ASC", "UPDATED_AT_DESC", "NAME_ASC", "LAST_INTERACTION_DESC"]))
    if order:
        root_args.append(arg("orderBy", order, "CustomerOrder!", order))
    if draw(st.integers(0, 3)) == 0 and cursors:
        after = draw(st.sampled_from([*cursors, "not-a-cursor"]))  # a cursor of another ordering is an error too
        root_args.append(arg("after", after, "String", f'"{after}"'))
    flt: dict[str, Any] = {}
    if draw(st.integers(0, 2)) == 0:
        choice = draw(st.sampled_from(["stages", "search", "unassigned", "channels", "createdAfter", "ownerIds", "tagsAny"]))
        if choice == "stages":
            flt["stages"] = draw(st.lists(st.sampled_from(stages), min_size=1, max_size=2, unique=True))
        elif choice == "search":
            flt["search"] = draw(st.sampled_from(["p", "P1", "zed", "x y", "%", "_"]))
        elif choice == "unassigned":
            flt["unassigned"] = draw(st.booleans())
        elif choice == "channels":
            flt["channels"] = [draw(st.sampled_from(["wecom", "douyin", "sms"]))]
        elif choice == "createdAfter":
            flt["createdAfter"] = (dt.datetime.now(dt.UTC) - dt.timedelta(days=draw(st.integers(0, 1)))).isoformat()
        elif choice == "ownerIds":
            flt["ownerIds"] = [draw(st.sampled_from([owner_gid, "bad-id"]))]
        else:
            flt["tagsAny"] = ["common"]  # needs a lookup: the present path answers
            compiled = False
        import json

        literal = "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in flt.items()) + "}"
        root_args.append(arg("filter", flt, "CustomerFilter", literal))

    conn: list[str] = []
    if draw(st.booleans()):
        conn.append("totalCount")
    if draw(st.booleans()):
        conn.append(f"pageInfo {{ {draw(_fields('PageInfo'))} }}")
    conn.append(f"edges {{ {'cursor ' if draw(st.booleans()) else ''}node {{ {body} }} }}")
    if draw(st.booleans()):
        conn.append("__typename")
    alias = draw(st.sampled_from(["", "list: "]))
    roots = [f"{alias}customers({', '.join(root_args)}) {{ {' '.join(draw(st.permutations(conn)))} }}"]
    if draw(st.integers(0, 5)) == 0:
        roots.append("second: customers(first: 2) { totalCount edges { node { id } } }")
    if draw(st.integers(0, 9)) == 0:
        roots.append("apiKeys { name }")  # admin only: a sales key gets FORBIDDEN, as today
        compiled = False
    head = f"query Q({', '.join(declared)})" if declared else "query Q"
    return Query(f"{head} {{ {' '.join(roots)} }}{fragment}", variables, compiled)


async def _post(client: httpx.AsyncClient, q: Query) -> Any:
    r = await client.post("/graphql", json={"query": q.text, "variables": q.variables, "operationName": "Q"})
    assert r.status_code == 200, r.text
    return r.json()


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_sql_answers_equal_the_present_path_for_random_queries_admin_and_sales(sides: Sides, data: Any) -> None:
    """Random queries over the compiled subset (and a few outside it) give equal JSON values with
    and without the SQL layer, for an admin and a sales key; a compiled query is answered by SQL
    from its second request on (its first runs the present path, which validates it)."""
    q = data.draw(queries(sides.cursors, sides.stages, sides.owner_gid))
    for role in ("admin", "sales"):
        want = await _post(sides.plain[role], q)
        first = await _post(sides.sql[role], q)
        before = sides.schema.sql.stats["sql"] if sides.schema.sql else 0
        again = await _post(sides.sql[role], q)
        answered_by_sql = sides.schema.sql is not None and sides.schema.sql.stats["sql"] > before
        assert first == want, q.text
        assert again == want, (role, q.text, q.variables)
        if q.compiled and "errors" not in want and "bad-id" not in str(q.variables) + q.text:
            assert answered_by_sql, (role, q.text, q.variables)
        if "errors" in want:
            assert not answered_by_sql


# -- tenant and owner predicates -------------------------------------------------------------------

_FROM = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)(?:\s+AS\s+(\w+))?", re.IGNORECASE)

WIDE = """query Q($a: String) { customers(first: 5, after: $a, filter: {unassigned: false}) { totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { id stage { key } owner { name } tags { label } identities { channel }
    interactions(first: 2) { totalCount pageInfo { hasNextPage startCursor endCursor } edges { cursor node { id text } } }
    tasks(includeDone: true) { title assignee { name } } consents { status } } } } }"""


def _unscoped_tables(sql: str, owners: bool) -> list[str]:
    """Each use of a tenant table in ``sql`` (``FROM t``, ``JOIN t AS a``) whose name or alias has
    no ``<alias>.tenant_id =`` predicate (and, with ``owners``, no owner predicate)."""
    tenant, owned, _ = _tenant_tables()
    missing = []
    plain_uses: dict[str, int] = {}
    for match in _FROM.finditer(sql):
        table, alias = match.group(1), match.group(2)
        if table not in tenant:
            continue
        name = alias or table
        if alias is None:
            plain_uses[table] = plain_uses.get(table, 0) + 1
        elif not re.search(rf"\b{name}\.tenant_id = ", sql):
            missing.append(f"{table} AS {alias}: tenant")
        if owners and table == "customers" and not re.search(rf"\b{name}\.owner_id IN \(", sql):
            missing.append(f"{name}: owner")
        if owners and table in owned and not re.search(rf"\b{name}\.customer_id IN \(SELECT customers\.id", sql):
            missing.append(f"{name}: owner")
    for table, uses in plain_uses.items():
        if len(re.findall(rf"(?<![\w.]){table}\.tenant_id = ", sql)) < uses:
            missing.append(f"{table}: tenant ({uses} uses)")
    return missing


async def test_every_tenant_table_of_a_generated_statement_carries_the_tenant_and_owner_predicates(runtime: Runtime, sides: Sides) -> None:
    """Each statement the SQL layer sends names every tenant table with the tenant predicate the
    chokepoint adds (and the owner predicate for a sales key): one statement per root field."""
    seen: list[str] = []

    def listen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    q = Query(WIDE + " ", {"a": sides.cursors[1]}, True)
    two = Query(
        "query Q { a: customers(first: 2) { edges { node { id tags { name } } } } b: customers(first: 1) { totalCount } }", {}, True
    )
    for role in ("admin", "sales"):
        for query in (q, two):
            await _post(sides.sql[role], query)  # the present path, which validates and plans
            event.listen(runtime.engine.sync_engine, "before_cursor_execute", listen)
            try:
                before = sides.schema.sql.stats["sql"]  # type: ignore[union-attr]
                body = await _post(sides.sql[role], query)
                assert sides.schema.sql.stats["sql"] == before + 1  # type: ignore[union-attr]
            finally:
                event.remove(runtime.engine.sync_engine, "before_cursor_execute", listen)
            assert "errors" not in body
            # the layer's statements build JSON; others (the key and the tenant's plugin choices,
            # read again when their caches expire) are not the layer's
            statements = [s for s in seen if re.search(r"\bjson_(object|build_object)\(", s)]
            assert len(statements) == (2 if query is two else 1), statements
            for sql in statements:
                assert _unscoped_tables(sql, owners=role == "sales") == [], sql
            seen.clear()


async def test_the_predicate_check_finds_a_missing_predicate() -> None:
    """The walker above fails a statement whose tenant table has no tenant predicate."""
    assert _unscoped_tables("SELECT 1 FROM customers AS c WHERE c.id = 1", owners=False) == ["customers AS c: tenant"]
    assert _unscoped_tables("SELECT 1 FROM identities WHERE identities.tenant_id = 1", owners=True) == ["identities: owner"]


async def test_errors_and_uncompiled_fields_come_from_the_present_path(sides: Sides) -> None:
    """A bad cursor, a page too large and a forbidden root field give today's errors; a field the
    layer does not compile (stageHistory) is answered by the present path."""
    cases = [
        Query('query Q { customers(first: 2, after: "nope") { edges { node { id } } } }', {}, False),
        Query("query Q($n: Int) { customers(first: $n) { edges { node { id } } } }", {"n": 100000}, False),
        Query("query Q { customers(first: 2) { edges { node { id stageHistory { reason } } } } }", {}, False),
    ]
    for q in cases:
        for role in ("admin", "sales"):
            for _ in range(2):
                assert await _post(sides.sql[role], q) == await _post(sides.plain[role], q)
    forbidden = Query("query Q { customers(first: 2) { edges { node { id } } } apiKeys { name } }", {}, False)
    got = await _post(sides.sql["sales"], forbidden)
    assert got == await _post(sides.plain["sales"], forbidden)
    assert got["errors"][0]["extensions"]["code"] == "FORBIDDEN"


PLUGIN_PAGE = """query Q($n: Int) { customers(first: $n) { totalCount edges { node { id displayName tags { name }
  score { total components { name value } } insights(days: 30) { sentiment { texts average } channels { channel inbound } }
  poolHistory { pool action } } } } }"""


async def test_a_page_with_plugin_fields_costs_a_fixed_number_of_statements(runtime: Runtime, sides: Sides) -> None:
    """A page selecting plugin fields is one SQL statement for the core part plus one batched
    statement per plugin aspect (scores with their components, sentiment, channels, pool moves), whatever the page
    size, and equals the present path's answer."""
    from guanxi.testing.sql import count_statements

    counts = {}
    for n in (1, 5):
        q = Query(PLUGIN_PAGE, {"n": n}, True)
        want = await _post(sides.plain["admin"], q)
        await _post(sides.sql["admin"], q)  # the present path: validates and plans
        before = sides.schema.sql.stats["sql"]  # type: ignore[union-attr]
        with count_statements(runtime.engine) as seen:
            got = await _post(sides.sql["admin"], q)
        assert sides.schema.sql.stats["sql"] == before + 1  # type: ignore[union-attr]
        assert got == want
        nodes = [e["node"] for e in got["data"]["customers"]["edges"]]
        assert len(nodes) == n
        assert any(node["score"] is not None for node in nodes), nodes
        assert any(node["insights"]["channels"] for node in nodes), nodes
        counts[n] = len(seen)
    # 1 (the page's JSON) + scores with their components + sentiment + channels + pool moves
    assert counts == {1: 5, 5: 5}, counts


async def test_only_the_placeholders_of_this_request_are_replaced() -> None:
    """A stored text shaped like a placeholder (another nonce) is sent as it is: the nonce is
    random per request, so stored text cannot pass for a plugin field's placeholder."""
    from guanxi.graphql.sqlgen.merge import merge_plugin_fields

    hex_id = uuid.uuid4().hex
    document = b'{"data":{"a":"0011223344556677:0:' + hex_id.encode() + b'"}}'
    assert await merge_plugin_fields(document, "8899aabbccddeeff", [], None, None) == document


async def test_a_merge_that_falls_back_waits_for_its_own_resolvers_only(sides: Sides) -> None:
    """A plugin field raising (insights' ``days`` out of range) while its siblings (scores, pool
    moves) query: the layer lets those siblings finish (none is cancelled mid-query) and answers
    through the present path, with its error, without waiting for anything else of the process:
    here another request's DataLoader batch that never ends (waiting for every batch of the
    process once hung the suite)."""
    import asyncio

    from strawberry.dataloader import DataLoader

    page = PLUGIN_PAGE.replace("insights(days: 30)", "insights(days: $d)").replace("query Q($n: Int)", "query Q($n: Int, $d: Int!)")
    await _post(sides.sql["admin"], Query(page, {"n": 5, "d": 30}, True))  # the present path: validates and plans
    q = Query(page, {"n": 5, "d": 400}, True)
    release = asyncio.Event()

    async def stuck(keys: list[int]) -> list[int]:
        await release.wait()
        return keys

    other = asyncio.ensure_future(DataLoader(load_fn=stuck).load(1))
    await asyncio.sleep(0.01)  # its batch is dispatched and waits
    try:
        before = sides.schema.sql.stats["fallback"]  # type: ignore[union-attr]
        got = await asyncio.wait_for(_post(sides.sql["admin"], q), 20)
        assert sides.schema.sql.stats["fallback"] > before  # type: ignore[union-attr]
    finally:
        release.set()
        assert await other == 1
    assert got == await _post(sides.plain["admin"], q)
    assert got["errors"][0]["extensions"]["code"] == "VALIDATION", got


async def test_failing_plugin_fields_leave_no_connection_to_the_garbage_collector(sides: Sides) -> None:
    """When a plugin field raises (an argument out of range), graphql-core answers while sibling
    resolvers (``totalCount``) may still run; once the operation is over they get no new session
    (``GraphQLContext.end``), so twenty such requests leave no pooled connection for the garbage
    collector (SQLAlchemy warns when it has to end one; enough of them exhausted the pool and
    made later requests wait 30 s and fail), on both paths."""
    import gc
    import warnings

    q = Query(PLUGIN_PAGE.replace("insights(days: 30)", "insights(days: 400)"), {"n": 5}, True)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(10):
            for side in (sides.plain, sides.sql):
                got = await _post(side["admin"], q)
                assert got["errors"][0]["extensions"]["code"] == "VALIDATION", got
        gc.collect()
    assert not [str(w.message) for w in caught if "non-checked-in connection" in str(w.message)]
