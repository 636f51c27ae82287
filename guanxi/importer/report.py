"""What an import answers: the report, and one line of it per invalid cell."""

from __future__ import annotations

import msgspec

__all__ = ["MAX_LISTED_ERRORS", "ImportReport", "RowError"]

MAX_LISTED_ERRORS = 1000


class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid cell (or row, when ``column`` is empty). ``row`` is 1-based, header = 1."""

    row: int
    column: str
    message: str


class ImportReport(msgspec.Struct, kw_only=True):
    """The outcome of an import. ``created`` counts new customers, ``updated`` the rows that
    matched an existing customer (or an earlier row). With errors, nothing was written
    (``created == updated == 0``); ``errors`` lists at most :data:`MAX_LISTED_ERRORS`,
    ``error_count`` counts them all."""

    rows_read: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = msgspec.field(default_factory=list)
    error_count: int = 0
    warnings: list[str] = msgspec.field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    def add_error(self, row: int, column: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(RowError(row=row, column=column, message=message))
