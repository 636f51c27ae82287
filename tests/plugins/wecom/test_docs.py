"""docs/plugins/wecom.md cannot fall behind the code: its GraphQL examples validate against the
schema with the plugin enabled and cover every field the plugin adds, and every config key is in
the reference table."""

from __future__ import annotations

import re
from pathlib import Path

import graphql
import msgspec
import pytest

from guanxi.core.runtime import Runtime
from guanxi.graphql.schema import build_schema
from guanxi.plugins.wecom.settings import CorpSettings, WecomSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "wecom.md"
BLOCK = re.compile(r"^```graphql\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "wecom"})
    return build_schema(runtime)._schema


def blocks() -> list[str]:
    return [m.group("body") for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("text", blocks())
def test_every_documented_operation_validates_against_the_schema(text: str, schema: graphql.GraphQLSchema) -> None:
    errors = graphql.validate(schema, graphql.parse(text))
    assert not errors, [e.message for e in errors]


def test_every_wecom_query_mutation_and_customer_field_has_an_example(schema: graphql.GraphQLSchema) -> None:
    text = "\n".join(blocks())
    mutation, query = schema.mutation_type, schema.query_type
    assert mutation is not None and query is not None
    for name in [n for n in [*mutation.fields, *query.fields] if "wecom" in n.lower()] + ["wecom"]:
        assert re.search(rf"\b{name}\b", text), f"no example uses {name}"


@pytest.mark.parametrize(
    "key",
    [f for f in msgspec.structs.fields(WecomSettings)] + [f for f in msgspec.structs.fields(CorpSettings)],
    ids=lambda f: f.name,
)
def test_every_config_key_is_in_the_reference_table(key: msgspec.structs.FieldInfo) -> None:
    table = DOC.read_text(encoding="utf-8")
    prefix = "corps[]." if key in msgspec.structs.fields(CorpSettings) else ""
    assert f"| `{prefix}{key.name}` |" in table
