"""A segment's definition: a tree of conditions, checked when saved and compiled to SQL.

The tree, as JSON (keys camelCase, as in GraphQL)::

    {"all": [<condition>, ...]}      every one holds
    {"any": [<condition>, ...]}      at least one holds
    {"not": <condition>}             it does not hold (a NULL column counts as "does not hold")
    {"filter": {...}}                a ``CustomerFilter`` of ``customers(filter:)``: core's keys
                                     (stages, tagsAny, tagsAll, ownerIds, unassigned, channels,
                                     createdAfter, createdBefore, search, fields) and every key
                                     plugins add (``scoreGte`` from scoring, ``inSegment`` …)
    {"interacted": {...}}            has at least ``atLeast`` (default 1) interactions of ``kind``
                                     (a kind or a list) on ``channel`` in ``direction``, within the
                                     last ``withinDays`` days or since ``since``
    {"consent": {"channel": "email", "status": "opted_out"}}

A filter leaf goes through core's own compiler (:func:`guanxi.core.services.queries.apply_filter`
and the plugins' :class:`~guanxi.graphql.contrib.CustomerFilterField`), so a segment means what
the same filter means in ``customers(filter:)``; the tree becomes one boolean SQL expression over
``customers``. Nothing is filtered in Python.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, and_, case, false, func, literal, or_, select, true

from guanxi import Runtime, ValidationError
from guanxi.core.domain.models import Consent, Customer, Interaction, utcnow
from guanxi.core.services import fields as field_service
from guanxi.core.services import queries
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.contrib import CustomerFilterField, GraphQLContribution

#: deepest nesting of all/any/not a definition may have
MAX_DEPTH = 8
#: most conditions (nodes) in one definition
MAX_NODES = 200
CONSENT_STATUSES = ("opted_in", "opted_out")
DIRECTIONS = ("in", "out", "internal")

#: core's CustomerFilter keys (camelCase) → the service filter's attribute
_CORE_KEYS = {
    "stages": "stages",
    "tagsAny": "tags_any",
    "tagsAll": "tags_all",
    "ownerIds": "owner_ids",
    "unassigned": "unassigned",
    "channels": "channels",
    "createdAfter": "created_after",
    "createdBefore": "created_before",
    "search": "search",
    "fields": "fields",
}
_CORE_TYPES: dict[str, Any] = {
    "stages": list[str],
    "tagsAny": list[str],
    "tagsAll": list[str],
    "ownerIds": list[str],
    "unassigned": bool,
    "channels": list[str],
    "createdAfter": dt.datetime,
    "createdBefore": dt.datetime,
    "search": str,
}
_FIELD_KEYS = {"field": "field", "eq": "eq", "in": "in_", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "isSet": "is_set"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def filter_fields(runtime: Runtime) -> dict[str, CustomerFilterField]:
    """The plugins' ``CustomerFilter`` fields by their GraphQL (camelCase) name, gathered once per
    runtime from ``guanxi_graphql`` (the same extension point ``customers(filter:)`` uses)."""
    return {key: field for key, (_, field) in _filter_fields(runtime).items()}


def _filter_fields(runtime: Runtime) -> dict[str, tuple[str, CustomerFilterField]]:
    """Each plugin ``CustomerFilter`` field with the name of the plugin that contributes it."""
    cached: dict[str, tuple[str, CustomerFilterField]] | None = runtime.state.get("automation.filter_fields")
    if cached is None:
        cached = {}
        for impl in runtime.pm.hook.guanxi_graphql.get_hookimpls():
            part = impl.function(runtime=runtime)
            if isinstance(part, GraphQLContribution):
                for f in part.customer_filters:
                    cached[camel(f.name)] = (impl.plugin_name, f)
        runtime.state["automation.filter_fields"] = cached
    return cached


def _fail(path: str, message: str) -> ValidationError:
    """A definition that cannot be used; ``field`` is the path of the bad part
    (``definition.all[1].filter.tagsAny``)."""
    return ValidationError(f"{path}: {message}", field=path)


def check(runtime: Runtime, definition: Any, path: str = "definition") -> dict[str, Any]:
    """The definition, checked (types, known keys, depth and size); raises ``VALIDATION`` with
    the path of the first bad part. Returns it with values normalised to JSON."""
    count = [0]
    extra = filter_fields(runtime)
    return _check(definition, path, 0, count, extra)


def _one_key(node: Any, path: str) -> tuple[str, Any]:
    if not isinstance(node, Mapping) or len(node) != 1:
        raise _fail(path, "a condition is an object with exactly one key: all, any, not, filter, interacted or consent")
    ((key, value),) = node.items()
    return str(key), value


def _check(node: Any, path: str, depth: int, count: list[int], extra: Mapping[str, CustomerFilterField]) -> dict[str, Any]:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise _fail(path, f"a definition has at most {MAX_NODES} conditions")
    if depth > MAX_DEPTH:
        raise _fail(path, f"conditions nest at most {MAX_DEPTH} deep")
    key, value = _one_key(node, path)
    here = f"{path}.{key}"
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise _fail(here, "must be a non-empty list of conditions")
        return {key: [_check(v, f"{here}[{i}]", depth + 1, count, extra) for i, v in enumerate(value)]}
    if key == "not":
        return {key: _check(value, here, depth + 1, count, extra)}
    if key == "filter":
        return {key: _check_filter(value, here, extra)}
    if key == "interacted":
        return {key: msgspec.to_builtins(_interacted(value, here))}
    if key == "consent":
        return {key: msgspec.to_builtins(_consent(value, here))}
    raise _fail(path, f"unknown condition {key!r} (all, any, not, filter, interacted, consent)")


def _convert(value: Any, kind: Any, path: str) -> Any:
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _fail(path, str(exc)) from None


def _check_filter(value: Any, path: str, extra: Mapping[str, CustomerFilterField]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise _fail(path, "must be a non-empty CustomerFilter object")
    out: dict[str, Any] = {}
    for key, v in value.items():
        here = f"{path}.{key}"
        if v is None:
            continue
        if key == "fields":
            if not isinstance(v, list):
                raise _fail(here, "must be a list of field conditions")
            out[key] = [_field_condition(c, f"{here}[{i}]") for i, c in enumerate(v)]
        elif key in _CORE_TYPES:
            _convert(v, _CORE_TYPES[key], here)
            out[key] = v
        elif key in extra:
            _convert(v, extra[key].type, here)
            out[key] = v
        else:
            known = sorted([*_CORE_KEYS, *extra])
            raise _fail(here, f"unknown filter key (known: {', '.join(known)})")
    if not out:
        raise _fail(path, "must hold at least one condition")
    return out


def _field_condition(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not isinstance(value.get("field"), str):
        raise _fail(path, "a field condition is an object with a field key")
    unknown = set(value) - set(_FIELD_KEYS)
    if unknown:
        raise _fail(f"{path}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(_FIELD_KEYS)})")
    return dict(value)


class Interacted(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel", omit_defaults=True):
    """Has at least ``at_least`` interactions matching every part given."""

    kind: str | list[str] | None = None
    channel: str | None = None
    direction: str | None = None
    within_days: int | None = None
    since: dt.datetime | None = None
    at_least: int = 1


class ConsentIs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    channel: str
    status: str = "opted_out"


def _interacted(value: Any, path: str) -> Interacted:
    item: Interacted = _convert(value, Interacted, path)
    if item.direction is not None and item.direction not in DIRECTIONS:
        raise _fail(f"{path}.direction", f"must be one of {', '.join(DIRECTIONS)}")
    if item.within_days is not None and not 1 <= item.within_days <= 3650:
        raise _fail(f"{path}.withinDays", "must be 1 to 3650")
    if not 1 <= item.at_least <= 100_000:
        raise _fail(f"{path}.atLeast", "must be 1 to 100000")
    if item.since is not None and item.since.tzinfo is None:
        raise _fail(f"{path}.since", "must carry a time zone")
    return item


def _consent(value: Any, path: str) -> ConsentIs:
    item: ConsentIs = _convert(value, ConsentIs, path)
    if item.status not in CONSENT_STATUSES:
        raise _fail(f"{path}.status", f"must be one of {', '.join(CONSENT_STATUSES)}")
    return item


# --- compiling ------------------------------------------------------------------------------


async def compile_condition(
    runtime: Runtime, session: TenantSession, definition: Mapping[str, Any], path: str = "definition"
) -> ColumnElement[bool]:
    """The definition as one boolean SQL expression over ``customers`` (checked definitions only).
    Statements run: one per tag label and custom field named (as ``customers(filter:)``)."""
    return await _compile(runtime, session, definition, path, utcnow())


async def _compile(runtime: Runtime, session: TenantSession, node: Mapping[str, Any], path: str, now: dt.datetime) -> ColumnElement[bool]:
    key, value = _one_key(node, path)
    here = f"{path}.{key}"
    if key == "all":
        return and_(*[await _compile(runtime, session, v, f"{here}[{i}]", now) for i, v in enumerate(value)])
    if key == "any":
        return or_(*[await _compile(runtime, session, v, f"{here}[{i}]", now) for i, v in enumerate(value)])
    if key == "not":
        inner = await _compile(runtime, session, value, here, now)
        # SQL's NOT of NULL is NULL; "does not hold" must include customers whose column is NULL
        return case((inner, literal(0)), else_=literal(1)) == 1
    if key == "filter":
        return await _filter_expression(runtime, session, value, here)
    if key == "interacted":
        return _interacted_expression(msgspec.convert(value, Interacted), now)
    if key == "consent":
        c = msgspec.convert(value, ConsentIs)
        return Customer.id.in_(select(Consent.customer_id).where(Consent.channel == c.channel, Consent.status == c.status))
    raise _fail(path, f"unknown condition {key!r}")


def _user_id(raw: str, where: str) -> uuid.UUID:
    from guanxi.graphql.ids import from_global_id

    return from_global_id(raw, "User", field=where)


async def _filter_expression(runtime: Runtime, session: TenantSession, value: Mapping[str, Any], path: str) -> ColumnElement[bool]:
    extra = _filter_fields(runtime)
    flt = queries.CustomerFilter()
    for key, v in value.items():
        here = f"{path}.{key}"
        if key == "fields":
            flt.fields = [
                field_service.FieldCondition(**{_FIELD_KEYS[k]: x for k, x in c.items()}, where=f"{here}[{i}]", parse_user=_user_id)
                for i, c in enumerate(v)
            ]
        elif key == "ownerIds":
            flt.owner_ids = [_user_id(raw, here) for raw in v]
        elif key in _CORE_TYPES:
            setattr(flt, _CORE_KEYS[key], _convert(v, _CORE_TYPES[key], here))
        elif key in extra:
            plugin, field = extra[key]
            # a segment saved while the plugin was on cannot use it once the tenant turned it off
            await runtime.require_plugin(plugin, session.tenant_id)
            converted = _convert(v, field.type, here)
            flt.conditions.append(lambda stmt, f=field, x=converted: f.apply(stmt, x))
        else:
            raise _fail(here, "unknown filter key (its plugin may be gone)")
    stmt = await queries.apply_filter(session, select(Customer.id), flt)
    if stmt is None:
        return false()  # a tag that does not exist: nobody matches
    clause = stmt.whereclause
    if len(stmt.get_final_froms()) != 1:
        # a plugin condition joined another table: keep its select whole
        return Customer.id.in_(stmt.correlate(None))
    return clause if clause is not None else true()


def _interacted_expression(item: Interacted, now: dt.datetime) -> ColumnElement[bool]:
    sub = select(Interaction.customer_id)
    if item.kind is not None:
        kinds = [item.kind] if isinstance(item.kind, str) else item.kind
        sub = sub.where(Interaction.kind.in_(kinds))
    if item.channel is not None:
        sub = sub.where(Interaction.channel == item.channel)
    if item.direction is not None:
        sub = sub.where(Interaction.direction == item.direction)
    if item.within_days is not None:
        sub = sub.where(Interaction.occurred_at >= now - dt.timedelta(days=item.within_days))
    if item.since is not None:
        sub = sub.where(Interaction.occurred_at >= item.since)
    if item.at_least > 1:
        sub = sub.group_by(Interaction.customer_id).having(func.count() >= item.at_least)
    return Customer.id.in_(sub)


def keys_of(definition: Mapping[str, Any]) -> Sequence[str]:
    """Every filter key a definition uses (to tell which plugins it depends on)."""
    key, value = next(iter(definition.items()))
    if key in ("all", "any"):
        return [k for v in value for k in keys_of(v)]
    if key == "not":
        return keys_of(value)
    if key == "filter":
        return list(value)
    return []
