"""Two levels of plugins: the deployment loads scoring, one tenant enables it and another does
not. The second tenant's operations that touch scoring (its fields, its filter input, its
ordering, in the document or in variables, on the compiled path too) are refused whole with
PLUGIN_DISABLED; its event hooks do not run for that tenant; the first tenant is unaffected."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import func, select

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.services.tenant_plugins import set_plugin_enabled
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.scoring.models import ScoringScore
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, api_key

pytestmark = pytest.mark.plugins("scoring")


class Tenant:
    def __init__(self, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
        self.id = tenant_id
        self.client = client

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        return cast(dict[str, Any], response.json())

    async def customer(self, runtime: Runtime, name: str) -> uuid.UUID:
        async with runtime.transaction(RequestContext(tenant_id=self.id)) as tx:
            cid = (await create_customer(tx, CustomerInput(display_name=name))).id
            await record_interaction(tx, InteractionInput(customer_id=cid, channel="web", kind="message_in"))
        return cid


@pytest.fixture
async def tenants(runtime: Runtime) -> AsyncIterator[tuple[Tenant, Tenant]]:
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=cast(Any, app))
    made = []
    for label in ("with", "without"):
        async with runtime.write_session(None) as session:
            tid = await create_tenant(session, f"{label}-{secrets.token_hex(4)}", f"Tenant {label} scoring")
        key = await api_key(runtime, tid, "admin")
        made.append((tid, httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers={"Authorization": f"Bearer {key}"})))
    async with runtime.transaction(RequestContext(tenant_id=made[1][0])) as tx:
        await set_plugin_enabled(tx, "scoring", False)
    try:
        yield Tenant(*made[0]), Tenant(*made[1])
    finally:
        for _, client in made:
            await client.aclose()


SCORE = "query($id: ID!) { customer(id: $id) { displayName score { total } } }"
FILTER_LITERAL = "{ customers(filter: {scoreGte: 0}) { totalCount } }"
FILTER_VARIABLE = "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }"
ORDER_LITERAL = "{ customers(orderBy: SCORE_DESC) { totalCount } }"
ORDER_VARIABLE = "query($o: CustomerOrder!) { customers(orderBy: $o) { totalCount } }"


def refused(body: dict[str, Any], coordinate: str) -> None:
    assert body.get("data") is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PLUGIN_DISABLED"
    assert coordinate in error["message"] and "scoring" in error["message"]


async def test_enabled_plugins_lists_each_tenants_own_choice(tenants: tuple[Tenant, Tenant]) -> None:
    with_scoring, without = tenants
    assert (await with_scoring.gql("{ enabledPlugins }"))["data"] == {"enabledPlugins": ["scoring"]}
    assert (await without.gql("{ enabledPlugins }"))["data"] == {"enabledPlugins": []}
    plugins = (await without.gql("{ tenantPlugins { name enabled } }"))["data"]["tenantPlugins"]
    assert plugins == [{"name": "scoring", "enabled": False}]


async def test_a_disabled_plugins_field_filter_and_ordering_are_refused_whole_also_as_variables(
    runtime: Runtime, tenants: tuple[Tenant, Tenant]
) -> None:
    with_scoring, without = tenants
    mine = await without.customer(runtime, "B-Wang")
    refused(await without.gql(SCORE, {"id": to_global_id("Customer", mine)}), "Customer.score")
    refused(await without.gql(FILTER_LITERAL), "CustomerFilter.scoreGte")
    refused(await without.gql(FILTER_VARIABLE, {"f": {"scoreGte": 0}}), "CustomerFilter.scoreGte")
    refused(await without.gql(ORDER_LITERAL), "CustomerOrder.SCORE_DESC")
    refused(await without.gql(ORDER_VARIABLE, {"o": "SCORE_DESC"}), "CustomerOrder.SCORE_DESC")
    # the same documents without the plugin's parts are fine
    assert (await without.gql(FILTER_VARIABLE, {"f": {"search": "B-"}}))["data"]["customers"]["totalCount"] == 1
    assert (await without.gql(ORDER_VARIABLE, {"o": "CREATED_AT_DESC"}))["data"]["customers"]["totalCount"] == 1
    # the tenant that enabled scoring uses all of it
    theirs = await with_scoring.customer(runtime, "A-Li")
    body = await with_scoring.gql(SCORE, {"id": to_global_id("Customer", theirs)})
    assert body["data"]["customer"]["score"]["total"] > 0, body
    for query, variables in ((FILTER_LITERAL, None), (FILTER_VARIABLE, {"f": {"scoreGte": 0}}), (ORDER_VARIABLE, {"o": "SCORE_DESC"})):
        assert (await with_scoring.gql(query, variables))["data"]["customers"]["totalCount"] == 1


async def test_the_compiled_path_refuses_a_disabled_plugin_too(runtime: Runtime, tenants: tuple[Tenant, Tenant]) -> None:
    """A query compiled for the tenant that enabled scoring is still refused for the other."""
    with_scoring, without = tenants
    theirs = await with_scoring.customer(runtime, "A-Li")
    for _ in range(3):  # the first run compiles, the next run the plan
        assert (await with_scoring.gql(SCORE, {"id": to_global_id("Customer", theirs)}))["data"]["customer"]["score"]
    mine = await without.customer(runtime, "B-Wang")
    refused(await without.gql(SCORE, {"id": to_global_id("Customer", mine)}), "Customer.score")


async def test_a_disabled_plugins_event_hooks_do_not_run_for_that_tenant(runtime: Runtime, tenants: tuple[Tenant, Tenant]) -> None:
    with_scoring, without = tenants
    await with_scoring.customer(runtime, "A-Li")
    await without.customer(runtime, "B-Wang")
    for tenant, expected in ((with_scoring, 1), (without, 0)):
        async with runtime.session(tenant.id) as session:
            assert (await session.execute(select(func.count()).select_from(ScoringScore))).scalar_one() == expected


async def test_enabling_an_unknown_plugin_names_it(tenants: tuple[Tenant, Tenant]) -> None:
    _, without = tenants
    mutation = "mutation($p: String!) { setPluginEnabled(plugin: $p, enabled: true) { plugin { name } errors { field code message } } }"
    [error] = (await without.gql(mutation, {"p": "loyalty"}))["data"]["setPluginEnabled"]["errors"]
    assert error["code"] == "VALIDATION" and error["field"] == "plugin"
    assert "'loyalty' is not installed" in error["message"] and "installed: scoring" in error["message"]
    body = await without.gql(mutation, {"p": "scoring"})
    assert body["data"]["setPluginEnabled"]["plugin"] == {"name": "scoring"}
    assert (await without.gql("{ enabledPlugins }"))["data"] == {"enabledPlugins": ["scoring"]}


async def test_a_change_reaches_another_process_when_its_copy_expires(
    runtime: Runtime, database_url: str, tenants: tuple[Tenant, Tenant], tmp_path: Any
) -> None:
    """Another process (a second runtime on the same database) trusts its copy for
    ``plugins.tenant_cache_s`` seconds, then reads the new choice."""
    _, without = tenants
    environ = {"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "scoring", "GUANXI__AUTH__SECRET": TEST_SECRET}
    config = tmp_path / "other.toml"
    config.write_text("", encoding="utf-8")
    other = Runtime.from_config(config, environ=environ)
    try:
        assert await other.plugin_enabled("scoring", without.id) is False
        async with runtime.transaction(RequestContext(tenant_id=without.id)) as tx:
            await set_plugin_enabled(tx, "scoring", True)
        assert await runtime.plugin_enabled("scoring", without.id) is True  # this process: at once
        assert await other.plugin_enabled("scoring", without.id) is False  # the other: its copy is fresh
        other._tenant_plugins = {t: (0.0, state) for t, (_, state) in other._tenant_plugins.items()}  # the copy expires
        assert await other.plugin_enabled("scoring", without.id) is True
    finally:
        await other.stop()


async def test_a_recompute_for_a_tenant_that_disabled_scoring_is_refused(runtime: Runtime, tenants: tuple[Tenant, Tenant]) -> None:
    from guanxi.core.base.errors import PluginDisabledError
    from guanxi.plugins.scoring.recompute import recompute_tenant

    with_scoring, without = tenants
    await without.customer(runtime, "B-Wang")
    with pytest.raises(PluginDisabledError, match="'scoring' is not enabled"):
        await recompute_tenant(runtime, without.id)
    assert (await recompute_tenant(runtime, with_scoring.id)).customers == 0
