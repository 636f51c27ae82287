"""Local hour and date of a stored UTC timestamp computed in SQL (``guanxi.core.storage.localtime``)
agree with Python's ``zoneinfo`` on both databases, across daylight-saving changes and in zones
with odd offsets."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import literal, select

from guanxi.core.domain.models import UTCDateTime
from guanxi.core.runtime import Runtime
from guanxi.core.storage.localtime import local_date, local_hour, transitions

ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]


def instants(zone: str) -> list[dt.datetime]:
    """Minutes around each of the zone's changes in 2024–2026, and random instants since 2001."""
    out = []
    for start, _ in transitions(zone, 2030):
        if start is not None and 2024 <= start.year <= 2026:
            out += [start + dt.timedelta(minutes=m) for m in (-61, -1, 0, 1, 59)]
    rng = random.Random(zone)
    base = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    out += [base + dt.timedelta(seconds=rng.randrange(0, 26 * 365 * 86400)) for _ in range(40)]
    return out


@pytest.mark.parametrize("zone", ZONES)
async def test_sql_local_hour_and_date_match_zoneinfo(runtime: Runtime, zone: str) -> None:
    dialect = runtime.engine.dialect.name
    moments = instants(zone)
    columns = []
    for at in moments:
        value = literal(at, UTCDateTime())
        columns += [local_hour(value, zone, dialect), local_date(value, zone, dialect)]
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(*columns))).one()
    for n, at in enumerate(moments):
        local = at.astimezone(ZoneInfo(zone))
        hour, day = row[2 * n], row[2 * n + 1]
        assert (int(hour), str(day)) == (local.hour, local.date().isoformat()), f"{at.isoformat()} in {zone}"


def test_a_zone_without_daylight_saving_is_one_period() -> None:
    assert transitions("Asia/Shanghai", 2040) == ((None, 480),)
    berlin = transitions("Europe/Berlin", 2030)
    assert berlin[1] == (dt.datetime(2000, 3, 26, 1, 0, tzinfo=dt.UTC), 120)
    assert len(berlin) == 1 + 2 * 30
