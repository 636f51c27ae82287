"""PostgreSQL's JIT compilation is off on Guanxi's connections unless ``database.jit`` turns it
on: a compile, decided by estimated cost (which grows with the tables), cost a scoring batch at a
million customers more than half its work."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from guanxi.core.base.config import DatabaseSettings
from guanxi.core.storage.db import create_engine


@pytest.mark.parametrize("jit", [False, True])
async def test_connections_run_with_jit_off_unless_the_setting_leaves_it_to_the_server(database_url: str, jit: bool) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    engine = create_engine(DatabaseSettings(url=database_url, jit=jit))
    try:
        async with engine.connect() as conn:
            setting, source = (await conn.execute(text("SELECT setting, source FROM pg_settings WHERE name = 'jit'"))).one()
    finally:
        await engine.dispose()
    if jit:  # whatever the server's configuration says
        assert source != "client"
    else:  # off, set by the connection
        assert (setting, source) == ("off", "client")
