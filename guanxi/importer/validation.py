"""Checking rows: each record becomes a :class:`Row` of normalised values, or errors in the report.

The rules are the services' own (:func:`~guanxi.core.services.customers.normalize_phone`,
:func:`~guanxi.core.services.customers.normalize_email`, :func:`~guanxi.core.services.tags.split_tag`,
the stage keys, the tenant's users, :mod:`guanxi.core.services.fields` for custom fields).
:class:`RowParser` resolves the header's columns once, so a row costs only its own cells.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import msgspec
from sqlalchemy import select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import FieldDefinition, User
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import _clean_name, normalize_email, normalize_phone
from guanxi.core.services.fields import Row as FieldRow
from guanxi.core.services.fields import list_fields
from guanxi.core.services.fields import rows as field_rows
from guanxi.core.services.pipelines import default_pipeline, stages_of
from guanxi.core.services.tags import split_tag
from guanxi.importer.reading import Header
from guanxi.importer.report import ImportReport


@dataclass(frozen=True)
class Lookups:
    """What rows are checked against, loaded once per import."""

    stages: dict[str, uuid.UUID]  # lower-case key -> id
    stage_keys: str
    first_stage: uuid.UUID
    users: dict[str, tuple[uuid.UUID, bool]]  # email -> (id, active)
    #: live custom fields by key and by lower-case label
    custom_fields: dict[str, FieldDefinition] = field(default_factory=dict)

    @classmethod
    async def load(cls, runtime: Runtime, tenant_id: uuid.UUID) -> Lookups:
        async with runtime.session(tenant_id) as session:
            stages = await stages_of(session, (await default_pipeline(session)).id)
            users = {u.email: (u.id, u.active) for u in (await session.execute(select(User))).scalars()}
            defs = await list_fields(session)
        if not stages:
            raise ValidationError("the default pipeline has no stages", field="stage")
        by_name = {d.label.strip().lower(): d for d in defs} | {d.key: d for d in defs}
        return cls({s.key.lower(): s.id for s in stages}, ", ".join(s.key for s in stages), stages[0].id, users, by_name)


class Row(msgspec.Struct, array_like=True):
    """One valid record, normalised (and compact: validated rows wait in a spool between the
    two passes, see :mod:`guanxi.importer.spool`)."""

    row: int
    display_name: str
    company: str | None = None
    phones: list[str] = msgspec.field(default_factory=list)
    emails: list[str] = msgspec.field(default_factory=list)
    stage_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    tags: list[tuple[str, str]] = msgspec.field(default_factory=list)
    source: str | None = None
    identity: tuple[str, str] | None = None
    attributes: dict[str, str] = msgspec.field(default_factory=dict)
    #: custom field values: field id -> stored rows (empty cells are not here)
    custom: dict[uuid.UUID, list[FieldRow]] = msgspec.field(default_factory=dict)

    def keys(self) -> list[tuple[str, ...]]:
        """Matching keys in priority order: identity, emails, phones."""
        out: list[tuple[str, ...]] = [("i", *self.identity)] if self.identity else []
        return out + [("email", e) for e in self.emails] + [("phone", p) for p in self.phones]


def split(cell: str) -> list[str]:
    return [part for part in (p.strip() for p in cell.split(";")) if part]


_TRUE = {"true", "yes", "y", "1", "是", "对"}
_FALSE = {"false", "no", "n", "0", "否", "不"}


def custom_value(defn: FieldDefinition, cell: str, lk: Lookups) -> list[FieldRow]:
    """A custom field's stored rows from a cell, checked like the API checks values: numbers and
    dates (YYYY-MM-DD) as text, multi-choice separated by ``;``, booleans as true/false (yes/no,
    1/0, 是/否), users by e-mail."""
    where = defn.key
    if defn.kind == "multi_choice":
        return field_rows(defn, split(cell), where)
    if defn.kind == "boolean":
        word = cell.lower()
        if word not in _TRUE | _FALSE:
            raise ValidationError(f"{where} is a boolean field: write true or false, not {cell!r}", field=where)
        return field_rows(defn, word in _TRUE, where)
    if defn.kind == "user":
        try:
            user = lk.users.get(normalize_email(cell))
        except ValidationError:
            user = None
        if user is None:
            raise ValidationError(f"{where} is a user field: no user with email {cell!r} in this tenant", field=where)
        return field_rows(defn, user[0], where)
    return field_rows(defn, cell, where)


class RowParser:
    """Checks the records of one file: the header's column positions are resolved once; a column
    the file lacks reads as an empty cell (the position one past the header's width)."""

    def __init__(self, header: Header, lk: Lookups) -> None:
        self.header, self.lk = header, lk
        self.width = width = len(header.names)
        at = header.fields
        self.name_i = at["display_name"]
        self.company_i, self.phones_i, self.emails_i, self.stage_i, self.owner_i, self.tags_i, self.source_i, self.ext_i, self.channel_i = (
            at.get(f, width) for f in ("company", "phones", "emails", "stage", "owner_email", "tags", "source", "external_id", "channel")
        )  # fmt: skip
        self.column = {f: header.name(f) for f in at}

    def parse(self, row: int, cells: list[str], report: ImportReport) -> Row | None:
        """Validate one record; report its errors and return None when it is invalid."""
        errors_before = report.error_count
        width = self.width
        n = len(cells)
        if n > width:
            if any(c.strip() for c in cells[width:]):
                report.add_error(row, "", f"the row has {n} fields but the header has {width}")
            cells = cells[:width]
        padded = [*cells, *[""] * (width - n + 1)] if n <= width else [*cells, ""]
        column = self.column

        name = ""
        try:
            name = _clean_name(padded[self.name_i].strip())
        except ValidationError as exc:
            report.add_error(row, column["display_name"], exc.message)
        parsed = Row(row=row, display_name=name)
        if company := padded[self.company_i].strip():
            if len(company) > 200:
                report.add_error(row, column["company"], "company is longer than 200 characters")
            parsed.company = company
        for fld, at, norm, out in (
            ("phones", self.phones_i, normalize_phone, parsed.phones), ("emails", self.emails_i, normalize_email, parsed.emails),
        ):  # fmt: skip
            if cell := padded[at].strip():
                for value in split(cell):
                    try:
                        normal = norm(value)
                    except ValidationError as exc:
                        report.add_error(row, column[fld], exc.message)
                        continue
                    if normal not in out:
                        out.append(normal)
        if stage := padded[self.stage_i].strip():
            parsed.stage_id = self.lk.stages.get(stage.lower())
            if parsed.stage_id is None:
                report.add_error(row, column["stage"], f"unknown stage {stage!r} (stages: {self.lk.stage_keys})")
        if owner := padded[self.owner_i].strip():
            self._owner(row, owner, parsed, report)
        if labels := padded[self.tags_i].strip():
            for label in split(labels):
                try:
                    tag = split_tag(label)
                except ValidationError as exc:
                    report.add_error(row, column["tags"], exc.message)
                    continue
                if tag not in parsed.tags:
                    parsed.tags.append(tag)
        if source := padded[self.source_i].strip():
            if len(source) > 64:
                report.add_error(row, column["source"], "source is longer than 64 characters")
            parsed.source = source
        external_id, channel = padded[self.ext_i].strip(), padded[self.channel_i].strip()
        if external_id or channel:
            self._identity(row, external_id, channel, parsed, report)
        for i, key in self.header.attributes:
            if value := padded[i].strip():
                parsed.attributes[key] = value
        for i, defn in self.header.custom:
            if value := padded[i].strip():
                try:
                    parsed.custom[defn.id] = custom_value(defn, value, self.lk)
                except ValidationError as exc:
                    report.add_error(row, self.header.names[i].strip(), exc.message)
        return parsed if report.error_count == errors_before else None

    def _owner(self, row: int, owner: str, parsed: Row, report: ImportReport) -> None:
        column = self.column["owner_email"]
        try:
            user = self.lk.users.get(normalize_email(owner))
        except ValidationError as exc:
            report.add_error(row, column, exc.message)
            return
        if user is None:
            report.add_error(row, column, f"no user with email {owner!r} in this tenant")
        elif not user[1]:
            report.add_error(row, column, f"user {owner!r} is not active")
        else:
            parsed.owner_id = user[0]

    def _identity(self, row: int, external_id: str, channel: str, parsed: Row, report: ImportReport) -> None:
        column = self.column
        if not channel:
            report.add_error(row, column["channel"], "channel is required when external_id is given")
        elif len(channel) > 32:
            report.add_error(row, column["channel"], "channel must be 1 to 32 characters")
        if not external_id:
            report.add_error(row, column["external_id"], "external_id is required when channel is given")
        elif len(external_id) > 128:
            report.add_error(row, column["external_id"], "external id must be 1 to 128 characters")
        parsed.identity = (channel, external_id)
