"""Every GraphQL example of docs/plugins/materials.md is valid against the schema with the plugin
enabled, and the settings block names exactly the settings."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from guanxi.plugins.materials.settings import MaterialsSettings
from guanxi.testing import GraphQL

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "materials.md"
BLOCKS = re.findall(r"^```graphql\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


@pytest.mark.plugins("materials")
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split("{")[1].strip()[:40])
async def test_each_graphql_example_validates_against_the_schema(graphql: GraphQL, block: str) -> None:
    variables = {name: "x" for name in re.findall(r"\$([a-z]+): ID!", block)}  # a bad id, not a validation error
    body = await graphql(block, variables, ok=False)
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "GRAPHQL_VALIDATION" not in codes, body["errors"]


def test_the_settings_block_lists_every_setting() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("[plugins.materials]") : text.index("```", text.index("[plugins.materials]"))]
    documented = set(re.findall(r"^([a-z_]+) =", block, re.MULTILINE))
    assert documented == {f.name for f in msgspec.structs.fields(MaterialsSettings)}
    assert len(BLOCKS) >= 6
