"""Reading the CSV file: records streamed line by line, and the header row mapped to fields."""

from __future__ import annotations

import codecs
import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from guanxi.core.domain.models import FieldDefinition
from guanxi.importer.report import ImportReport

#: normalised header name -> field
COLUMNS = {
    "display_name": "display_name",
    "name": "display_name",
    "company": "company",
    "phone": "phones",
    "phones": "phones",
    "email": "emails",
    "emails": "emails",
    "stage": "stage",
    "owner_email": "owner_email",
    "tags": "tags",
    "source": "source",
    "external_id": "external_id",
    "channel": "channel",
}


class FileError(Exception):
    """The file cannot be read as CSV text at ``row``."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row


def _lines(fh: BinaryIO, encoding: str) -> Iterator[str]:
    """Decode line by line, so an undecodable byte is reported with its line number."""
    decoder = codecs.getincrementaldecoder(encoding)()
    for number, raw in enumerate(fh, 1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise FileError(number, f"line {number} is not valid {encoding} text ({exc.reason}); save the file as CSV UTF-8") from None


def records(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of every CSV record, header included, streaming."""
    row = 0
    try:
        with path.open("rb") as fh:
            for cells in csv.reader(_lines(fh, encoding)):
                row += 1
                yield row, cells
    except csv.Error as exc:
        raise FileError(row + 1, f"malformed CSV: {exc}") from None


def is_blank(cells: list[str]) -> bool:
    return not any(c.strip() for c in cells)


@dataclass(frozen=True)
class Header:
    names: list[str]  # header text per column
    fields: dict[str, int]  # field -> column index
    attributes: list[tuple[int, str]]  # (column index, attribute key)
    custom: list[tuple[int, FieldDefinition]] = field(default_factory=list)  # (column index, custom field)

    def name(self, fld: str) -> str:
        return self.names[self.fields[fld]].strip()


def parse_header(cells: list[str], report: ImportReport, custom_fields: dict[str, FieldDefinition]) -> Header | None:
    """Map the header row to fields, custom fields (by key or label) and attribute columns;
    None (with the problems in the report) when it cannot be used."""
    fields: dict[str, int] = {}
    attributes: list[tuple[int, str]] = []
    custom: list[tuple[int, FieldDefinition]] = []
    seen_custom: dict[uuid.UUID, str] = {}
    ok = True
    for i, raw in enumerate(cells):
        text = raw.strip()
        key = text.lower().replace(" ", "_").replace("-", "_")
        if not text:
            report.warnings.append(f"column {i + 1} has no name in the header row and is ignored")
        elif key in COLUMNS:
            fld = COLUMNS[key]
            if fld in fields:
                report.add_error(1, text, f"columns {cells[fields[fld]].strip()!r} and {text!r} both give {fld}; keep one")
                ok = False
            fields[fld] = i
        elif (defn := custom_fields.get(key) or custom_fields.get(text.lower())) is not None:
            if defn.id in seen_custom:
                report.add_error(1, text, f"columns {seen_custom[defn.id]!r} and {text!r} both give the custom field {defn.key}; keep one")
                ok = False
            seen_custom[defn.id] = text
            custom.append((i, defn))
        else:
            attributes.append((i, text))
            report.warnings.append(f"column {text!r} is not a known column; its values are stored as the custom attribute {text!r}")
    if "display_name" not in fields:
        report.add_error(1, "display_name", "the header row has no display_name (or name) column")
        ok = False
    for a, b in (("external_id", "channel"), ("channel", "external_id")):
        if a in fields and b not in fields:
            report.add_error(1, b, f"column {b} is required with column {a}")
            ok = False
    return Header(list(cells), fields, attributes, custom) if ok else None
