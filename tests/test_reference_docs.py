"""The plugin-surface reference (docs/reference/) is generated from the docstrings and cannot fall
behind them: a stale page, or a public name, fixture, contract attribute or helper without a
docstring (or ``#:`` comment), fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_reference"] = module
    spec.loader.exec_module(module)
    return module


def test_every_reference_page_is_up_to_date_with_the_docstrings(generator: ModuleType) -> None:
    for name, text in generator.pages().items():
        on_disk = (ROOT / "docs" / "reference" / name).read_text(encoding="utf-8")
        assert on_disk == text, f"docs/reference/{name} is out of date: run python scripts/gen_reference.py"
    assert sorted(p.name for p in (ROOT / "docs" / "reference").glob("*.md")) == sorted(generator.pages())


def test_every_public_name_fixture_and_contract_attribute_is_documented(generator: ModuleType) -> None:
    assert generator.undocumented() == []


def test_the_check_finds_an_undocumented_contract_attribute(generator: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from guanxi.testing.contract import ChannelContract

    monkeypatch.setattr(ChannelContract, "new_knob", 3, raising=False)
    assert generator.undocumented() == ["ChannelContract.new_knob (no #: comment)"]


def test_every_name_a_plugin_imports_has_a_heading(generator: ModuleType) -> None:
    import guanxi
    from guanxi import models, testing, webhooks

    pages = generator.pages()
    text = "\n".join(pages.values())
    for module in (guanxi, models, testing, webhooks):
        for name in module.__all__:
            assert f"\n### {name}\n" in text, f"{module.__name__}.{name} has no heading in docs/reference/"
    contract = pages["testing.md"]
    expected = ("`recipient`", "'contract-recipient'", "`malformed_bodies`", "`ChannelContract.message`", "`ChannelContract.interactions`")
    for documented in expected:
        assert documented in contract


def test_the_guide_links_the_reference() -> None:
    guide = (ROOT / "docs" / "plugins" / "guide.md").read_text(encoding="utf-8")
    assert "../reference/index.md" in guide and "../reference/testing.md#channelcontract" in guide
