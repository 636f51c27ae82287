"""The plugin system: entry-point loading, blocking, start-up checks, config sections, CLI."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from guanxi import hookimpl
from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConfigError, PluginError
from guanxi.core.runtime import Runtime


def make(database_url: str, plugins: str = "", extra: dict[str, object] | None = None, **env: str) -> Runtime:
    return Runtime.from_config(environ={"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": plugins, **env}, extra_plugins=extra)


def test_installed_but_disabled_plugin_is_blocked_and_not_registered(database_url: str) -> None:
    rt = make(database_url)
    assert rt.pm.is_blocked("loyalty")
    assert rt.pm.get_plugin("loyalty") is None


def test_enabled_plugin_loads_through_its_entry_point(database_url: str) -> None:
    rt = make(database_url, "loyalty")
    plugin = rt.pm.get_plugin("loyalty")
    assert plugin is not None and plugin.__name__ == "guanxi_loyalty.plugin"
    assert rt.plugin_settings("loyalty").points_per_purchase == 10


def test_enabled_but_missing_plugin_fails_at_start_naming_it(database_url: str) -> None:
    with pytest.raises(
        PluginError,
        match=r"plugin 'wechat_pay' is enabled in `\$.plugins.enabled` but not installed "
        r"\(installed plugins: automation, douyin, email, insights, loyalty, materials, pigeon, referral, sales, scoring, wecom\)",
    ):
        make(database_url, "wechat_pay")


def test_misspelled_hook_name_fails_at_start(database_url: str) -> None:
    class Typo:
        @hookimpl
        def guanxi_customer_creatd(self, event: object) -> None: ...

    with pytest.raises(PluginError, match="guanxi_customer_creatd"):
        make(database_url, "typo", {"typo": Typo()})


def test_plugin_config_error_names_the_key_path(database_url: str) -> None:
    with pytest.raises(ConfigError, match=r"`\$.plugins.loyalty.points_per_purchase`: Expected `int`"):
        make(database_url, "loyalty", GUANXI__PLUGINS__LOYALTY__POINTS_PER_PURCHASE="lots")


def test_section_for_a_plugin_that_is_not_enabled_is_rejected(database_url: str) -> None:
    with pytest.raises(ConfigError, match=r"`\$.plugins.loyalty`: section for plugin 'loyalty', which is not enabled"):
        make(database_url, "", GUANXI__PLUGINS__LOYALTY__POINTS_PER_PURCHASE="5")


def test_plugins_command_lists_versions_and_hooks_as_json(database_url: str) -> None:
    rt = make(database_url, "loyalty")
    result = CliRunner().invoke(build_cli(rt), ["plugins", "--json"], obj=rt)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (loyalty,) = report["enabled"]
    assert loyalty["version"] == "0.3.1"
    assert set(loyalty["hooks"]) >= {
        "guanxi_graphql",
        "guanxi_routes",
        "guanxi_cli",
        "guanxi_migrations",
        "guanxi_config_schema",
        "guanxi_interaction_recorded",
    }
    assert next(p for p in report["installed"] if p["name"] == "loyalty")["enabled"] is True


def test_plugin_cli_commands_exist_only_when_enabled(database_url: str) -> None:
    with_plugin = make(database_url, "loyalty")
    assert CliRunner().invoke(build_cli(with_plugin), ["loyalty", "rules"], obj=with_plugin).exit_code == 0
    without = make(database_url)
    assert CliRunner().invoke(build_cli(without), ["loyalty", "rules"], obj=without).exit_code == 2


def test_schema_with_a_plugin_differs_only_by_its_parts(database_url: str) -> None:
    from guanxi.graphql.schema import build_schema

    base = build_schema(make(database_url)).as_str()
    extended = build_schema(make(database_url, "loyalty")).as_str()
    import difflib

    added = [
        line[1:].strip()
        for line in difflib.unified_diff(base.splitlines(), extended.splitlines(), lineterm="", n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    removed = [
        line
        for line in difflib.unified_diff(base.splitlines(), extended.splitlines(), lineterm="", n=0)
        if line.startswith("-") and not line.startswith("---")
    ]
    assert removed == []
    assert [a for a in added if a and not a.startswith('"""')] == ["loyaltyPoints: Int!", "loyaltyPointsPerPurchase: Int!"]
    # and building the extended schema did not leak into a later core-only schema
    assert build_schema(make(database_url)).as_str() == base


def test_two_plugins_defining_the_same_field_fail_with_both_named(database_url: str) -> None:
    import strawberry

    from guanxi.graphql.contrib import GraphQLContribution
    from guanxi.graphql.schema import build_schema

    @strawberry.type
    class Clash:
        @strawberry.field
        def customers(self) -> int:
            return 1

    class Clasher:
        @hookimpl
        def guanxi_graphql(self) -> GraphQLContribution:
            return GraphQLContribution(query=Clash)

    with pytest.raises(PluginError, match=r"Query\.customers is defined by both core and clasher"):
        build_schema(make(database_url, "clasher", {"clasher": Clasher()}))


@pytest.mark.plugins("loyalty")
async def test_plugin_event_hook_runs_after_commit_and_its_field_shows_the_result(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    from guanxi.core.services import customers, interactions

    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="Buyer"))
    for i in range(3):
        async with runtime.transaction(ctx) as tx:
            await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=c.id, channel="web", kind="purchase", dedupe_key=f"order-{i % 2}")
            )
    from guanxi.graphql.ids import to_global_id

    query = "query($id: ID!) { customer(id: $id) { loyaltyPoints } }"
    body = (await client.post("/graphql", json={"query": query, "variables": {"id": to_global_id("Customer", c.id)}})).json()
    assert body == {"data": {"customer": {"loyaltyPoints": 20}}}  # two distinct orders
    assert (await client.get("/loyalty/ping")).json() == {"plugin": "loyalty"}


async def test_plugin_route_is_absent_when_disabled(client: httpx.AsyncClient) -> None:
    assert (await client.get("/loyalty/ping")).status_code == 404


async def test_a_failing_event_implementation_does_not_stop_the_others(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from guanxi.core.migrate import upgrade
    from guanxi.core.services import customers
    from guanxi.core.services.pipelines import create_tenant

    seen: list[str] = []

    class Broken:
        @hookimpl
        def guanxi_customer_created(self) -> None:
            raise RuntimeError("sync boom")

    class BrokenAsync:
        @hookimpl
        async def guanxi_customer_created(self) -> None:
            raise RuntimeError("async boom")

    class Good:
        @hookimpl(trylast=True)
        async def guanxi_customer_created(self, event: Any) -> None:
            seen.append(event.customer.display_name)

    rt = make(database_url, "good,broken,broken_async", {"good": Good(), "broken": Broken(), "broken_async": BrokenAsync()})
    await upgrade(rt)
    try:
        async with rt.session(None) as s, s.begin():
            tid = await create_tenant(s, f"iso-{uuid.uuid4().hex[:8]}", "T")
        async with rt.transaction(RequestContext(tenant_id=tid)) as tx:
            await customers.create_customer(tx, customers.CustomerInput(display_name="Still told"))
    finally:
        await rt.stop()
    assert seen == ["Still told"]
    assert "plugin 'broken' failed in guanxi_customer_created" in caplog.text
    assert "plugin 'broken_async' failed in guanxi_customer_created" in caplog.text


async def test_an_invalid_owner_answer_is_skipped_and_the_next_plugin_asked(database_url: str) -> None:
    from guanxi.core.migrate import upgrade
    from guanxi.core.services import customers, users
    from guanxi.core.services.pipelines import create_tenant

    picked: dict[str, uuid.UUID] = {}

    class Wrong:
        @hookimpl(tryfirst=True)
        def guanxi_assign_owner(self) -> uuid.UUID:
            return uuid.uuid4()  # nobody

    class Right:
        @hookimpl
        async def guanxi_assign_owner(self) -> uuid.UUID:
            return picked["user"]

    rt = make(database_url, "wrong,right", {"wrong": Wrong(), "right": Right()})
    await upgrade(rt)
    try:
        async with rt.session(None) as s, s.begin():
            tid = await create_tenant(s, f"own-{uuid.uuid4().hex[:8]}", "T")
        ctx = RequestContext(tenant_id=tid)
        async with rt.transaction(ctx) as tx:
            picked["user"] = (await users.create_user(tx, email="s@x.com", name="Sales")).id
            c = await customers.create_customer(tx, customers.CustomerInput(display_name="Lead"))
        assert c.owner_id == picked["user"]
    finally:
        await rt.stop()


async def test_shutdown_runs_in_the_reverse_of_startup_order(database_url: str) -> None:
    calls: list[str] = []

    def plugin(name: str) -> object:
        class P:
            @hookimpl
            def guanxi_startup(self) -> None:
                calls.append(f"start {name}")

            @hookimpl
            async def guanxi_shutdown(self) -> None:
                calls.append(f"stop {name}")

        return P()

    rt = make(database_url, "a,b", {"a": plugin("a"), "b": plugin("b")})
    await rt.start()
    await rt.stop()
    starts = [c for c in calls if c.startswith("start")]
    stops = [c for c in calls if c.startswith("stop")]
    assert [s.split()[1] for s in stops] == [s.split()[1] for s in reversed(starts)]


@pytest.mark.plugins("loyalty")
async def test_plugin_rows_follow_a_merge_through_the_merged_event(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi_loyalty.models import LoyaltyAccount

    from guanxi.core.services import customers, interactions, merge

    ctx = RequestContext(tenant_id=tenant_id)
    async with runtime.transaction(ctx) as tx:
        a = await customers.create_customer(tx, customers.CustomerInput(display_name="A"))
        b = await customers.create_customer(tx, customers.CustomerInput(display_name="B"))
    for cid in (a.id, b.id, b.id):
        async with runtime.transaction(ctx) as tx:
            await interactions.record_interaction(tx, interactions.InteractionInput(customer_id=cid, channel="web", kind="purchase"))
    async with runtime.transaction(ctx) as tx:
        await merge.merge_customers(tx, a.id, b.id)
    async with runtime.session(tenant_id) as s:
        survivor = await s.get(LoyaltyAccount, (tenant_id, a.id))
        merged = await s.get(LoyaltyAccount, (tenant_id, b.id))
    assert (survivor.points, merged.points) == (30, 0)  # type: ignore[union-attr]
