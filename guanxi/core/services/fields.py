"""Custom fields of customers: typed definitions per tenant, values validated on write, and the
SQL of conditions and orderings on a field (used by :mod:`guanxi.core.services.queries`).

Values live in one typed table (:class:`~guanxi.core.domain.models.CustomerFieldValue`), in the
column of their kind: text, the choice kinds, user and boolean in ``text_value``; number and money
in ``number_value``; date in ``date_value``. A multi-choice value has one row per choice. So a
tenant adds fields without any schema change, and ``(tenant, field, value)`` indexes serve
filters and sorting.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec
from sqlalchemy import ColumnElement, Select, delete, func, literal, select

from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Customer, CustomerFieldValue, FieldDefinition, User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer
from guanxi.core.storage.tenancy import TenantSession

KINDS: Final = ("text", "number", "money", "date", "single_choice", "multi_choice", "user", "boolean")
CHOICE_KINDS: Final = ("single_choice", "multi_choice")
#: kinds whose conditions may be ranges (gt, gte, lt, lte)
RANGE_KINDS: Final = ("number", "money", "date")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_TEXT = 1000
MAX_CHOICES = 200
#: what a customer without a value sorts as (below every value)
_LOWEST: dict[str, Any] = {"number": Decimal("-999999999999999999"), "date": dt.date(1, 1, 1), "text": ""}
UNSET: Final = msgspec.UNSET


class FieldInput(msgspec.Struct, kw_only=True):
    key: str
    label: str
    kind: str
    choices: list[str] = msgspec.field(default_factory=list)
    position: int = 0


class FieldPatch(msgspec.Struct, kw_only=True):
    """Fields left UNSET are not changed."""

    label: str | msgspec.UnsetType = UNSET
    choices: list[str] | msgspec.UnsetType = UNSET
    position: int | msgspec.UnsetType = UNSET
    archived: bool | msgspec.UnsetType = UNSET


class FieldCondition(msgspec.Struct, kw_only=True):
    """A condition on a custom field of ``customers(filter:)``; every part given must hold.

    ``eq``: the value (for a multi-choice field: holds that choice); ``in_``: any of these;
    ``gt``/``gte``/``lt``/``lte``: ranges of number, money and date fields; ``is_set``: has a
    value (True) or none (False). ``where`` names the condition in errors (``filter.fields[0]``)."""

    field: str
    eq: Any = None
    in_: list[Any] | None = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None
    is_set: bool | None = None
    where: str = "filter.fields"
    #: turns a user field's value as the caller gives it into a user's uuid (default: a UUID's text)
    parse_user: Any = None


#: (text_value, number_value, date_value) of one stored row
Row = tuple[str | None, Decimal | None, dt.date | None]


def column_of(kind: str) -> Any:
    """The value column of a kind."""
    if kind in ("number", "money"):
        return CustomerFieldValue.number_value
    if kind == "date":
        return CustomerFieldValue.date_value
    return CustomerFieldValue.text_value


def _check_choices(kind: str, choices: list[str], where: str) -> list[str]:
    if kind not in CHOICE_KINDS:
        if choices:
            raise ValidationError(f"only single_choice and multi_choice fields have choices, not {kind}", field=where)
        return []
    cleaned = [c.strip() for c in choices]
    if not cleaned:
        raise ValidationError("a choice field needs at least one choice", field=where)
    if any(not c or len(c) > MAX_TEXT for c in cleaned):
        raise ValidationError(f"each choice must be 1 to {MAX_TEXT} characters", field=where)
    if len(set(cleaned)) != len(cleaned):
        raise ValidationError("choices must be distinct", field=where)
    if len(cleaned) > MAX_CHOICES:
        raise ValidationError(f"at most {MAX_CHOICES} choices", field=where)
    return cleaned


def _check_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > 200:
        raise ValidationError("label must be 1 to 200 characters", field="label")
    return label


async def list_fields(session: TenantSession, *, include_archived: bool = False) -> list[FieldDefinition]:
    stmt = select(FieldDefinition).where(FieldDefinition.entity == "customer")
    if not include_archived:
        stmt = stmt.where(FieldDefinition.archived_at.is_(None))
    return list((await session.scalars(stmt.order_by(FieldDefinition.position, FieldDefinition.key))).all())


async def get_field(session: TenantSession, key: str) -> FieldDefinition:
    found = (
        await session.execute(select(FieldDefinition).where(FieldDefinition.entity == "customer", FieldDefinition.key == key))
    ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no custom field {key!r}", field="key")
    return found


async def define_field(tx: Tx, data: FieldInput) -> FieldDefinition:
    """Create a custom field of customers. Audited (``field.define``)."""
    if not _KEY.match(data.key):
        raise ValidationError("key must be lower_snake_case: a letter, then letters, digits or _, at most 64", field="key")
    if data.kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}, not {data.kind!r}", field="kind")
    label = _check_label(data.label)
    choices = _check_choices(data.kind, list(data.choices), "choices")
    session = tx.session
    exists = (
        await session.execute(select(FieldDefinition.id).where(FieldDefinition.entity == "customer", FieldDefinition.key == data.key))
    ).first()
    if exists is not None:
        raise ConflictError(f"a custom field {data.key!r} exists already", field="key")
    row = FieldDefinition(
        id=new_id(),
        entity="customer",
        key=data.key,
        label=label,
        kind=data.kind,
        choices=choices,
        position=data.position,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    audit(tx, "field.define", "field", row.id, {"key": row.key, "kind": row.kind, "label": row.label, "choices": choices})
    return row


async def update_field(tx: Tx, key: str, patch: FieldPatch) -> FieldDefinition:
    """Rename, reorder, change the choices of, archive or restore a field (its kind and key stay).
    A choice still held by customers cannot be removed. Audited (``field.update``)."""
    session = tx.session
    row = await get_field(session, key)
    changes: dict[str, Any] = {}
    if patch.label is not UNSET:
        label = _check_label(patch.label)
        if label != row.label:
            changes["label"] = [row.label, label]
            row.label = label
    if patch.choices is not UNSET:
        choices = _check_choices(row.kind, list(patch.choices), "choices")
        dropped = [c for c in row.choices if c not in choices]
        if dropped:
            held = (
                await session.execute(
                    select(func.count(func.distinct(CustomerFieldValue.customer_id))).where(
                        CustomerFieldValue.field_id == row.id, CustomerFieldValue.text_value.in_(dropped)
                    )
                )
            ).scalar_one()
            if held:
                raise ValidationError(
                    f"choices {', '.join(map(repr, dropped))} are held by {held} customer(s); change their values first", field="choices"
                )
        if choices != row.choices:
            changes["choices"] = [row.choices, choices]
            row.choices = choices
    if patch.position is not UNSET and patch.position != row.position:
        changes["position"] = [row.position, patch.position]
        row.position = patch.position
    if patch.archived is not UNSET and patch.archived != (row.archived_at is not None):
        changes["archived"] = patch.archived
        row.archived_at = utcnow() if patch.archived else None
    if changes:
        await session.flush()
        audit(tx, "field.update", "field", row.id, {"key": row.key, **changes})
    return row


# -- values ---------------------------------------------------------------------------------------


def _decimal(raw: Any, where: str, kind: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise ValidationError(f"{where} is a {kind} field: give a number, not {type(raw).__name__}", field=where)
    try:
        value = Decimal(str(raw).strip()) if not isinstance(raw, Decimal) else raw
    except InvalidOperation:
        raise ValidationError(f"{where} is a {kind} field: {raw!r} is not a number", field=where) from None
    if not value.is_finite() or abs(value) >= Decimal("1e18"):
        raise ValidationError(f"{where} must be a finite number below 10^18", field=where)
    if kind == "money" and value != value.quantize(Decimal("0.000001")):
        raise ValidationError(f"{where} is a money field: at most 6 decimals", field=where)
    return value


def _date(raw: Any, where: str) -> dt.date:
    if isinstance(raw, dt.datetime):
        raise ValidationError(f"{where} is a date field: give a date (YYYY-MM-DD), not a time", field=where)
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str):
        try:
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ValidationError(f"{where} is a date field: give YYYY-MM-DD, not {raw!r}", field=where)


def _choice(defn: FieldDefinition, raw: Any, where: str) -> str:
    if not isinstance(raw, str) or raw.strip() not in defn.choices:
        raise ValidationError(f"{where} must be one of {', '.join(defn.choices)}, not {raw!r}", field=where)
    return raw.strip()


def _user_id(raw: Any, where: str, parse_user: Callable[[str, str], uuid.UUID] | None) -> uuid.UUID:
    if isinstance(raw, uuid.UUID):
        return raw
    if isinstance(raw, str):
        if parse_user is not None:
            return parse_user(raw, where)
        try:
            return uuid.UUID(raw)
        except ValueError:
            pass
    raise ValidationError(f"{where} is a user field: give a user id, not {raw!r}", field=where)


def scalar(defn: FieldDefinition, raw: Any, where: str, parse_user: Callable[[str, str], uuid.UUID] | None = None) -> Any:
    """One value of a field's kind from input (a choice of a multi-choice field for conditions),
    as stored: str, Decimal or date. Raises ValidationError naming ``where``."""
    kind = defn.kind
    if kind == "text":
        if not isinstance(raw, str):
            raise ValidationError(f"{where} is a text field: give a string, not {type(raw).__name__}", field=where)
        if len(raw) > MAX_TEXT:
            raise ValidationError(f"{where} is longer than {MAX_TEXT} characters", field=where)
        return raw
    if kind in ("number", "money"):
        return _decimal(raw, where, kind)
    if kind == "date":
        return _date(raw, where)
    if kind in CHOICE_KINDS:
        return _choice(defn, raw, where)
    if kind == "user":
        return str(_user_id(raw, where, parse_user))
    if not isinstance(raw, bool):
        raise ValidationError(f"{where} is a boolean field: give true or false, not {raw!r}", field=where)
    return "true" if raw else "false"


def rows(defn: FieldDefinition, raw: Any, where: str, parse_user: Callable[[str, str], uuid.UUID] | None = None) -> list[Row]:
    """The stored rows of a value given for a field (none for None); raises ValidationError
    naming ``where`` when the value does not fit the field."""
    if raw is None:
        return []
    if defn.kind == "multi_choice":
        if not isinstance(raw, list):
            raise ValidationError(f"{where} is a multi-choice field: give a list of choices", field=where)
        picked = list(dict.fromkeys(_choice(defn, r, where) for r in raw))
        return [(c, None, None) for c in picked]
    value = scalar(defn, raw, where, parse_user)
    if defn.kind in ("number", "money"):
        return [(None, value, None)]
    if defn.kind == "date":
        return [(None, None, value)]
    return [(value, None, None)]


def typed(defn: FieldDefinition, rows: Sequence[Any]) -> Any:
    """The typed value of a field from its stored rows (objects with the value columns): str,
    Decimal, date, bool, uuid.UUID, or a list of str for multi-choice; None when unset."""
    if not rows:
        return None
    if defn.kind == "multi_choice":
        order = {c: i for i, c in enumerate(defn.choices)}
        return sorted((r.text_value for r in rows), key=lambda c: order.get(c, len(order)))
    r = rows[0]
    if defn.kind in ("number", "money"):
        return Decimal(r.number_value) if r.number_value is not None else None
    if defn.kind == "date":
        return r.date_value
    if defn.kind == "boolean":
        return r.text_value == "true"
    if defn.kind == "user":
        return uuid.UUID(r.text_value)
    return r.text_value


async def set_customer_fields(
    tx: Tx,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    *,
    parse_user: Callable[[str, str], uuid.UUID] | None = None,
    where: str = "fields",
) -> list[str]:
    """Set custom field values of a customer (``{"grade": "A", "budget": 12000}``; None clears
    one). Every value is checked against its field before anything is written; an error names
    the field (``fields.grade``). ``parse_user`` turns an API's user id into a user's uuid.
    Returns the keys whose value changed. Audited (``customer.fields``: the keys only, values may
    be personal)."""
    session = tx.session
    customer = await get_customer(session, customer_id)
    if not values:
        return []
    defs = {d.key: d for d in await list_fields(session, include_archived=True)}
    planned: dict[uuid.UUID, list[Row]] = {}
    for key, raw in values.items():
        field_where = f"{where}.{key}"
        defn = defs.get(key)
        if defn is None:
            raise ValidationError(f"no custom field {key!r}", field=field_where)
        if defn.archived_at is not None and raw is not None:
            raise ValidationError(f"custom field {key!r} is archived", field=field_where)
        planned[defn.id] = rows(defn, raw, field_where, parse_user)
    users = {uuid.UUID(r[0]) for d in defs.values() if d.kind == "user" and d.id in planned for r in planned[d.id] if r[0]}
    if users:
        known = set((await session.execute(select(User.id).where(User.id.in_(users)))).scalars())
        for d in defs.values():
            if d.kind == "user" and d.id in planned and any(r[0] and uuid.UUID(r[0]) not in known for r in planned[d.id]):
                raise ValidationError(f"{where}.{d.key}: no such user in this tenant", field=f"{where}.{d.key}")
    current: dict[uuid.UUID, set[Row]] = defaultdict(set)
    stmt = select(CustomerFieldValue).where(CustomerFieldValue.customer_id == customer.id, CustomerFieldValue.field_id.in_(planned))
    for v in (await session.scalars(stmt)).all():
        current[v.field_id].add((v.text_value, Decimal(v.number_value) if v.number_value is not None else None, v.date_value))
    changed = [fid for fid, rows in planned.items() if set(rows) != current.get(fid, set())]
    if not changed:
        return []
    await session.execute(
        delete(CustomerFieldValue).where(CustomerFieldValue.customer_id == customer.id, CustomerFieldValue.field_id.in_(changed))
    )
    for fid in changed:
        for text, number, date in planned[fid]:
            session.add(
                CustomerFieldValue(
                    id=new_id(), customer_id=customer.id, field_id=fid, text_value=text, number_value=number, date_value=date
                )
            )
    customer.updated_at = utcnow()
    await session.flush()
    by_id = {d.id: d.key for d in defs.values()}
    keys = sorted(by_id[fid] for fid in changed)
    audit(tx, "customer.fields", "customer", customer.id, {"fields": keys})
    return keys


async def field_values_of(session: TenantSession, customer_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[tuple[FieldDefinition, Any]]]:
    """The set values of live fields of many customers in one statement (after the definitions,
    which a tenant has few of): ``{customer id: [(definition, typed value)]}`` in field order."""
    ids = set(customer_ids)
    if not ids:
        return {}
    defs = {d.id: d for d in await list_fields(session)}
    if not defs:
        return {}
    stmt = select(
        CustomerFieldValue.customer_id,
        CustomerFieldValue.field_id,
        CustomerFieldValue.text_value,
        CustomerFieldValue.number_value,
        CustomerFieldValue.date_value,
    ).where(CustomerFieldValue.customer_id.in_(ids), CustomerFieldValue.field_id.in_(defs))
    grouped: dict[uuid.UUID, dict[uuid.UUID, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for row in (await session.execute(stmt)).all():
        grouped[row.customer_id][row.field_id].append(row)
    out: dict[uuid.UUID, list[tuple[FieldDefinition, Any]]] = {}
    for cid, per_field in grouped.items():
        out[cid] = [(d, typed(d, per_field[fid])) for fid, d in defs.items() if fid in per_field]
    return out


# -- conditions and orderings ----------------------------------------------------------------------


async def _definitions(session: TenantSession, keys: Iterable[str]) -> dict[str, FieldDefinition]:
    wanted = set(keys)
    if not wanted:
        return {}
    stmt = select(FieldDefinition).where(FieldDefinition.entity == "customer", FieldDefinition.key.in_(wanted))
    return {d.key: d for d in (await session.scalars(stmt)).all()}


def _values_of(defn: FieldDefinition, *conditions: ColumnElement[bool]) -> Select[Any]:
    return select(CustomerFieldValue.customer_id).where(CustomerFieldValue.field_id == defn.id, *conditions)


async def apply_conditions(session: TenantSession, stmt: Select[Any], conditions: Sequence[FieldCondition]) -> Select[Any]:
    """Add conditions on custom fields to a customer select (subqueries on the value table, one
    per condition part, all in the same statement). Unknown fields and values of the wrong type
    are refused naming the condition (``filter.fields[0].eq``)."""
    defs = await _definitions(session, (c.field for c in conditions))
    for cond in conditions:
        defn = defs.get(cond.field)
        if defn is None:
            raise ValidationError(f"no custom field {cond.field!r}", field=f"{cond.where}.field")
        col = column_of(defn.kind)
        if cond.eq is not None:
            stmt = stmt.where(Customer.id.in_(_values_of(defn, col == scalar(defn, cond.eq, f"{cond.where}.eq", cond.parse_user))))
        if cond.in_ is not None:
            picked = [scalar(defn, v, f"{cond.where}.in", cond.parse_user) for v in cond.in_]
            stmt = stmt.where(Customer.id.in_(_values_of(defn, col.in_(picked))))
        for name, op in (("gt", col.__gt__), ("gte", col.__ge__), ("lt", col.__lt__), ("lte", col.__le__)):
            bound = getattr(cond, name)
            if bound is None:
                continue
            if defn.kind not in RANGE_KINDS:
                raise ValidationError(
                    f"{name} needs a number, money or date field; {cond.field!r} is {defn.kind}", field=f"{cond.where}.{name}"
                )
            stmt = stmt.where(Customer.id.in_(_values_of(defn, op(scalar(defn, bound, f"{cond.where}.{name}")))))
        if cond.is_set is not None:
            has = Customer.id.in_(_values_of(defn))
            stmt = stmt.where(has if cond.is_set else ~has)
    return stmt


def _lowest(kind: str) -> Any:
    return _LOWEST["number"] if kind in ("number", "money") else _LOWEST["date"] if kind == "date" else _LOWEST["text"]


def sort_expression(defn: FieldDefinition) -> ColumnElement[Any]:
    """The customer's value of a field as a sort key (a correlated subquery; the smallest choice of
    a multi-choice field); customers without a value sort below every value."""
    col = column_of(defn.kind)
    value = (
        select(func.min(col))
        .where(CustomerFieldValue.customer_id == Customer.id, CustomerFieldValue.field_id == defn.id)
        .correlate(Customer)
        .scalar_subquery()
    )
    return func.coalesce(value, literal(_lowest(defn.kind), col.type))


def from_cursor(defn: FieldDefinition) -> Callable[[Any], Any]:
    """Turns a sort value read back from a cursor (text) into the field's column type."""

    def convert(value: Any) -> Any:
        try:
            if defn.kind in ("number", "money"):
                return Decimal(str(value))
            if defn.kind == "date":
                return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        except (InvalidOperation, ValueError):
            raise ValidationError("the cursor is not one of this ordering", field="after", code="BAD_CURSOR") from None
        return value

    return convert


async def field_definition_for_order(session: TenantSession, key: str, where: str = "orderByField.field") -> FieldDefinition:
    defs = await _definitions(session, [key])
    if key not in defs:
        raise ValidationError(f"no custom field {key!r}", field=where)
    return defs[key]
