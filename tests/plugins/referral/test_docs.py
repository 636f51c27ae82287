"""Every GraphQL example of docs/plugins/referral.md is valid against the schema with the plugin
enabled, and the config reference names exactly the settings."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from guanxi.plugins.referral.settings import ReferralSettings
from guanxi.testing import GraphQL

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "referral.md"
BLOCKS = re.findall(r"^```graphql\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


@pytest.mark.plugins("referral")
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split("{")[1].strip()[:40])
async def test_each_graphql_example_validates_against_the_schema(graphql: GraphQL, block: str) -> None:
    body = await graphql(block.replace("…", "x"), ok=False)
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "GRAPHQL_VALIDATION" not in codes, body["errors"]


def test_the_config_reference_lists_every_setting() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Configuration reference") : text.index("## Campaigns")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    assert documented == {f.name for f in msgspec.structs.fields(ReferralSettings)}
    assert len(BLOCKS) >= 5
