"""Per-tenant plugin settings: a tenant overrides the settings its plugin lets it (scoring's
weights, not its batch size), through GraphQL, validated with key paths, audited, read through
``runtime.plugin_settings(name, tenant_id)`` and applied to that tenant's scores only."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, api_key

pytestmark = pytest.mark.plugins("scoring", "referral")

SET = """mutation($p: String!, $s: JSON) {
  setPluginSettings(plugin: $p, settings: $s) { settings { plugin overrides effective } errors { field code message } } }"""
VIEW = "query($p: String!) { pluginSettings(plugin: $p) { plugin overridable overrides effective } }"
SCORE = "query($id: ID!) { customer(id: $id) { score { total } } }"
RULES = {"engagement": {"half_life_days": 30, "rules": [{"kind": "message_in", "points": 50}]}}


class Tenant:
    def __init__(self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
        self.runtime, self.id, self.client = runtime, tenant_id, client

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        return cast(dict[str, Any], response.json())

    async def score_of_one_message(self) -> float:
        async with self.runtime.transaction(RequestContext(tenant_id=self.id)) as tx:
            cid = (await create_customer(tx, CustomerInput(display_name="Li"))).id
            await record_interaction(tx, InteractionInput(customer_id=cid, channel="web", kind="message_in"))
        body = await self.gql(SCORE, {"id": to_global_id("Customer", cid)})
        return float(body["data"]["customer"]["score"]["total"])


@pytest.fixture
async def tenants(runtime: Runtime) -> AsyncIterator[tuple[Tenant, Tenant]]:
    transport = httpx.ASGITransport(app=cast(Any, create_app(runtime)))
    made = []
    for label in ("a", "b"):
        async with runtime.write_session(None) as session:
            tid = await create_tenant(session, f"{label}-{secrets.token_hex(4)}", label)
        key = await api_key(runtime, tid, "admin")
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers={"Authorization": f"Bearer {key}"})
        made.append(Tenant(runtime, tid, client))
    try:
        yield made[0], made[1]
    finally:
        for tenant in made:
            await tenant.client.aclose()


async def test_an_override_changes_that_tenants_scores_only(runtime: Runtime, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    body = await b.gql(SET, {"p": "scoring", "s": RULES})
    assert body["data"]["setPluginSettings"]["errors"] == []
    assert body["data"]["setPluginSettings"]["settings"]["overrides"] == {
        "engagement": {
            "half_life_days": 30.0,
            "rules": [{"kind": "message_in", "points": 50.0, "channel": None, "cap": None, "period": "day"}],
        }
    }
    score_a, score_b = await a.score_of_one_message(), await b.score_of_one_message()
    assert score_b - score_a == pytest.approx(45.0, abs=0.5)  # 50 points instead of 5 for the message
    assert runtime.plugin_settings("scoring", b.id).engagement.rules[0].points == 50
    assert runtime.plugin_settings("scoring", a.id).engagement.rules[0].points == 5
    assert runtime.plugin_settings("scoring").engagement.rules[0].points == 5  # the deployment's own
    view = (await b.gql(VIEW, {"p": "scoring"}))["data"]["pluginSettings"]
    assert "batch_size" not in view["overridable"] and "engagement" in view["overridable"]
    assert view["effective"]["engagement"]["rules"] == [
        {"kind": "message_in", "points": 50.0, "channel": None, "cap": None, "period": "day"}
    ]
    trail = (await b.gql('{ auditEvents(action: "tenant.plugin_settings") { changes } }'))["data"]["auditEvents"]
    assert trail[0]["changes"]["changed"] == ["engagement"] and trail[0]["changes"]["plugin"] == "scoring"
    # back to the deployment's settings
    assert (await b.gql(SET, {"p": "scoring", "s": None}))["data"]["setPluginSettings"]["errors"] == []
    await runtime.tenant_plugins(b.id)  # what every request and transaction does first
    assert runtime.plugin_settings("scoring", b.id).engagement.rules[0].points == 5


@pytest.mark.parametrize(
    ("plugin", "settings", "field", "words"),
    [
        ("scoring", {"engagement": {"half_life_days": -1}}, "settings.engagement.half_life_days", "Expected `float` > 0.0"),
        ("scoring", {"batch_size": 10}, "settings.batch_size", "cannot be changed by a tenant"),
        ("referral", {"public_url": "http://169.254.169.254/"}, "settings.public_url", "cannot be changed by a tenant"),
        ("referral", {"font_path": "/etc/passwd"}, "settings.font_path", "cannot be changed by a tenant"),
        ("scoring", {"engagement": {"rules": [{"kind": "message_in"}]}}, "settings.engagement.rules[0]", "missing required field `points`"),
        (
            "scoring",
            {
                "stage_rules": [
                    {"from_stage": "lead", "to_stage": "mql", "min_score": 1},
                    {"from_stage": "lead", "to_stage": "sql", "min_score": 2},
                ]
            },
            "settings",
            "a second rule from stage 'lead'",
        ),
        ("loyalty", {}, "plugin", "'loyalty' is not installed"),
    ],
)
async def test_a_bad_override_is_refused_with_its_key_path_and_the_old_one_kept(
    runtime: Runtime, tenants: tuple[Tenant, Tenant], plugin: str, settings: dict[str, Any], field: str, words: str
) -> None:
    _, b = tenants
    assert (await b.gql(SET, {"p": "scoring", "s": RULES}))["data"]["setPluginSettings"]["errors"] == []
    [error] = (await b.gql(SET, {"p": plugin, "s": settings}))["data"]["setPluginSettings"]["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION", field), error
    assert words in error["message"], error["message"]
    await runtime.tenant_plugins(b.id)
    assert runtime.plugin_settings("scoring", b.id).engagement.rules[0].points == 50


async def test_an_override_reaches_another_process_when_its_copy_expires(
    runtime: Runtime, database_url: str, tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    _, b = tenants
    config = tmp_path / "other.toml"
    config.write_text("", encoding="utf-8")
    environ = {"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "scoring,referral", "GUANXI__AUTH__SECRET": TEST_SECRET}
    other = Runtime.from_config(config, environ=environ)
    try:
        await other.tenant_plugins(b.id)
        assert other.plugin_settings("scoring", b.id).engagement.rules[0].points == 5
        assert (await b.gql(SET, {"p": "scoring", "s": RULES}))["data"]["setPluginSettings"]["errors"] == []
        await other.tenant_plugins(b.id)
        assert other.plugin_settings("scoring", b.id).engagement.rules[0].points == 5  # its copy is still fresh
        other._tenant_plugins = {t: (0.0, state) for t, (_, state) in other._tenant_plugins.items()}  # the copy expires
        await other.tenant_plugins(b.id)
        assert other.plugin_settings("scoring", b.id).engagement.rules[0].points == 50
    finally:
        await other.stop()


def test_a_plugin_may_not_declare_tenant_settings_its_config_lacks(database_url: str, tmp_path: Path) -> None:
    import msgspec

    from guanxi.core.base.errors import PluginError
    from guanxi.core.hooks.manager import hookimpl

    class Settings(msgspec.Struct, frozen=True):
        weight: float = 1.0

    class Tenanted(msgspec.Struct, frozen=True):
        api_base_url: str = ""

    class Plugin:
        @hookimpl
        def guanxi_config_schema(self) -> type[msgspec.Struct]:
            return Settings

        @hookimpl
        def guanxi_tenant_settings(self) -> type[msgspec.Struct]:
            return Tenanted

    config = tmp_path / "x.toml"
    config.write_text("", encoding="utf-8")
    with pytest.raises(PluginError, match=r"tenant settings \['api_base_url'\] are not fields of its config section"):
        Runtime.from_config(config, environ={"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "odd"}, extra_plugins={"odd": Plugin()})
