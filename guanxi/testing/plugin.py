"""The pytest plugin of :mod:`guanxi.testing`: fixtures for testing Guanxi and its plugins.

Registered through the ``pytest11`` entry point ``guanxi``, so it loads in every pytest run of an
environment where Guanxi is installed. It therefore only *offers* fixtures (none is autouse) and
registers the ``plugins`` marker; it imports Guanxi's heavier modules (the app, httpx) only when
a test asks for a fixture that needs them. A project's own fixtures of the same names win.

Tests isolate from each other by tenant: every test gets its own tenant in a database shared by
the session, which also exercises tenant scoping on every query.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    import httpx
    from litestar import Litestar

    from guanxi.core.base.context import RequestContext
    from guanxi.core.runtime import Runtime

PG_ENV = "GUANXI_TEST_DATABASE_URL"
REQUIRE_PG_ENV = "GUANXI_TEST_REQUIRE_POSTGRES"
BASE_URL = "http://testserver.local"
#: the server secret of test runtimes (API key hashes); never a production value
TEST_SECRET = "guanxi-test-secret-" + "0" * 32
#: how long a test runtime's SQLite write waits for its turn (``database.busy_timeout_ms``; the
#: default is 5 s). The session database is shared by the whole run, and a loaded CI machine can
#: stall a write for seconds (a WAL checkpoint's fsync): a test pins behaviour, not latency. A
#: write that waits for itself still fails (later), and the log names the task holding the slot.
TEST_BUSY_TIMEOUT_MS = 30_000

#: ``await graphql(query, variables=None, *, ok=True)``: the type of the ``graphql`` fixture.
GraphQL = Callable[..., Awaitable[dict[str, Any]]]

F = TypeVar("F", bound=Callable[..., Any])


def _async_fixture(fn: F) -> F:
    """``pytest_asyncio.fixture`` when pytest-asyncio is installed (works in strict and auto
    mode), else a plain fixture."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - the kit's async fixtures then need another runner
        return cast(F, pytest.fixture(fn))
    return cast(F, pytest_asyncio.fixture(fn))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "plugins(*names): enable these Guanxi plugins for the runtime fixture")


# -- database ---------------------------------------------------------------------------------


async def _pg_admin(url: str, sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of this test session's database (created empty, migrated by :func:`runtime`).

    SQLite in a temporary folder, or, when ``GUANXI_TEST_DATABASE_URL`` names a PostgreSQL
    server, a database ``guanxi_test_<random>`` created on it for the session and dropped at the
    end. ``GUANXI_TEST_REQUIRE_POSTGRES=1`` makes a missing URL fail the run instead of falling
    back to SQLite (CI sets it for the PostgreSQL leg)."""
    from sqlalchemy.engine import make_url

    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{REQUIRE_PG_ENV}=1 but {PG_ENV} is not set")
        path = tmp_path_factory.mktemp("db") / "guanxi.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"guanxi_test_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@_async_fixture
async def own_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of this test alone, on the session database's kind (a SQLite file, or a
    database created on the same PostgreSQL server and dropped afterwards), for a test about the
    deployment as a whole (what the workers do across tenants), where rows other tests left in
    the session database would be in the way. Not migrated: give it to a runtime and upgrade."""
    from sqlalchemy.engine import make_url

    if not database_url.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
        return
    name = f"guanxi_own_{secrets.token_hex(4)}"
    await _pg_admin(database_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- runtime ----------------------------------------------------------------------------------


@pytest.fixture
def plugin_names(request: pytest.FixtureRequest) -> list[str]:
    """The plugins to enable: the arguments of the closest ``@pytest.mark.plugins(...)``."""
    marker = request.node.get_closest_marker("plugins")
    return list(marker.args) if marker else []


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    """Plugins given as objects (name → module or instance); override in a test module. They
    still need the ``plugins`` marker to be enabled."""
    return {}


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    """Plugin settings, ``{"plugin name": {"key": value}}``, written as ``[plugins.<name>]``
    sections of the test's config file; override in a test module or class."""
    return {}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"plugin_config: cannot write {type(value).__name__} values to TOML")


def write_config(path: Path, plugin_config: dict[str, dict[str, Any]]) -> Path:
    """Write plugin sections to a TOML file (the database and enabled list come from the
    environment the ``runtime`` fixture passes)."""
    lines: list[str] = []
    for name, section in plugin_config.items():
        lines.append(f"[plugins.{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in section.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@_async_fixture
async def runtime(
    database_url: str,
    plugin_names: list[str],
    extra_plugins: dict[str, object],
    plugin_config: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> AsyncIterator[Runtime]:
    """A started runtime on the session database, migrated for the enabled plugins (core, then
    each plugin's own history). It reads only the test's own config file, never a
    ``guanxi.toml`` of the working directory or ``GUANXI_*`` variables of the environment.
    SQLite writes wait up to :data:`TEST_BUSY_TIMEOUT_MS` for their turn (see there)."""
    from guanxi.core.migrate import upgrade
    from guanxi.core.runtime import Runtime

    config = write_config(tmp_path / "guanxi-test.toml", plugin_config)
    environ = {
        "GUANXI_DATABASE_URL": database_url,
        "GUANXI_PLUGINS": ",".join(plugin_names),
        "GUANXI__AUTH__SECRET": TEST_SECRET,
        "GUANXI__DATABASE__BUSY_TIMEOUT_MS": str(TEST_BUSY_TIMEOUT_MS),
    }
    rt = Runtime.from_config(config, environ=environ, extra_plugins=extra_plugins)
    await upgrade(rt)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


@_async_fixture
async def tenant_id(runtime: Runtime) -> AsyncIterator[uuid.UUID]:
    """A fresh tenant (with the default pipeline) for this test alone. The channel accounts of
    the test's plugin config (e.g. ``[plugins.wecom] corps``) that name no tenant are imported
    into it, as ``guanxi db upgrade`` does for the configured tenant, and removed afterwards, so
    the next test can connect the same accounts (keys are unique across tenants)."""
    from sqlalchemy import delete

    from guanxi.core.domain.models import ChannelAccount
    from guanxi.core.services.accounts import forget_accounts, import_config_accounts
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.write_session(None) as session:
        tid = await create_tenant(session, f"t-{secrets.token_hex(6)}", "Test tenant")
    await import_config_accounts(runtime, tenant_id=tid)
    try:
        yield tid
    finally:
        async with runtime.write_session(tid) as session:
            await session.execute(delete(ChannelAccount))
        forget_accounts(runtime)


@pytest.fixture
def ctx(tenant_id: uuid.UUID) -> RequestContext:
    """A ``RequestContext`` acting in the test's tenant."""
    from guanxi.core.base.context import RequestContext

    return RequestContext(tenant_id=tenant_id)


# -- HTTP -------------------------------------------------------------------------------------


async def api_key(runtime: Runtime, tenant_id: uuid.UUID, role: str = "admin", *, user_id: uuid.UUID | None = None) -> str:
    """Create an API key of ``role`` in the tenant (for ``user_id``, required for sales and
    manager keys) and return it, ready for ``Authorization: Bearer <key>``."""
    from guanxi.core.auth import create_api_key, server_secret
    from guanxi.core.base.context import RequestContext

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        created = await create_api_key(tx, server_secret(runtime.settings.auth), name=f"test {role}", role=role, user_id=user_id)
    return created.key


async def use_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Make the configured tenant this one (plugin routes that ask ``runtime.tenant_id()``, the
    dev-mode anonymous caller). GraphQL callers act in the tenant of their credentials."""
    import msgspec
    from sqlalchemy import select

    from guanxi.core.domain.models import Tenant
    from guanxi.core.storage.tenancy import unscoped

    async with runtime.session(None) as s, unscoped(s):
        slug = (await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one()
    runtime.settings = msgspec.structs.replace(runtime.settings, tenant=slug)


@_async_fixture
async def app(runtime: Runtime, tenant_id: uuid.UUID) -> Litestar:
    """The HTTP application (GraphQL, health check, the enabled plugins' routes), acting in the
    test's tenant. ``app.state.runtime`` is the ``runtime`` fixture; the runtime's lifetime is
    the fixture's, not the app's, and no background workers run (call ``inbox.run_once`` /
    ``outbox.run_once`` in the test)."""
    from guanxi.app import create_app

    await use_tenant(runtime, tenant_id)
    return create_app(runtime)


@_async_fixture
async def admin_key(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    """An admin API key of the test's tenant."""
    return await api_key(runtime, tenant_id, "admin")


@_async_fixture
async def client(app: Litestar, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` on the app, in process (base URL ``http://testserver.local``),
    authenticated as an admin of the test's tenant (``Authorization: Bearer <admin_key>``); pass
    ``headers={"Authorization": None}``-free requests through ``anonymous_client`` instead."""
    import httpx

    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, app)), base_url=BASE_URL, headers=headers) as c:
        yield c


@_async_fixture
async def anonymous_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` on the app without credentials (webhooks, public routes, 401s)."""
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, app)), base_url=BASE_URL) as c:
        yield c


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQL:
    """POST a GraphQL operation to ``/graphql``: ``await graphql(query, variables=None, ok=True)``
    returns the decoded body (``data`` and ``errors``); with ``ok=True`` it asserts the HTTP status
    is 200 and there are no errors."""

    async def call(query: str, variables: dict[str, Any] | None = None, *, ok: bool = True) -> dict[str, Any]:
        response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if ok:
            assert not body.get("errors"), body["errors"]
        return body

    return call
