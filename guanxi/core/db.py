"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from guanxi.core.config import DatabaseSettings
from guanxi.core.errors import ConfigError
from guanxi.core.tenancy import TenantSession


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Create the async engine. SQLite gets WAL, a busy timeout and foreign keys switched on."""
    url = make_url(settings.url)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"echo": settings.echo}
    if backend == "sqlite":
        if url.drivername != "sqlite+aiosqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        kwargs["connect_args"] = {"timeout": settings.busy_timeout_ms / 1000}
    elif backend == "postgresql":
        if url.drivername != "postgresql+asyncpg":
            url = url.set(drivername="postgresql+asyncpg")
        kwargs["pool_size"] = settings.pool_size
        kwargs["pool_pre_ping"] = True
    else:
        raise ConfigError(f"invalid config at `$.database.url`: unsupported database {backend!r} (use sqlite or postgresql)")
    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as exc:
        hint = " (install the extra: pip install 'guanxi[postgres]')" if backend == "postgresql" else ""
        raise ConfigError(f"invalid config at `$.database.url`: driver missing: {exc.name}{hint}") from None
    if backend == "sqlite":
        busy = int(settings.busy_timeout_ms)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={busy}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[TenantSession]:
    return async_sessionmaker(engine, class_=TenantSession, expire_on_commit=False, autoflush=False)
