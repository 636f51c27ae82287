"""Local wall-clock parts of a stored UTC timestamp, computed in SQL: the hour of the day and
the date in an IANA time zone, for reports that group by them (a customer's active hours, days
of a trend).

PostgreSQL converts with ``timezone(zone, column)`` (its own zone data, daylight saving
included). SQLite has no zone data, so the offset comes from Python's ``zoneinfo``: a ``CASE``
over the zone's transitions (the instants its UTC offset changed) from :data:`FIRST_YEAR` to
ten years from now, each branch adding that period's offset with ``datetime(column, '+N
minutes')``. A zone without daylight saving (Asia/Shanghai) is one branch; Europe/Berlin about
ninety. Times before :data:`FIRST_YEAR` use the offset it started with.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, cast, extract, func, literal
from sqlalchemy.sql.elements import ColumnElement

FIRST_YEAR = 2000


def _offset_minutes(zone: ZoneInfo, at: dt.datetime) -> int:
    offset = at.astimezone(zone).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


@functools.lru_cache(maxsize=64)
def transitions(name: str, until_year: int) -> tuple[tuple[dt.datetime | None, int], ...]:
    """``((start, offset_minutes), …)`` in UTC: each period from its start (None: since before
    :data:`FIRST_YEAR`) to the next period's start, with the zone's offset then."""
    zone = ZoneInfo(name)
    at = dt.datetime(FIRST_YEAR, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(until_year, 1, 1, tzinfo=dt.UTC)
    periods: list[tuple[dt.datetime | None, int]] = [(None, _offset_minutes(zone, at))]
    day = dt.timedelta(days=1)
    while at < end:
        nxt = at + day
        if _offset_minutes(zone, nxt) != periods[-1][1]:
            lo, hi = at, nxt  # the change is in (lo, hi]: find the minute
            while hi - lo > dt.timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if _offset_minutes(zone, mid) == periods[-1][1]:
                    lo = mid
                else:
                    hi = mid
            hi = hi.replace(second=0, microsecond=0)
            periods.append((hi, _offset_minutes(zone, hi)))
        at = nxt
    return tuple(periods)


def _sqlite_local(column: Any, zone: str) -> ColumnElement[Any]:
    periods = transitions(zone, dt.datetime.now(dt.UTC).year + 10)

    def shift(minutes: int) -> ColumnElement[Any]:
        return func.datetime(column, literal(f"{minutes:+d} minutes"))

    if len(periods) == 1:
        return shift(periods[0][1])
    whens = [(column < literal(start, column.type), shift(periods[i - 1][1])) for i, (start, _) in enumerate(periods) if start is not None]
    return case(*whens, else_=shift(periods[-1][1]))


def local_hour(column: Any, zone: str, dialect: str) -> ColumnElement[int]:
    """The hour of the day (0–23) of a UTC timestamp column in ``zone``."""
    if dialect == "postgresql":
        return cast(extract("hour", func.timezone(zone, column)), Integer)
    return cast(func.strftime("%H", _sqlite_local(column, zone)), Integer)


def local_date(column: Any, zone: str, dialect: str) -> ColumnElement[Any]:
    """The date of a UTC timestamp column in ``zone`` (a ``date`` on PostgreSQL, ISO text on
    SQLite)."""
    if dialect == "postgresql":
        return func.date(func.timezone(zone, column))
    return func.date(_sqlite_local(column, zone))
