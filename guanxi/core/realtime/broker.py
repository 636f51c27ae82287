"""Real-time fan-out of committed events to subscribers (GraphQL subscriptions).

Within one process, events go straight to the local subscribers. With PostgreSQL and several
app processes, every process publishes with ``NOTIFY`` and listens with ``LISTEN`` on one
channel, so a subscriber connected to any process sees events committed by every process
(including its own, which therefore are delivered only through the database).

Payloads are small JSON objects (PostgreSQL limits a notification to 8000 bytes); a text longer
than :data:`MAX_TEXT` is cut, and subscribers that need more read the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

log = logging.getLogger("guanxi.broker")
PG_CHANNEL = "guanxi_events"
MAX_TEXT = 2000


class Envelope(msgspec.Struct, frozen=True):
    topic: str  # interaction_recorded | message_status_changed
    tenant_id: uuid.UUID
    data: dict[str, Any]


class Broker:
    """Publish/subscribe by topic; subscribers get their own bounded queue."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Envelope]]] = {}
        self._queue_size = queue_size
        self._pg: Any = None  # an asyncpg connection while listening
        self._dsn: str | None = None
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None

    # -- local delivery -------------------------------------------------------------------------

    def _deliver(self, envelope: Envelope) -> None:
        for queue in list(self._subscribers.get(envelope.topic, ())):
            try:
                queue.put_nowait(envelope)
            except asyncio.QueueFull:  # a stuck subscriber loses events rather than the server memory
                log.warning("a %s subscriber is not keeping up; an event was dropped", envelope.topic)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[Envelope]]:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(topic, set()).add(queue)
        try:
            yield queue
        finally:
            self._subscribers[topic].discard(queue)

    # -- publishing -----------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        if self._pg is None:
            self._deliver(envelope)
            return
        body = msgspec.json.encode(envelope).decode()
        try:
            await self._pg.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, body)
        except Exception:  # the listener connection broke: still serve this process
            log.exception("NOTIFY failed; delivering locally only")
            self._deliver(envelope)

    # -- PostgreSQL fan-out ---------------------------------------------------------------------

    async def listen(self, dsn: str) -> None:
        """Start publishing with NOTIFY and receiving with LISTEN (PostgreSQL only). A dropped
        connection is reopened with backoff; meanwhile events are delivered in this process only."""
        self._dsn = dsn
        await self._connect()

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(PG_CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_terminated)
        self._pg = conn

    def _on_terminated(self, _conn: Any) -> None:
        self._pg = None
        if not self._closing and (self._reconnecting is None or self._reconnecting.done()):
            log.warning("the LISTEN connection dropped; reconnecting")
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._connect()
                log.info("LISTEN connection reopened")
                return
            except Exception as exc:  # the server may be restarting
                log.warning("reopening the LISTEN connection failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    @property
    def listening(self) -> bool:
        return self._pg is not None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._deliver(msgspec.json.decode(payload, type=Envelope))
        except msgspec.DecodeError:
            log.warning("ignored a malformed notification on %s", PG_CHANNEL)

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reconnecting
        if self._pg is not None:
            conn, self._pg = self._pg, None
            with contextlib.suppress(Exception):
                await conn.remove_listener(PG_CHANNEL, self._on_notify)
            await conn.close()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+asyncpg://…`` → ``postgresql://…`` for asyncpg.connect."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
