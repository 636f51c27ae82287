"""How each database builds JSON and formats values exactly as the present path does.

SQLite (JSON1): ``json_object`` / ``json_group_array``; a JSON value read back from a subquery
loses its JSON subtype, so every subquery's JSON is wrapped in ``json(…)`` where it is used.
Global ids and cursors (base64url of text or of a msgpack array) are two deterministic
application functions registered on each connection (:func:`register_sqlite_functions`).

PostgreSQL: ``json_build_object`` / ``json_agg`` (``[]`` for no rows), global ids and cursors in
SQL (``encode(…, 'base64')``, msgpack headers built as bytes).

Timestamps are ISO 8601 in UTC as Python's ``isoformat()`` writes them (microseconds only when
not zero, ``+00:00``); enums are their GraphQL names; booleans JSON booleans.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Boolean, ColumnElement, Integer, LargeBinary, String, Text, case, cast, func, literal, literal_column, null
from sqlalchemy.dialects.postgresql import aggregate_order_by

from guanxi.graphql.pagination import _Cursor


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sqlite_global_id(type_name: str, hex_id: str | None) -> str | None:
    """``gx_gid(type, id)``: the global id of a uuid stored as 32 hex digits (SQLite)."""
    if hex_id is None:
        return None
    return _b64(f"{type_name}:{uuid.UUID(hex_id)}".encode())


_encode_msgpack = msgspec.msgpack.Encoder().encode


def sqlite_cursor(order: str, kind: str, value: str | None, hex_id: str) -> str:
    """``gx_cursor(order, kind, value, id)``: a cursor as :func:`guanxi.graphql.pagination.encode_cursor` makes it."""
    return _b64(_encode_msgpack(_Cursor(order, kind, value if value is not None else "", uuid.UUID(hex_id))))


_REGISTERED = "guanxi.sqlgen.functions"


def register_sqlite_functions(sync_connection: Any) -> None:
    """Register ``gx_gid`` and ``gx_cursor`` on a SQLite connection (once per connection)."""
    if sync_connection.info.get(_REGISTERED):
        return
    raw = sync_connection.connection.dbapi_connection
    raw.create_function("gx_gid", 2, sqlite_global_id, deterministic=True)
    raw.create_function("gx_cursor", 4, sqlite_cursor, deterministic=True)
    sync_connection.info[_REGISTERED] = True


class Dialect:
    """JSON construction and value formatting for one database."""

    name = "sqlite"

    # -- JSON ---------------------------------------------------------------------------------
    def obj(self, pairs: Sequence[tuple[str, Any]]) -> ColumnElement[Any]:
        args: list[Any] = []
        for key, value in pairs:
            args += [literal(key, String), value]
        return func.json_object(*args)

    def embed(self, json_subquery: Any) -> ColumnElement[Any]:
        """A JSON value (or NULL) from a scalar subquery, embedded in an enclosing object."""
        return func.json(json_subquery)

    def array(self, json_column: Any, order: Any) -> ColumnElement[Any]:
        """The aggregate of a derived table's JSON values (already ordered there), ``[]`` if none."""
        return func.json_group_array(func.json(json_column))

    def json_column(self, column: Any) -> ColumnElement[Any]:
        return func.json(column)

    def position(self, order: Sequence[Any]) -> ColumnElement[Any]:
        """A row's position in a nested list (``gx_rn``): SQLite aggregates the derived table in
        its own order and needs none (a window would sort each list once more)."""
        return literal(0, Integer).label("gx_rn")

    def true_false(self, condition: Any) -> ColumnElement[Any]:
        return func.json(case((condition, "true"), else_="false"))

    def boolean_column(self, column: Any) -> ColumnElement[Any]:
        return case((column.is_(None), null()), else_=func.json(case((column != 0, "true"), else_="false")))

    def as_text(self, document: Any) -> ColumnElement[Any]:
        return document

    def gt(self, left: Any, right: Any) -> ColumnElement[Any]:
        return self.true_false(left > right)

    # -- values -------------------------------------------------------------------------------
    def global_id(self, type_name: str, id_column: Any) -> ColumnElement[Any]:
        return func.gx_gid(literal(type_name, String), id_column, type_=String)

    def iso(self, ts: Any) -> ColumnElement[Any]:
        date, clock, frac = (func.substr(ts, a, n, type_=String) for a, n in ((1, 10), (12, 8), (21, 6)))
        whole = date + literal("T", String) + clock
        return case(
            (ts.is_(None), null()),
            (frac.in_(["", "000000"]), whole + literal("+00:00", String)),
            else_=whole + literal(".", String) + frac + literal("+00:00", String),
        )

    def cursor(self, order: str, kind: str, value: Any, id_column: Any) -> ColumnElement[Any]:
        return func.gx_cursor(literal(order, String), literal(kind, String), value, id_column, type_=String)

    def enum(self, column: Any, names: dict[str, str]) -> ColumnElement[Any]:
        return case(names, value=column, else_=null())


class PostgresDialect(Dialect):
    name = "postgresql"

    def obj(self, pairs: Sequence[tuple[str, Any]]) -> ColumnElement[Any]:
        args: list[Any] = []
        for key, value in pairs:
            args += [literal(key, String), value]
        return func.json_build_object(*args)

    def embed(self, json_subquery: Any) -> ColumnElement[Any]:
        return json_subquery

    def array(self, json_column: Any, order: Any) -> ColumnElement[Any]:
        return func.coalesce(func.json_agg(aggregate_order_by(json_column, order)), literal_column("'[]'::json"))

    def json_column(self, column: Any) -> ColumnElement[Any]:
        return column

    def position(self, order: Sequence[Any]) -> ColumnElement[Any]:
        return func.row_number().over(order_by=list(order)).label("gx_rn")

    def true_false(self, condition: Any) -> ColumnElement[Any]:
        return cast(condition, Boolean)

    def boolean_column(self, column: Any) -> ColumnElement[Any]:
        return column

    def as_text(self, document: Any) -> ColumnElement[Any]:
        return cast(document, Text)

    def gt(self, left: Any, right: Any) -> ColumnElement[Any]:
        return left > right

    @staticmethod
    def _b64url(raw: Any) -> ColumnElement[Any]:
        encoded = func.replace(func.encode(raw, literal("base64", String)), literal_column("chr(10)"), literal("", String))
        return func.rtrim(func.translate(encoded, literal("+/", String), literal("-_", String)), literal("=", String))

    def global_id(self, type_name: str, id_column: Any) -> ColumnElement[Any]:
        text = literal(f"{type_name}:", String) + cast(id_column, Text)
        return self._b64url(func.convert_to(text, literal("UTF8", String)))

    def iso(self, ts: Any) -> ColumnElement[Any]:
        utc = func.timezone(literal("UTC", String), ts, type_=ts.type)
        whole = func.to_char(utc, literal('YYYY-MM-DD"T"HH24:MI:SS', String), type_=String)
        micros = cast(func.date_part(literal("microseconds", String), utc), Integer) % 1_000_000
        frac = case((micros == 0, literal("", String)), else_=func.to_char(utc, literal(".US", String), type_=String))
        return whole + frac + literal("+00:00", String)

    @staticmethod
    def _mp_str(text: Any) -> ColumnElement[Any]:
        """A msgpack string: its header (fixstr, str8 or str16 by byte length) and UTF-8 bytes."""
        raw = func.convert_to(text, literal("UTF8", String))
        n = func.octet_length(raw)
        hex_header = case(
            (n < 32, func.lpad(func.to_hex(n + 160), 2, "0")),
            (n < 256, literal("d9", String) + func.lpad(func.to_hex(n), 2, "0")),
            else_=literal("da", String) + func.lpad(func.to_hex(n), 4, "0"),
        )
        return func.decode(hex_header, literal("hex", String)).op("||")(raw)

    def cursor(self, order: str, kind: str, value: Any, id_column: Any) -> ColumnElement[Any]:
        head = func.decode(literal("94", String), literal("hex", String), type_=LargeBinary)
        parts = [literal(order, String), literal(kind, String), func.coalesce(value, literal("", String)), cast(id_column, Text)]
        packed: Any = head
        for part in parts:
            packed = packed.op("||", return_type=LargeBinary)(self._mp_str(part))
        return self._b64url(packed)

    def enum(self, column: Any, names: dict[str, str]) -> ColumnElement[Any]:
        return case(names, value=column, else_=null())


def dialect_for(name: str) -> Dialect:
    if name == "sqlite":
        return Dialect()
    if name == "postgresql":
        return PostgresDialect()
    raise ValueError(name)
