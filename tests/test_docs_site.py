"""The docs site's MkDocs hooks (scripts/mkdocs_hooks.py): generated reference pages join the
navigation when they exist, and links that leave the docs folder still make sense on the site.
CI builds the whole site with ``mkdocs build --strict`` (make docs-build)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_join_the_nav_only_when_they_exist(tmp_path: Path) -> None:
    h = hooks()
    config = {"docs_dir": str(tmp_path), "nav": [{"Home": "index.md"}]}
    assert h.on_config(dict(config))["nav"] == [{"Home": "index.md"}]
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "wecom.md").write_text("# WeCom plugin API\n", encoding="utf-8")
    (tmp_path / "reference" / "index.md").write_text("# Reference\n", encoding="utf-8")
    (tmp_path / "reference" / "scoring.md").write_text("no heading\n", encoding="utf-8")
    nav = h.on_config({"docs_dir": str(tmp_path), "nav": [{"Home": "index.md"}]})["nav"]
    assert nav[-1] == {
        "Reference": [{"Reference": "reference/index.md"}, {"Scoring": "reference/scoring.md"}, {"WeCom plugin API": "reference/wecom.md"}]
    }


def test_links_out_of_the_docs_become_repository_paths_and_folders_their_readme(caplog: pytest.LogCaptureFixture) -> None:
    h = hooks()
    docs = ROOT / "docs"
    page = docs / "plugins" / "guide.md"
    text = (
        "[the fixture](../../tests/fixtures/loyalty_plugin/) and [Pigeon](../examples/guanxi-pigeon/) and [ops](../operations.md#metrics)"
    )
    assert h.rewrite_links(text, page, docs, ROOT) == (
        "the fixture (`tests/fixtures/loyalty_plugin/` in the repository) and "
        "[Pigeon](../examples/guanxi-pigeon/README.md) and [ops](../operations.md#metrics)"
    )
    with caplog.at_level(logging.WARNING):
        h.rewrite_links("[gone](../../no/such/file.py)", page, docs, ROOT)
    assert "does not exist" in caplog.text


def test_every_docs_page_is_in_the_site_nav() -> None:
    """A page left out of mkdocs.yml's nav would be unreachable from the site's menu."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md") if "reference" not in p.parts)
    missing = [p for p in pages if f" {p}" not in nav]
    assert missing == []


def test_every_plugin_page_is_described_in_the_docs_index() -> None:
    """docs/index.md is the map of the docs for readers of the repository: every plugin page has
    its row there (a new plugin's page was once missing from it)."""
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs" / "plugins").glob("*.md"))
    missing = [p for p in pages if f"](plugins/{p})" not in index]
    assert missing == []
