"""Page prefetching: look at what a query selects under ``edges { node { … } }`` and load it
for the whole page in one statement per nested list, before any nested resolver runs.

The nested resolvers then return plain values synchronously (no coroutine, future or
DataLoader round per object), which is most of the cost of a GraphQL page in Python. Anything
not prefetched (aliases with other arguments, fields added by plugins) still resolves through
the DataLoaders.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from guanxi.graphql.pagination import check_page_size
from guanxi.graphql.types import Customer, CustomerFieldValue, Identity, Stage, StageChange, Tag, Task, User


def _flatten(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for sel in selections:
        if isinstance(sel, SelectedField):
            yield sel
        elif isinstance(sel, FragmentSpread | InlineFragment):
            yield from _flatten(sel.selections)


def child_fields(selections: Iterable[Selection], name: str) -> list[SelectedField]:
    """The fields selected under every occurrence of ``name`` (fragments flattened)."""
    out: list[SelectedField] = []
    for sel in _flatten(selections):
        if sel.name == name:
            out.extend(_flatten(sel.selections))
    return out


def node_fields(info: Info) -> dict[str, SelectedField]:
    """Fields selected on ``edges.node`` of the connection this resolver returns; the first
    occurrence of a field name wins (aliases of it resolve through the loaders)."""
    root = next(iter(_flatten(info.selected_fields)))
    edges = child_fields(info.selected_fields, root.name)
    nodes = child_fields(edges, "edges")
    wanted: dict[str, SelectedField] = {}
    for f in child_fields(nodes, "node"):
        wanted.setdefault(f.name, f)
    return wanted


def mentions(selections: Iterable[Selection], name: str) -> bool:
    """Whether a field called ``name`` is selected anywhere under ``selections`` (any depth,
    fragments included)."""
    return any(f.name == name or mentions(f.selections, name) for f in _flatten(selections))


#: JSON columns of nested lists the page can leave out when no field of that name is selected
#: anywhere in the query (decoding them is a good share of a page's work).
LEAN_COLUMNS = ("payload", "profile")


def lean_columns(info: Info) -> frozenset[str]:
    """Which of :data:`LEAN_COLUMNS` the query under this resolver never selects."""
    return frozenset(c for c in LEAN_COLUMNS if not mentions(info.selected_fields, c))


async def materialize(
    ctx: Any, rows: Sequence[Any], wanted: dict[str, SelectedField], lean: frozenset[str] = frozenset()
) -> list[Customer]:
    """Build Customer objects for a page of rows with the selected nested data preloaded;
    ``lean``: JSON columns (:func:`lean_columns`) not to read for the page."""
    loaders = ctx.loaders
    ids = [r.id for r in rows]
    pre: dict[Any, dict[str, Any]] = {i: {} for i in ids}
    if "stage" in wanted:
        stages = await loaders.stages()
        built = {sid: Stage.from_model(s) for sid, s in stages.items()}
        for r in rows:
            pre[r.id]["stage"] = built.get(r.stage_id) if r.stage_id else None
    if "owner" in wanted:
        owner_ids = sorted({r.owner_id for r in rows if r.owner_id})
        users = {u.id: User.from_model(u) for u in await loaders.users_by_id(owner_ids) if u is not None} if owner_ids else {}
        for r in rows:
            pre[r.id]["owner"] = users.get(r.owner_id) if r.owner_id else None
    if ids and "tags" in wanted:
        found = await loaders.tags_of(ids)
        tags: dict[Any, Tag] = {}  # a tag on many customers of the page is built once
        for i in ids:
            pre[i]["tags"] = [tags.get(t.id) or tags.setdefault(t.id, Tag.from_model(t)) for t in found.get(i, [])]
    if ids and "identities" in wanted:
        found = await loaders.identities_of(ids, lean="profile" in lean)
        for i in ids:
            pre[i]["identities"] = [Identity.from_model(x) for x in found.get(i, [])]
    if ids and "stageHistory" in wanted:
        found = await loaders.stage_history_of(ids)
        for i in ids:
            pre[i]["stage_history"] = [StageChange.from_model(c, ctx) for c in found.get(i, [])]
    if ids and "fields" in wanted:
        values = await loaders.field_values_of(ids)
        for i in ids:
            pre[i]["fields"] = [CustomerFieldValue.build(d, v, ctx) for d, v in values.get(i, [])]
    if ids and "tasks" in wanted:
        found = await loaders.tasks_of(ids)
        for i in ids:
            pre[i]["tasks"] = [Task.from_model(t, ctx) for t in found.get(i, [])]
    field = wanted.get("interactions")
    if ids and field is not None and field.arguments.get("after") is None:
        settings = ctx.rt.settings.graphql
        # literal arguments arrive as their source text here (variables are already values)
        raw_first = field.arguments.get("first")
        size = check_page_size(int(raw_first) if raw_first is not None else None, settings.default_page_size, settings.max_page_size)
        kinds = field.arguments.get("kinds")
        kinds_key = tuple(sorted(kinds)) if kinds else None
        found = await loaders.recent_interactions_of(ids, size, kinds_key, lean="payload" in lean)
        for i in ids:
            pre[i]["interactions"] = ((size, kinds_key), found.get(i, []))
    return [Customer.from_row(r, ctx, pre[r.id]) for r in rows]
