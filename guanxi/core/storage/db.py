"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
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
        if not settings.jit:
            # a scoring batch of 2,000 customers ran in ~100 ms; at a million customers its
            # estimated cost passed jit_above_cost and the server spent ~60 ms compiling it
            kwargs["connect_args"] = {"server_settings": {"jit": "off"}}
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
#: True inside a background worker (a queue worker's batches, :class:`~guanxi.core.queues.queue.QueueWorker`):
#: its write transactions on SQLite yield the write slot to requests (:class:`WriteSlot`)
background_writes: ContextVar[bool] = ContextVar("guanxi_background_writes", default=False)


class WriteSlot:
    """One process's turn at SQLite's write lock, handed over in order, requests first.

    Requests (webhook acks, mutations) wait for the transaction holding the slot and then go
    before every background writer that waits (a queue worker's claim or batch,
    :data:`background_writes`); among requests, and among background writers, first come first
    served. A background writer is passed over at most :attr:`max_overtakes` times in a row, so
    a stream of requests cannot starve the workers. :attr:`request_waits` counts the requests
    that had to wait while a background writer held the slot and :attr:`background_held_s` the
    time background writers held it: the inbox worker sizes its batches from them
    (:func:`guanxi.core.queues.inbox.next_claim_size`)."""

    max_overtakes = 4

    def __init__(self) -> None:
        #: who holds the slot: None (free), True (a background writer), False (a request)
        self.holder: bool | None = None
        self._requests: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._overtakes = 0
        self._since = 0.0
        self.request_waits = 0
        self.background_held_s = 0.0

    @property
    def waiting(self) -> tuple[int, int]:
        """How many requests and background writers wait for the slot."""
        return sum(not f.done() for f in self._requests), sum(not f.done() for f in self._background)

    async def acquire(self, background: bool) -> None:
        if self.holder is None:
            self._take(background)
            return
        if not background and self.holder:
            self.request_waits += 1
        queue = self._background if background else self._requests
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over just as the waiter gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
            raise

    def release(self) -> None:
        if self.holder:
            self.background_held_s += time.perf_counter() - self._since
        fut, background = self._next()
        if fut is None:
            self.holder = None
            return
        self._take(background)
        fut.set_result(None)

    def _take(self, background: bool) -> None:
        self.holder = background
        self._since = time.perf_counter()

    def _next(self) -> tuple[asyncio.Future[None] | None, bool]:
        for queue in (self._requests, self._background):
            while queue and queue[0].done():
                queue.popleft()
        if self._requests and (not self._background or self._overtakes < self.max_overtakes):
            if self._background:
                self._overtakes += 1
            return self._requests.popleft(), False
        if self._background:
            self._overtakes = 0
            return self._background.popleft(), True
        return None, False


_write_slots: weakref.WeakKeyDictionary[Any, WriteSlot] = weakref.WeakKeyDictionary()
#: per engine: how long a write waits for the process's write slot (``database.busy_timeout_ms``)
_slot_timeouts: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
#: per engine: which task holds the write slot, since when (monotonic): named when a write times out
_holders: weakref.WeakKeyDictionary[Any, tuple[str, float]] = weakref.WeakKeyDictionary()


def write_slot(engine: AsyncEngine) -> WriteSlot | None:
    """This process's :class:`WriteSlot` of a SQLite engine; None on PostgreSQL (no slot)."""
    if engine.dialect.name != "sqlite":
        return None
    slot = _write_slots.get(engine.sync_engine)
    if slot is None:
        slot = _write_slots[engine.sync_engine] = WriteSlot()
    return slot


@asynccontextmanager
async def sqlite_writer(engine: AsyncEngine, timeout_s: float | None = None) -> AsyncIterator[None]:
    """On SQLite, one write transaction at a time per process, requests before background work.

    SQLite has one writer per database; left to its busy handler, waiting writers poll with
    growing sleeps and a burst of webhooks waits seconds behind the inbox worker. A
    :class:`WriteSlot` hands the write lock over in order instead, a request (an ack) before a
    worker's next batch. No-op on PostgreSQL. A write waits for its turn up to ``timeout_s``
    (default: the engine's ``database.busy_timeout_ms``, the same patience SQLite's own busy
    handler has), then raises :class:`BusyError`; the log names the task that held the slot and
    for how long. A write transaction must not open another one inside it (it would wait for
    itself)."""
    slot = write_slot(engine)
    if slot is None:
        yield
        return
    key = engine.sync_engine
    wait_s = timeout_s if timeout_s is not None else _slot_timeouts.get(key, 5.0)
    try:
        await asyncio.wait_for(slot.acquire(background_writes.get()), wait_s)
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
        slot.release()


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
