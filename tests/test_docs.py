"""The reference docs cannot fall behind the code.

``docs/plugins/hooks.md`` must hold every hook spec with its exact signature and no hook that no
longer exists; ``docs/operations.md`` must list every configuration key with its type and default.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guanxi.core.base.config import CoreSettings
from guanxi.core.hooks import specs as hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS_DOC = DOCS / "plugins" / "hooks.md"
OPERATIONS_DOC = DOCS / "operations.md"
HEADING = re.compile(r"^### `(?P<name>[^`]+)`$", re.MULTILINE)


def hook_specs() -> dict[str, Callable[..., Any]]:
    """Every function of ``guanxi.core.hooks.specs`` that pluggy treats as a ``guanxi`` hook spec."""
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if name.startswith("guanxi_") and inspect.isfunction(fn) and hasattr(fn, "guanxi_spec")
    }


def render_signature(fn: Callable[..., Any]) -> str:
    """``def name(arg: Type, ...) -> Return`` with the annotations exactly as written in the
    source (the module uses ``from __future__ import annotations``, so they are strings)."""
    sig = inspect.signature(fn)
    params = []
    for param in sig.parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {param.annotation}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}"
        params.append(text)
    out = f"def {fn.__name__}({', '.join(params)})"
    if sig.return_annotation is not inspect.Signature.empty:
        out += f" -> {sig.return_annotation}"
    return out


def doc_sections(text: str) -> dict[str, str]:
    """``### `name` `` heading text → the section under it (up to the next heading of any level)."""
    sections: dict[str, str] = {}
    for match in HEADING.finditer(text):
        rest = text[match.end() :]
        following = re.search(r"^#{1,3} ", rest, re.MULTILINE)
        sections[match.group("name")] = rest[: following.start()] if following else rest
    return sections


def test_hookspecs_are_found_and_signatures_render_from_source() -> None:
    """The discovery and rendering the doc checks rely on see real hooks with string annotations."""
    specs = hook_specs()
    assert "guanxi_stage_changed" in specs
    assert render_signature(specs["guanxi_stage_changed"]) == "def guanxi_stage_changed(runtime: Runtime, event: StageChanged) -> Any"
    assert render_signature(specs["guanxi_config_schema"]) == "def guanxi_config_schema() -> type[msgspec.Struct] | None"


def test_every_hook_has_a_heading_and_its_exact_signature_in_the_hooks_doc() -> None:
    """Each hook spec has a ``### `name` `` heading whose section holds its signature verbatim."""
    text = HOOKS_DOC.read_text(encoding="utf-8")
    sections = doc_sections(text)
    missing_heading = []
    wrong_signature = []
    for name, fn in sorted(hook_specs().items()):
        headings = [m for m in HEADING.finditer(text) if m.group("name") == name]
        if len(headings) != 1:
            missing_heading.append(f"{name} ({len(headings)} headings)")
            continue
        signature = render_signature(fn)
        if f"```python\n{signature}\n" not in sections[name]:
            wrong_signature.append(signature)
    assert not missing_heading, f"hooks without exactly one heading in {HOOKS_DOC.name}: {missing_heading}"
    assert not wrong_signature, f"signatures missing or different under their heading: {wrong_signature}"


def test_hooks_doc_mentions_no_hook_that_does_not_exist() -> None:
    """A removed or renamed hook must leave the docs: every ``guanxi_*`` name in the hooks doc,
    and every ``###`` heading, is a current hook spec."""
    text = HOOKS_DOC.read_text(encoding="utf-8")
    specs = hook_specs()
    unknown_names = sorted(set(re.findall(r"\bguanxi_[a-z0-9_]+\b", text)) - set(specs))
    unknown_headings = sorted(set(HEADING.findall(text)) - set(specs))
    assert not unknown_names, f"{HOOKS_DOC.name} names hooks that do not exist: {unknown_names}"
    assert not unknown_headings, f"{HOOKS_DOC.name} has headings for hooks that do not exist: {unknown_headings}"


def config_keys(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[tuple[str, msgspec.structs.FieldInfo]]:
    """Every leaf key of the configuration as ``section.key`` (top-level keys bare)."""
    for field in msgspec.structs.fields(struct):
        key = f"{prefix}{field.encode_name}"
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            yield from config_keys(field.type, f"{key}.")
        else:
            yield key, field


def toml_default(field: msgspec.structs.FieldInfo) -> str:
    """A field's default as it would be written in guanxi.toml."""
    value = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {v}" for k, v in value.items()) + " }" if value else "{}"
    return str(value)


def type_name(tp: Any) -> str:
    """The documented type: constraints (``Annotated``) dropped, ``Literal[...]`` of strings as str."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return type_name(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return "str"
    if origin is list:
        return f"list[{type_name(typing.get_args(tp)[0])}]"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"dict[{type_name(key)}, {type_name(value)}]"
    return tp.__name__ if isinstance(tp, type) and not getattr(tp, "__args__", None) else str(tp)


@pytest.mark.parametrize("key", [key for key, _ in config_keys(CoreSettings)])
def test_every_config_key_is_in_the_operations_reference_with_its_type_and_default(key: str) -> None:
    """``docs/operations.md`` has a table row ``| `section.key` | type | `default` | meaning |``
    for every field of ``CoreSettings`` and its sections, matching the code."""
    field = dict(config_keys(CoreSettings))[key]
    rows = [line for line in OPERATIONS_DOC.read_text(encoding="utf-8").splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"{OPERATIONS_DOC.name} needs exactly one reference row for `{key}`, found {len(rows)}"
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == type_name(field.type), f"`{key}`: documented type {cells[1]!r}, code has {type_name(field.type)!r}"
    assert cells[2] == f"`{toml_default(field)}`", f"`{key}`: documented default {cells[2]!r}, code has `{toml_default(field)}`"
    assert len(cells) >= 4 and cells[3], f"`{key}`: the row says nothing about what the key means"
