"""SQL building blocks that read the same on SQLite and PostgreSQL.

* Time as seconds since 1970: ``extract(epoch …)`` on PostgreSQL, ``julianday`` on SQLite.
* Decay: ``exp(k × age)`` with ``k = -ln 2 / half-life``, the exponent clamped at -700 (PostgreSQL
  raises on an underflowing ``exp``; e^-700 is 1e-304, zero for any score).
* Scalar ``least``/``greatest``: PostgreSQL's functions; SQLite's two-argument ``min``/``max``.
  They differ on NULL (PostgreSQL skips it, SQLite returns NULL): only give them non-NULL values.
* ``exp``, ``ln`` and ``floor`` come with SQLite's math functions (compiled in since 3.35 when
  the build enables them, as this machine's 3.40 does). A build without them gets deterministic
  Python versions registered on each new connection (:func:`ensure_sqlite_math`), so the numbers
  are the same either way.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import Float, and_, case, cast, event, func, literal, null
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

LN2 = math.log(2)
LN10 = math.log(10)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_EXPONENT = -700.0


class Dialect:
    """Expressions for one database dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pg = name == "postgresql"

    def epoch(self, col: Any) -> ColumnElement[Any]:
        """A timestamp column as seconds since 1970 (UTC), a float."""
        if self.pg:
            return cast(func.extract("epoch", col), Float)
        return (func.julianday(col) - 2440587.5) * 86400.0

    def least(self, a: Any, b: Any) -> ColumnElement[Any]:
        return func.least(a, b) if self.pg else func.min(a, b)

    def greatest(self, a: Any, b: Any) -> ColumnElement[Any]:
        return func.greatest(a, b) if self.pg else func.max(a, b)

    def decay(self, age_seconds: Any, half_life_seconds: float) -> ColumnElement[Any]:
        """0.5 ** (age / half-life), as ``exp`` of a clamped exponent."""
        k = literal(-LN2 / half_life_seconds, Float)
        return func.exp(self.greatest(k * age_seconds, literal(MIN_EXPONENT, Float)))

    def json_number(self, element: Any) -> ColumnElement[Any]:
        """A JSON value as a float when it is a number or a string holding a plain decimal
        number (``99``, ``"99.50"``), else NULL, identically on both databases (a bare CAST
        fails on PostgreSQL for ``"¥99"`` and gives 0 on SQLite)."""
        text_value = func.trim(element.as_string())
        plain: ColumnElement[Any]
        if self.pg:
            plain = text_value.op("~")(r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)$")
        else:
            plain = and_(
                text_value.op("GLOB")("*[0-9]*"),
                text_value.op("NOT GLOB")("*[^0-9.-]*"),
                text_value.op("NOT GLOB")("?*-*"),
                text_value.op("NOT GLOB")("*.*.*"),
            )
        return case((plain, cast(text_value, Float)), else_=null())

    def log10_1p(self, x: Any) -> ColumnElement[Any]:
        """log10(1 + max(x, 0))."""
        return func.ln(literal(1.0, Float) + self.greatest(x, literal(0.0, Float))) / literal(LN10, Float)


def epoch_seconds(at: dt.datetime) -> float:
    """The Python twin of :meth:`Dialect.epoch` for a bound value."""
    return (at - EPOCH).total_seconds()


def _py_exp(x: float | None) -> float | None:
    return None if x is None else math.exp(x)


def _py_ln(x: float | None) -> float | None:
    return None if x is None or x <= 0 else math.log(x)


def _py_floor(x: float | None) -> float | None:
    return None if x is None else float(math.floor(x))


def ensure_sqlite_math(engine: AsyncEngine) -> bool:
    """On SQLite without math functions, register ``exp``, ``ln`` and ``floor`` on every new
    connection (deterministic, so SQLite may use them in indexes and query plans). Returns
    whether registration was needed. A no-op on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return False
    import sqlite3

    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("select exp(1), ln(2), floor(1.5)")
        return False
    except sqlite3.OperationalError:
        pass
    finally:
        probe.close()

    @event.listens_for(engine.sync_engine, "connect")
    def register(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - only on SQLite builds without math functions
        dbapi_conn.create_function("exp", 1, _py_exp, deterministic=True)
        dbapi_conn.create_function("ln", 1, _py_ln, deterministic=True)
        dbapi_conn.create_function("floor", 1, _py_floor, deterministic=True)

    return True
