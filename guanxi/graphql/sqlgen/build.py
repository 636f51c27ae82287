"""Build the one statement of a ``customers`` root field from its selection (:class:`Sel`).

Every table is reached through a mapped class (``Customer`` in the page, ``aliased()`` copies
for the nested lists), so the tenant session adds the tenant predicate, and for a caller limited
to some owners the owner predicate, to every one of them, as for any other statement. The page
is a materialized CTE (``LIMIT first + 1``, so ``hasNextPage`` needs no second query); each nested
list is a correlated subquery aggregating JSON objects in the list's order.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from graphql import FieldNode, GraphQLError, GraphQLField, get_argument_values
from sqlalchemy import ColumnElement, Integer, Select, String, Text, and_, bindparam, case, cast, false, func, literal, null, or_, select
from sqlalchemy.orm import aliased

from guanxi.core.domain import models as m
from guanxi.core.services import queries
from guanxi.graphql.enums import ConsentStatus, Direction, Role, StageCategory
from guanxi.graphql.ids import from_global_id
from guanxi.graphql.pagination import check_page_size, page_window
from guanxi.graphql.sqlgen.dialect import Dialect
from guanxi.graphql.sqlgen.plan import NotCompilableError, Sel

_STAGE_CATEGORY = {m.value: m.name for m in StageCategory}
_ROLE = {m.value: m.name for m in Role}
_DIRECTION = {m.value: m.name for m in Direction}
_CONSENT = {m.value: m.name for m in ConsentStatus}

#: filter fields compiled into the statement (tag and custom-field filters need lookups first;
#: plugins' filter fields are theirs): anything else given falls back
_FILTER_FIELDS = {
    "stages": "stages",
    "pipelines": "pipelines",
    "ownerIds": "owner_ids",
    "unassigned": "unassigned",
    "channels": "channels",
    "createdAfter": "created_after",
    "createdBefore": "created_before",
    "search": "search",
}


class Fallback(Exception):  # noqa: N818 - a signal, not an error
    """This request (its argument values) is not compiled: run the present path."""


@dataclass
class Build:
    """What one statement is built with: the dialect, the request's variables and settings."""

    dialect: Dialect
    variables: Any  # graphql-core's coerced variable values
    default_page_size: int
    max_page_size: int
    now: dt.datetime
    #: the random part of this request's placeholders of plugin fields (:mod:`.merge`)
    nonce: str = ""
    #: the customer row nested lists belong to: their derived tables correlate to it
    corr: Any = None

    def args(self, sel: Sel) -> dict[str, Any]:
        field_def: GraphQLField | None = sel.field_def
        if field_def is None or not field_def.args:
            return {}
        node: FieldNode = sel.node
        try:
            return get_argument_values(field_def, node, self.variables)
        except GraphQLError as exc:
            raise Fallback(str(exc)) from None

    # -- objects ------------------------------------------------------------------------------
    def _obj(self, sel: Sel, type_name: str, value_of: Any) -> ColumnElement[Any]:
        pairs = []
        for child in sel.children:
            if child.name == "__typename":
                pairs.append((child.key, literal(type_name, String)))
            else:
                pairs.append((child.key, value_of(child)))
        return self.dialect.obj(pairs)

    def _list(self, json: Any, where: list[Any], order: list[Any], limit: int | None = None) -> ColumnElement[Any]:
        """A JSON array of ``json`` for the rows matching ``where`` in ``order`` (first ``limit``)."""
        rn = self.dialect.position(order)
        inner = select(json.label("gx_j"), rn).where(*where).order_by(*order).correlate(self.corr)
        if limit is not None:
            inner = inner.limit(limit)
        derived = inner.subquery("gx_list")
        return self.dialect.embed(select(self.dialect.array(derived.c.gx_j, derived.c.gx_rn)).scalar_subquery())

    def _one(self, json: Any, where: list[Any]) -> ColumnElement[Any]:
        return self.dialect.embed(select(json).where(*where).scalar_subquery())

    def stage(self, sel: Sel, stage_id: Any) -> ColumnElement[Any]:
        s = aliased(m.Stage)
        d = self.dialect

        def value(c: Sel) -> Any:
            match c.name:
                case "id":
                    return d.global_id("Stage", s.id)
                case "category":
                    return d.enum(s.category, _STAGE_CATEGORY)
                case "archived":
                    return d.true_false(s.archived_at.is_not(None))
                case _:
                    return getattr(s, c.name)

        return self._one(self._obj(sel, "Stage", value), [s.id == stage_id])

    def user(self, sel: Sel, user_id: Any) -> ColumnElement[Any]:
        u = aliased(m.User)
        d = self.dialect

        def value(c: Sel) -> Any:
            match c.name:
                case "id":
                    return d.global_id("User", u.id)
                case "role":
                    return d.enum(u.role, _ROLE)
                case "active":
                    return d.boolean_column(u.active)
                case _:
                    return getattr(u, c.name)

        return self._one(self._obj(sel, "User", value), [u.id == user_id])

    def tags(self, sel: Sel, customer_id: Any) -> ColumnElement[Any]:
        ct, t = aliased(m.CustomerTag), aliased(m.Tag)
        d = self.dialect

        def value(c: Sel) -> Any:
            match c.name:
                case "id":
                    return d.global_id("Tag", t.id)
                case "group":
                    return func.nullif(t.group_name, "")
                case "label":
                    return func.coalesce(func.nullif(t.group_name, "") + literal("/", String) + t.name, t.name)
                case _:
                    return getattr(t, c.name)

        json = self._obj(sel, "Tag", value)
        rn = d.position([t.group_name, t.name])
        inner = (
            select(json.label("gx_j"), rn)
            .select_from(ct)
            .join(t, and_(t.tenant_id == ct.tenant_id, t.id == ct.tag_id))
            .where(ct.customer_id == customer_id)
            .order_by(t.group_name, t.name)
            .correlate(self.corr)
            .subquery("gx_list")
        )
        return d.embed(select(d.array(inner.c.gx_j, inner.c.gx_rn)).scalar_subquery())

    def identities(self, sel: Sel, customer_id: Any) -> ColumnElement[Any]:
        i = aliased(m.Identity)
        d = self.dialect
        channel = self.args(sel).get("channel")

        def value(c: Sel) -> Any:
            match c.name:
                case "id":
                    return d.global_id("Identity", i.id)
                case "externalId":
                    return i.external_id
                case "unionId":
                    return i.union_id
                case "avatarUrl":
                    return i.avatar_url
                case "followerCount":
                    return i.follower_count
                case "profile":
                    return d.json_column(i.profile)
                case "createdAt":
                    return d.iso(i.created_at)
                case "unreachableAt":
                    return d.iso(i.unreachable_at)
                case _:
                    return getattr(i, c.name)

        where = [i.customer_id == customer_id]
        if channel is not None:
            where.append(i.channel == channel)
        return self._list(self._obj(sel, "Identity", value), where, [i.created_at, i.id])

    def interaction_node(self, sel: Sel, i: Any) -> ColumnElement[Any]:
        d = self.dialect

        def value(c: Sel) -> Any:
            match c.name:
                case "id":
                    return d.global_id("Interaction", i.id)
                case "direction":
                    return d.enum(i.direction, _DIRECTION)
                case "occurredAt":
                    return d.iso(i.occurred_at)
                case "payload":
                    return d.json_column(i.payload)
                case _:
                    return getattr(i, c.name)

        return self._obj(sel, "Interaction", value)

    def interactions(self, sel: Sel, customer_id: Any) -> ColumnElement[Any]:
        args = self.args(sel)
        if args.get("after") is not None or args.get("last") is not None or args.get("before") is not None:
            raise Fallback("timeline paging other than first")
        try:
            size = check_page_size(args.get("first"), self.default_page_size, self.max_page_size)
        except Exception as exc:
            raise Fallback(str(exc)) from None
        kinds = args.get("kinds")
        d = self.dialect

        def rows(alias: Any) -> list[Any]:
            where = [alias.customer_id == customer_id]
            if kinds:
                where.append(alias.kind.in_(list(kinds)))
            return where

        def order(alias: Any) -> list[Any]:
            return [alias.occurred_at.desc(), alias.id.desc()]

        def cursor(alias: Any) -> Any:
            return d.cursor("interactions", "t", d.iso(alias.occurred_at), alias.id)

        pairs: list[tuple[str, Any]] = []
        for c in sel.children:
            if c.name == "__typename":
                pairs.append((c.key, literal("InteractionConnection", String)))
            elif c.name == "totalCount":
                i = aliased(m.Interaction)
                pairs.append((c.key, select(func.count()).select_from(i).where(*rows(i)).scalar_subquery()))
            elif c.name == "edges":
                i = aliased(m.Interaction)

                def edge_value(e: Sel, i: Any = i) -> Any:
                    return cursor(i) if e.name == "cursor" else self.interaction_node(e, i)

                edge = self._obj(c, "InteractionEdge", edge_value)
                pairs.append((c.key, self._list(edge, rows(i), order(i), size) if size else self._empty()))
            elif c.name == "pageInfo":
                pairs.append((c.key, self._timeline_page_info(c, rows, order, cursor, size)))
        return d.obj(pairs)

    def _empty(self) -> ColumnElement[Any]:
        return self.dialect.json_column(literal("[]", String)) if self.dialect.name == "sqlite" else func.json_build_array()

    def _timeline_page_info(self, sel: Sel, rows: Any, order: Any, cursor: Any, size: int) -> ColumnElement[Any]:
        d = self.dialect
        pairs: list[tuple[str, Any]] = []
        for c in sel.children:
            if c.name == "__typename":
                pairs.append((c.key, literal("PageInfo", String)))
            elif c.name == "hasPreviousPage":
                pairs.append((c.key, d.true_false(false())))
            elif c.name == "hasNextPage":
                i = aliased(m.Interaction)
                probe = select(i.id).where(*rows(i)).order_by(*order(i)).limit(size + 1).correlate(self.corr).subquery("gx_probe")
                pairs.append((c.key, d.gt(select(func.count()).select_from(probe).scalar_subquery(), size)))
            elif c.name in ("startCursor", "endCursor"):
                if size == 0:
                    pairs.append((c.key, null()))
                    continue
                i = aliased(m.Interaction)
                ends_of = select(i.id, i.occurred_at, i.tenant_id, i.customer_id).where(*rows(i)).order_by(*order(i)).limit(size)
                page = ends_of.correlate(self.corr).subquery("gx_tl")
                p = aliased(m.Interaction, page)
                ends: list[Any] = [p.occurred_at.desc(), p.id.desc()] if c.name == "startCursor" else [p.occurred_at.asc(), p.id.asc()]
                pairs.append((c.key, select(cursor(p)).order_by(*ends).limit(1).scalar_subquery()))
        return d.obj(pairs)

    def tasks(self, sel: Sel, customer_id: Any) -> ColumnElement[Any]:
        t = aliased(m.Task)
        d = self.dialect
        include_done = bool(self.args(sel).get("include_done", self.args(sel).get("includeDone", False)))

        def value(c: Sel) -> Any:
            match c.name:
                case "id":
                    return d.global_id("Task", t.id)
                case "dueAt":
                    return d.iso(t.due_at)
                case "doneAt":
                    return d.iso(t.done_at)
                case "createdAt":
                    return d.iso(t.created_at)
                case "done":
                    return d.true_false(t.done_at.is_not(None))
                case "overdue":
                    return d.true_false(
                        and_(t.done_at.is_(None), t.due_at.is_not(None), t.due_at < bindparam(NOW, type_=m.Task.due_at.type))
                    )
                case "assignee":
                    return self.user(c, t.assignee_id)
                case _:
                    return getattr(t, c.name)

        where = [t.customer_id == customer_id]
        if not include_done:
            where.append(t.done_at.is_(None))
        return self._list(self._obj(sel, "Task", value), where, [t.due_at, t.id])

    def consents(self, sel: Sel, customer_id: Any) -> ColumnElement[Any]:
        c_ = aliased(m.Consent)
        d = self.dialect

        def value(c: Sel) -> Any:
            match c.name:
                case "status":
                    return d.enum(c_.status, _CONSENT)
                case "changedAt":
                    return d.iso(c_.changed_at)
                case _:
                    return getattr(c_, c.name)

        return self._list(self._obj(sel, "Consent", value), [c_.customer_id == customer_id], [c_.channel])

    def customer(self, sel: Sel, row: Any) -> ColumnElement[Any]:
        d = self.dialect
        self.corr = row

        def value(c: Sel) -> Any:
            if c.merged:  # a plugin's field: a placeholder its resolver's value replaces (sqlgen.merge)
                head = bindparam(NONCE, type_=String).op("||", return_type=String)(literal(f":{c.slot}:", String))
                return head.op("||", return_type=String)(cast(row.id, Text))
            match c.name:
                case "id":
                    return d.global_id("Customer", row.id)
                case "displayName":
                    return row.display_name
                case "company" | "source":
                    return getattr(row, c.name)
                case "phones" | "emails" | "attributes":
                    return d.json_column(getattr(row, c.name))
                case "lastInteractionAt":
                    return d.iso(row.last_interaction_at)
                case "createdAt":
                    return d.iso(row.created_at)
                case "updatedAt":
                    return d.iso(row.updated_at)
                case "stage":
                    return self.stage(c, row.stage_id)
                case "owner":
                    return self.user(c, row.owner_id)
                case "tags":
                    return self.tags(c, row.id)
                case "identities":
                    return self.identities(c, row.id)
                case "interactions":
                    return self.interactions(c, row.id)
                case "tasks":
                    return self.tasks(c, row.id)
                case "consents":
                    return self.consents(c, row.id)
            raise NotCompilableError(f"Customer.{c.name}")  # pragma: no cover - the plan refuses it

        return self._obj(sel, "Customer", value)


_ORDER_KIND = {
    queries.CustomerOrder.CREATED_AT_DESC: "t",
    queries.CustomerOrder.CREATED_AT_ASC: "t",
    queries.CustomerOrder.UPDATED_AT_DESC: "t",
    queries.CustomerOrder.NAME_ASC: "s",
    queries.CustomerOrder.LAST_INTERACTION_DESC: "t",
}


def _filter(raw: Any) -> queries.CustomerFilter | None:
    if raw is None:
        return None
    given = {k: v for k, v in raw.items() if v is not None}
    unknown = set(given) - set(_FILTER_FIELDS)
    if unknown:
        raise Fallback(f"filter fields {sorted(unknown)}")
    values = {_FILTER_FIELDS[k]: v for k, v in given.items()}
    if "owner_ids" in values:
        try:
            values["owner_ids"] = [from_global_id(i, "User", field="filter.ownerIds") for i in values["owner_ids"]]
        except Exception as exc:
            raise Fallback(str(exc)) from None
    return queries.CustomerFilter(**values)


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return getattr(value, "value", value)


def _nested_args(b: Build, sel: Sel) -> tuple[Any, ...]:
    """The argument values of every field below ``sel`` (part of a cached statement's key)."""
    out: list[Any] = []
    stack = list(sel.children)
    while stack:
        child = stack.pop()
        if child.merged:  # its arguments are its resolver's: the statement does not depend on them
            continue
        if child.field_def is not None and child.field_def.args:
            out.append((id(child), _frozen(b.args(child))))
        stack.extend(child.children)
    return tuple(out)


#: the statement's parameters that vary between requests of one cached statement
SIZE, LIMIT, AFTER, AFTER_ID, NOW, NONCE = "gx_size", "gx_limit", "gx_after", "gx_after_id", "gx_now", "gx_nonce"


async def customers_statement(b: Build, sel: Sel, session: Any, cache: dict[Any, Any]) -> tuple[Select[Any], dict[str, Any]]:
    """The statement whose one row is the JSON of a ``customers`` connection, and its parameters.

    Statements are kept in ``cache`` by their shape (the plan's field, the ordering, whether a
    cursor is given, the filter and every nested argument); the page size, the cursor's values
    and the current time are parameters."""
    args = b.args(sel)
    if args.get("last") is not None or args.get("before") is not None or args.get("orderByField") is not None:
        raise Fallback("backward paging or orderByField")
    order_value = getattr(args.get("orderBy"), "value", args.get("orderBy", queries.CustomerOrder.CREATED_AT_DESC.value))
    try:
        order = queries.CustomerOrder(order_value)
    except ValueError:
        raise Fallback(f"ordering {order_value!r}") from None
    try:
        window = page_window(args.get("first"), args.get("after"), None, None, order.value, b.default_page_size, b.max_page_size)
    except Exception as exc:
        raise Fallback(str(exc)) from None
    params: dict[str, Any] = {SIZE: window.size, LIMIT: window.size + 1, NOW: b.now, NONCE: b.nonce}
    if window.cursor is not None:
        params[AFTER], params[AFTER_ID] = window.cursor
    # a session limited to some owners counts with count(*), others read the maintained count
    counted = session.owners is None and not any(v is not None for v in (args.get("filter") or {}).values())
    key = (id(sel), b.dialect.name, order, window.cursor is not None, _frozen(args.get("filter")), _nested_args(b, sel), counted)
    found = cache.get(key)
    if found is None:
        found = cache[key] = await _build_customers(b, sel, session, order, args.get("filter"), window.cursor is not None, counted)
        while len(cache) > 512:
            cache.pop(next(iter(cache)))
    return found, params


async def _build_customers(
    b: Build, sel: Sel, session: Any, order: queries.CustomerOrder, raw_filter: Any, after: bool, counted: bool
) -> Select[Any]:
    flt = _filter(raw_filter)
    d = b.dialect
    col, desc = queries._order_columns(order)
    size = bindparam(SIZE, type_=Integer)
    base = await queries.apply_filter(session, select(*_PAGE_COLUMNS, col.label("gx_sort")), flt)
    count = queries.live_count() if counted else await queries.apply_filter(session, select(func.count()).select_from(m.Customer), flt)
    if base is None or count is None:  # pragma: no cover - only tag filters say "nothing", and they fall back
        raise Fallback("empty filter")
    if after:
        value, last_id = bindparam(AFTER, type_=col.type), bindparam(AFTER_ID, type_=m.Customer.id.type)
        if desc:
            base = base.where(or_(col < value, and_(col == value, m.Customer.id < last_id)))
        else:
            base = base.where(or_(col > value, and_(col == value, m.Customer.id > last_id)))
    ordering = [col.desc(), m.Customer.id.desc()] if desc else [col.asc(), m.Customer.id.asc()]
    picked = base.order_by(*ordering).limit(bindparam(LIMIT, type_=Integer)).subquery("gx_pick")
    again = [picked.c.gx_sort.desc(), picked.c.id.desc()] if desc else [picked.c.gx_sort.asc(), picked.c.id.asc()]
    numbered = select(*picked.c, func.row_number().over(order_by=again).label("gx_rn"))
    page = numbered.cte("gx_page").prefix_with("MATERIALIZED")
    row = aliased(m.Customer, page)
    kind = _ORDER_KIND[order]
    page_rn = page.c.gx_rn

    def cursor(sort: Any, id_: Any) -> Any:
        return d.cursor(order.value, kind, d.iso(sort) if kind == "t" else sort, id_)

    pairs: list[tuple[str, Any]] = []
    for c in sel.children:
        if c.name == "__typename":
            pairs.append((c.key, literal("CustomerConnection", String)))
        elif c.name == "totalCount":
            pairs.append((c.key, count.scalar_subquery()))
        elif c.name == "edges":
            edge_pairs: list[tuple[str, Any]] = []
            for e in c.children:
                if e.name == "__typename":
                    edge_pairs.append((e.key, literal("CustomerEdge", String)))
                elif e.name == "cursor":
                    edge_pairs.append((e.key, cursor(page.c.gx_sort, row.id)))
                elif e.name == "node":
                    edge_pairs.append((e.key, b.customer(e, row)))
            edges = select(d.obj(edge_pairs).label("gx_j"), page_rn.label("gx_rn")).select_from(row).where(page_rn <= size)
            derived = edges.order_by(page_rn).subquery("gx_edges")
            pairs.append((c.key, d.embed(select(d.array(derived.c.gx_j, derived.c.gx_rn)).scalar_subquery())))
        elif c.name == "pageInfo":
            info: list[tuple[str, Any]] = []
            more: Any
            more = d.gt(select(func.count()).select_from(page).scalar_subquery(), size)
            for p in c.children:
                if p.name == "__typename":
                    info.append((p.key, literal("PageInfo", String)))
                elif p.name == "hasNextPage":
                    info.append((p.key, more))
                elif p.name == "hasPreviousPage":
                    info.append((p.key, d.true_false(literal(after))))
                elif p.name in ("startCursor", "endCursor"):
                    in_page = select(func.count()).select_from(page).scalar_subquery()
                    last = case((in_page < size, in_page), else_=size)
                    at = 1 if p.name == "startCursor" else last
                    info.append((p.key, select(cursor(page.c.gx_sort, page.c.id)).where(page_rn == at, page_rn <= size).scalar_subquery()))
            pairs.append((c.key, d.obj(info)))
    return select(d.as_text(d.obj(pairs)))


_PAGE_COLUMNS = (
    m.Customer.tenant_id,
    m.Customer.id,
    m.Customer.display_name,
    m.Customer.company,
    m.Customer.phones,
    m.Customer.emails,
    m.Customer.attributes,
    m.Customer.owner_id,
    m.Customer.stage_id,
    m.Customer.source,
    m.Customer.last_interaction_at,
    m.Customer.created_at,
    m.Customer.updated_at,
)

__all__ = ["Build", "Fallback", "customers_statement", "uuid"]
