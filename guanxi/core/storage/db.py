"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine

from guanxi.core.base.config import DatabaseSettings
from guanxi.core.base.errors import BusyError, ConfigError
from guanxi.core.storage.tenancy import RLS_KEY, TenantSession

log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def json_dumps(value: Any) -> str:
    """JSON columns' encoder: msgspec (several times faster than :func:`json.dumps`, compact);
    what msgspec refuses goes through :func:`json.dumps` as before."""
    try:
        return _encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """JSON columns' decoder: msgspec, or :func:`json.loads` for what msgspec refuses (``NaN``
    written by older versions, integers beyond 64 bits)."""
    try:
        return _decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Create the async engine. SQLite gets WAL, a busy timeout and foreign keys switched on."""
    url = make_url(settings.url)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"echo": settings.echo, "json_serializer": json_dumps, "json_deserializer": json_loads}
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
        _slot_timeouts[engine.sync_engine] = busy / 1000

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={busy}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # SQLAlchemy emits BEGIN itself (below), instead of the driver's implicit handling
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A write transaction takes SQLite's write lock at BEGIN. A deferred transaction that
            # reads and then writes fails at once with "database is locked" when another writer
            # committed in between (the busy timeout does not help it); an IMMEDIATE one waits
            # for the lock, up to the busy timeout. Reads stay deferred and concurrent.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    if backend == "postgresql" and settings.row_level_security:
        from guanxi.core.storage.rls import scope_transaction

        @event.listens_for(engine.sync_engine, "begin")
        def _unscoped_by_default(conn: Any) -> None:
            # core-level connections (queue claims, migrations) work across tenants; ORM
            # sessions narrow this to their tenant right after (tenancy._rls_scope)
            scope_transaction(conn, None, unscoped=True)

    return engine


def is_busy(error: BaseException) -> bool:
    """Whether an error is SQLite's "database is locked" (or "busy"): another connection holds
    the write lock past the busy timeout. Transient; the statement changed nothing."""
    if isinstance(error, BusyError):
        return True
    if not isinstance(error, OperationalError):
        return False
    text = str(error.orig if error.orig is not None else error).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


@asynccontextmanager
async def busy_as_error() -> AsyncIterator[None]:
    """Turn SQLite's "database is locked" inside the block into :class:`BusyError` (a clear,
    retryable ``BUSY`` for API callers, a one-line warning for workers)."""
    try:
        yield
    except OperationalError as exc:
        if is_busy(exc):
            raise BusyError() from exc
        raise


WRITE = "guanxi_write"
#: Execution option of per-process bookkeeping statements whose timing depends on the clock
#: (cache refreshes of tenant plugin choices and API keys, ``last_used_at`` writes): statement
#: counts in tests leave them out (:func:`guanxi.testing.sql.count_statements`).
BOOKKEEPING = "guanxi_bookkeeping"
_write_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
#: per engine: how long a write waits for the process's write slot (``database.busy_timeout_ms``)
_slot_timeouts: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
#: per engine: which task holds the write slot, since when (monotonic): named when a write times out
_holders: weakref.WeakKeyDictionary[Any, tuple[str, float]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def sqlite_writer(engine: AsyncEngine, timeout_s: float | None = None) -> AsyncIterator[None]:
    """On SQLite, one write transaction at a time per process, first come first served.

    SQLite has one writer per database; left to its busy handler, waiting writers poll with
    growing sleeps and a burst of webhooks waits seconds behind the inbox worker. An asyncio lock
    hands the write lock over in order instead. No-op on PostgreSQL. A write waits for its turn
    up to ``timeout_s`` (default: the engine's ``database.busy_timeout_ms``, the same patience
    SQLite's own busy handler has), then raises :class:`BusyError`; the log names the task that
    held the slot and for how long. A write transaction must not open another one inside it (it
    would wait for itself)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    key = engine.sync_engine
    lock = _write_locks.get(key)
    if lock is None:
        lock = _write_locks[key] = asyncio.Lock()
    wait_s = timeout_s if timeout_s is not None else _slot_timeouts.get(key, 5.0)
    try:
        await asyncio.wait_for(lock.acquire(), wait_s)
    except TimeoutError:
        holder, since = _holders.get(key, ("?", time.monotonic()))
        log.warning("no SQLite write slot within %g s: task %r has held it for %.1f s", wait_s, holder, time.monotonic() - since)
        raise BusyError(
            f"the database is busy: no write slot within {wait_s:g} s (another write of this process is running); retry in a few seconds"
        ) from None
    task = asyncio.current_task()
    _holders[key] = (task.get_name() if task is not None else "?", time.monotonic())
    try:
        yield
    finally:
        _holders.pop(key, None)
        lock.release()


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A Core connection in a transaction that will write (see ``_sqlite_begin``)."""
    async with busy_as_error(), sqlite_writer(engine), engine.connect() as plain:
        conn = await plain.execution_options(**{WRITE: True})
        async with conn.begin():
            yield conn


def create_sessionmaker(engine: AsyncEngine, *, row_level_security: bool = False) -> async_sessionmaker[TenantSession]:
    info = {RLS_KEY: True} if row_level_security and engine.dialect.name == "postgresql" else {}
    return async_sessionmaker(engine, class_=TenantSession, expire_on_commit=False, autoflush=False, info=info)
