"""The plugin guide's Pigeon walk-through quotes the example plugin's real code.

Every ``python``/``toml`` block of section 12 of ``docs/plugins/guide.md`` must appear verbatim in
one of the files of ``docs/examples/guanxi-pigeon/``; the example's own tests (the channel
contract suite) run with the rest of the suite (``testpaths``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins" / "guide.md"
EXAMPLE = ROOT / "docs" / "examples" / "guanxi-pigeon"
BLOCK = re.compile(r"^```(?:python|toml)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def pigeon_blocks() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## 12. A channel plugin") : text.index("## The rules")]
    return [m.group("body") for m in BLOCK.finditer(section)]


def example_sources() -> dict[str, str]:
    files = [*EXAMPLE.glob("guanxi_pigeon/*.py"), *EXAMPLE.glob("tests/*.py"), EXAMPLE / "pyproject.toml"]
    return {str(f.relative_to(EXAMPLE)): f.read_text(encoding="utf-8") for f in files}


def test_the_walkthrough_quotes_every_file_of_the_plugin() -> None:
    blocks = pigeon_blocks()
    assert len(blocks) >= 15
    sources = example_sources()
    for name in ("pyproject.toml", "guanxi_pigeon/settings.py", "guanxi_pigeon/plugin.py"):
        assert sources[name].rstrip("\n") + "\n" in blocks, f"{name} should be quoted whole"


@pytest.mark.parametrize("block", pigeon_blocks(), ids=lambda b: b.strip().splitlines()[0][:50])
def test_each_quoted_block_is_the_example_code_verbatim(block: str) -> None:
    assert any(block in source for source in example_sources().values()), f"not found verbatim in the example:\n{block}"


def test_the_pigeon_plugin_is_installed_with_its_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [ep for ep in entry_points(group="guanxi") if ep.name == "pigeon"]
    assert found.value == "guanxi_pigeon.plugin"
    (kit,) = [ep for ep in entry_points(group="pytest11") if ep.name == "guanxi"]
    assert kit.value == "guanxi.testing.plugin"


def test_the_guide_states_pigeons_line_count_as_the_counting_script_finds_it() -> None:
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("count_plugin_lines", ROOT / "scripts" / "count_plugin_lines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    per_file = module.count(EXAMPLE)
    total, without_contacts = sum(per_file.values()), sum(per_file.values()) - per_file["guanxi_pigeon/contacts.py"]
    pattern = r"Pigeon counts (\d+) lines of plugin code.*?\((\d+) without `contacts.py`\)"
    stated = re.search(pattern, GUIDE.read_text(encoding="utf-8"), re.S)
    assert stated is not None
    assert (int(stated.group(1)), int(stated.group(2))) == (total, without_contacts)
    assert "tests/test_pigeon.py" not in per_file, "tests are not plugin code"
