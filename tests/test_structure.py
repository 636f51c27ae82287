"""The structure drawn from the code's imports: no import cycles inside ``guanxi`` (imports
inside functions count; imports under ``TYPE_CHECKING`` do not), and the old deep import paths
of moved core modules still work for one release, with a deprecation warning."""

from __future__ import annotations

import importlib
import sys
import warnings

import grimp
import pytest

import guanxi
from guanxi.core import MOVED


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_guanxi_has_no_import_cycles() -> None:
    graph = grimp.build_graph("guanxi", exclude_type_checking_imports=True, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="a")
    graph.add_import(importer="b", imported="c")
    assert _cycles(graph) == [["a", "b"]]


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_core_path_still_imports_with_a_deprecation_warning(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__ is not None and module.__spec__.name == new  # the alias does not rename the module
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    sys.modules.pop(old, None)


def test_the_public_surface_keeps_every_name_it_had() -> None:
    """``guanxi.__all__`` before the restructuring; names were added, none removed."""
    before = {
        "Actor", "Attachment", "Capabilities", "CapabilityError", "Channel", "ConfigError", "ConflictError", "DeliveryError",
        "DeliveryResult", "GuanxiError", "InboundEvent", "IngestResult", "NotFoundError", "OutboundMessage",
        "PermanentDeliveryError", "PluginError", "ProfileInput", "RequestContext", "Runtime", "TransientDeliveryError", "Tx",
        "ValidationError", "hookimpl", "ingest",
    }  # fmt: skip
    assert before <= set(guanxi.__all__)
    assert all(hasattr(guanxi, name) for name in guanxi.__all__)
