"""The testing kit's own fixtures (``guanxi.testing.plugin``), as a plugin's tests use them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar

from guanxi.core.runtime import Runtime
from guanxi.testing import GraphQL
from guanxi.testing.plugin import write_config


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    return {"loyalty": {"points_per_purchase": 3}}


@pytest.mark.plugins("loyalty")
async def test_plugin_config_reaches_the_enabled_plugin(runtime: Runtime) -> None:
    assert runtime.enabled_plugins == ["loyalty"]
    assert runtime.plugin_settings("loyalty").points_per_purchase == 3


@pytest.mark.plugins("loyalty")
async def test_app_client_and_graphql_act_in_the_tests_tenant(
    runtime: Runtime, tenant_id: uuid.UUID, app: Litestar, client: httpx.AsyncClient, graphql: GraphQL
) -> None:
    assert app.state.runtime is runtime
    assert await runtime.tenant_id() == tenant_id
    assert (await client.get("/loyalty/ping")).json() == {"plugin": "loyalty"}
    body = await graphql("{ loyaltyPointsPerPurchase }")
    assert body["data"] == {"loyaltyPointsPerPurchase": 3}
    failed = await graphql("{ noSuchField }", ok=False)
    assert failed["errors"]


def test_plugin_config_is_written_as_toml(tmp_path: Any) -> None:
    import tomllib

    config = {"x": {"s": 'quote " and \\ back', "n": 2, "f": 0.5, "b": True, "l": ["a", 1], "t": {"k": "v"}}}
    path = write_config(tmp_path / "c.toml", config)
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"plugins": config}
