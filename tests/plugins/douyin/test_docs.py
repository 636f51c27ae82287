"""docs/plugins/douyin.md cannot fall behind the code: its GraphQL examples validate against the
schema and cover every field the plugin adds, every config key is in the reference table, its
webhook bodies are accepted by the route as shown, and its CLI example is what the CLI prints."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import graphql
import httpx
import msgspec
import pytest
from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.graphql.schema import build_schema
from guanxi.plugins.douyin import service
from guanxi.plugins.douyin.settings import DouyinSettings
from tests.plugins.douyin.conftest import WEBHOOK, connect, headers, settle, use_tenant_slug
from tests.plugins.douyin.fake_douyin import CLIENT_KEY, FakeDouyin

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "douyin.md"
TEXT = DOC.read_text(encoding="utf-8")
GRAPHQL = re.compile(r"^```graphql\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
JSON = re.compile(r"^```json\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
CLI = re.compile(r"^```text\n\$ guanxi (?P<args>.*?)\n(?P<out>.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "douyin"})
    return build_schema(runtime)._schema


def blocks() -> list[str]:
    return [m.group("body") for m in GRAPHQL.finditer(TEXT)]


@pytest.mark.parametrize("text", blocks())
def test_every_documented_operation_validates_against_the_schema(text: str, schema: graphql.GraphQLSchema) -> None:
    errors = graphql.validate(schema, graphql.parse(text))
    assert not errors, [e.message for e in errors]


def test_every_douyin_query_mutation_and_customer_field_has_an_example(schema: graphql.GraphQLSchema) -> None:
    text = "\n".join(blocks())
    mutation, query = schema.mutation_type, schema.query_type
    assert mutation is not None and query is not None
    for name in [n for n in [*mutation.fields, *query.fields] if "douyin" in n.lower()] + ["douyin"]:
        assert re.search(rf"\b{name}\b", text), f"no example uses {name}"


@pytest.mark.parametrize("key", list(msgspec.structs.fields(DouyinSettings)), ids=lambda f: f.name)
def test_every_config_key_is_in_the_reference_table(key: msgspec.structs.FieldInfo) -> None:
    assert f"| `{key.name}` |" in TEXT


@pytest.mark.plugins("douyin")
async def test_the_documented_webhook_bodies_and_cli_output_are_what_the_plugin_does(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, fake_douyin: FakeDouyin
) -> None:
    fake_douyin.users["biz-1"] = {"nickname": "Acme官方号"}
    await connect(runtime, tenant_id, "biz-1")
    bodies = [m.group("body").replace("awxxxxxxxxxxxxxx", CLIENT_KEY).encode() for m in JSON.finditer(TEXT)]
    assert len(bodies) == 3
    check, message, lead = bodies
    response = await anonymous_client.post(WEBHOOK, content=check, headers={"content-type": "application/json"})
    assert response.json() == {"challenge": 12345}
    for n, body in enumerate((message, lead)):
        json.loads(body)  # valid JSON as printed
        for _ in range(3):
            response = await anonymous_client.post(WEBHOOK, content=body, headers=headers(body, f"doc-{n}"))
            assert response.status_code == 200, response.text
    await settle(runtime, tenant_id)
    await service.refresh_fans(runtime, RequestContext(tenant_id=tenant_id), "biz-1")
    (example,) = CLI.finditer(TEXT)
    await use_tenant_slug(runtime, tenant_id)
    cli_runtime = Runtime(runtime.settings, runtime.pm, {"douyin": runtime.plugin_settings("douyin")})
    args = [a for a in example.group("args").split() if a not in ("--tenant", "acme")]
    result = await asyncio.to_thread(CliRunner().invoke, build_cli(cli_runtime), args, obj=cli_runtime)
    assert result.exit_code == 0, result.output
    assert result.output == example.group("out")
