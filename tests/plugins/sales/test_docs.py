"""docs/plugins/sales.md cannot fall behind the code: its GraphQL examples validate against the
schema with the plugin enabled, and the handover example runs."""

from __future__ import annotations

import re
from pathlib import Path

import graphql
import pytest

from guanxi import Runtime
from guanxi.graphql.schema import build_schema
from tests.plugins.sales.conftest import Team, new_customer

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "sales.md"
BLOCK = re.compile(r"^```graphql\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.plugins("sales")


def blocks() -> list[str]:
    return [m.group("body") for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "sales"})
    return build_schema(runtime)._schema


@pytest.mark.parametrize("text", blocks())
def test_every_documented_operation_validates_against_the_schema(text: str, schema: graphql.GraphQLSchema) -> None:
    errors = graphql.validate(schema, graphql.parse(text))
    assert not errors, [e.message for e in errors]


async def test_the_documented_handover_runs(runtime: Runtime, team: Team) -> None:
    (operation,) = [b for b in blocks() if "handOverCustomers" in b]
    await new_customer(runtime, team.tenant_id, "A", owner=team.users["li"])
    body = await team.call["admin"](operation, {"input": {"fromUserId": team.gid("li"), "toUserId": team.gid("wu"), "reason": "离职"}})
    assert body["data"]["handOverCustomers"] == {
        "result": {"customers": 1, "tasks": 0, "poolHolds": 0, "plugins": {}},
        "errors": [],
    }
