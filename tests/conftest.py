"""Shared fixtures: a migrated database (SQLite file, or PostgreSQL when
``GUANXI_TEST_DATABASE_URL`` names one), a runtime per test, and a fresh tenant per test.

Tests isolate from each other by tenant: every test gets its own tenant in a database shared by
the session, which also exercises tenant scoping on every query.

On PostgreSQL, a database named ``guanxi_test_<random>`` is created for the session and dropped
at the end. ``GUANXI_TEST_REQUIRE_POSTGRES=1`` makes an unreachable server fail the run instead of
falling back (CI sets it for the PostgreSQL leg).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from guanxi.core.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.pipelines import create_tenant

PG_ENV = "GUANXI_TEST_DATABASE_URL"


async def _pg_admin(url: str, sql: str) -> None:
    engine = create_async_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of this test session's database (created empty, migrated by :func:`runtime`)."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("GUANXI_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"GUANXI_TEST_REQUIRE_POSTGRES=1 but {PG_ENV} is not set")
        path = tmp_path_factory.mktemp("db") / "guanxi.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"guanxi_test_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def plugin_names(request: pytest.FixtureRequest) -> list[str]:
    marker = request.node.get_closest_marker("plugins")
    return list(marker.args) if marker else []


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    """Plugins given as objects (name → module or instance); override in a test module."""
    return {}


@pytest.fixture
async def runtime(database_url: str, plugin_names: list[str], extra_plugins: dict[str, object], tmp_path: Path) -> AsyncIterator[Runtime]:
    """A started runtime on the session database, migrated for the enabled plugins."""
    from guanxi.core.migrate import upgrade

    environ = {"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": ",".join(plugin_names)}
    rt = Runtime.from_config(None, environ=environ, extra_plugins=extra_plugins)
    await upgrade(rt)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


@pytest.fixture
async def tenant_id(runtime: Runtime) -> uuid.UUID:
    """A fresh tenant (with the default pipeline) for this test alone."""
    async with runtime.session(None) as session, session.begin():
        return await create_tenant(session, f"t-{secrets.token_hex(6)}", "Test tenant")


@pytest.fixture
def ctx(tenant_id: uuid.UUID) -> RequestContext:
    return RequestContext(tenant_id=tenant_id)
