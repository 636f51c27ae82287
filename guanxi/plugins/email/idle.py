"""Receiving by IMAP IDLE (RFC 2177): a worker process keeps one connection per mailbox in IDLE
and reads new mail as soon as the server announces it (``* n EXISTS``), instead of waiting for the
minute's poll.

The IDLE connection is a doorbell: what is new is read by :func:`guanxi.plugins.email.imap.poll`,
which resumes after the last UID stored (``email_imap_state``, the one record of how far a folder
was read). So a connection that drops (a server restart) loses and doubles nothing: the
reconnection's first poll reads what arrived meanwhile.

* One IDLE per mailbox across worker processes: a process holds a lease on the mailbox's
  ``email_mailbox_state`` row (``idle_holder`` until ``idle_until``), taken with one conditional
  ``UPDATE`` (the queues' ``locked_until`` pattern) and renewed while the connection lives; a
  process that dies leaves a lease that runs out, and another takes the mailbox over. While a
  live lease is held the ``email.imap_poll`` job skips the mailbox.
* IDLE is restarted every ``idle_renew_s`` (25 minutes), before the 29 minutes after which
  servers may drop an idle client.
* A lost connection or a failed login is retried with backoff (full jitter, capped), each failure
  kept on the mailbox (``EmailMailbox.lastError``); the password is never part of it.
* A server without IDLE (no ``IDLE`` in CAPABILITY) or a ``starttls`` mailbox (the async client
  has no STARTTLS) is left to the minute's poll: ``receiving`` is ``polling``.
* Which mailboxes: those receiving is switched on for (``pollEmailMailbox`` scheduled their
  ``email.imap_poll`` job), of tenants that are active and have the plugin enabled.

The client is aioimaplib (asyncio); the poll keeps the standard library's ``imaplib``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from typing import Any, Final

import aioimaplib
from sqlalchemy import or_, select, update

from guanxi import JobRun, NotFoundError, RequestContext, Runtime
from guanxi.core.domain.models import ScheduledJob, Tenant, utcnow
from guanxi.core.queues.queue import backoff
from guanxi.core.services import accounts
from guanxi.core.storage.tenancy import unscoped
from guanxi.plugins.email import imap
from guanxi.plugins.email.models import EmailMailboxState
from guanxi.plugins.email.settings import CHANNEL, EmailSettings, Mailbox, MailboxSecrets
from guanxi.plugins.email.tls import tls_context

log = logging.getLogger("guanxi.email.idle")

#: restart IDLE this often: servers may log out a client idle for 30 minutes (RFC 2177)
RENEW_S: Final = 25 * 60.0
#: how long a process's hold on a mailbox's IDLE lasts without renewal
LEASE_S: Final = 90.0
#: a mailbox whose server offers no IDLE is tried again after this long (its settings may change)
RECHECK_S: Final = 3600.0


class _NoLoginLog(logging.Filter):
    """aioimaplib logs the commands it sends at DEBUG, masking the password only as typed: a
    password with a quote or a backslash is sent escaped and would show. Drop LOGIN lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return " LOGIN " not in record.getMessage()


logging.getLogger(aioimaplib.aioimaplib.__name__).addFilter(_NoLoginLog())


class IdleUnsupported(Exception):  # noqa: N818 - an outcome, not a failure
    """The mailbox is read by polling: its server offers no IDLE, or the connection is STARTTLS."""


class LeaseLost(Exception):  # noqa: N818
    """Another process took the mailbox over (this one stalled past its lease)."""


def holder_id() -> str:
    """This process's name in the lease: host, pid and a random part (a restarted pid differs)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def claim(runtime: Runtime, tenant_id: uuid.UUID, key: str, holder: str, lease_s: float) -> bool:
    """Take (or renew) the mailbox's IDLE lease for ``holder``; False when another holds it."""
    now = utcnow()
    until = now + dt.timedelta(seconds=lease_s)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        if await tx.session.get(EmailMailboxState, (tenant_id, key)) is None:
            tx.session.add(EmailMailboxState(mailbox=key, receiving="polling"))
            await tx.session.flush()
        t = EmailMailboxState
        stmt = (
            update(t)
            .where(t.mailbox == key, or_(t.idle_holder.is_(None), t.idle_holder == holder, t.idle_until < now))
            .values(idle_holder=holder, idle_until=until)
        )
        result = await tx.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))


async def mark(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    key: str,
    holder: str,
    *,
    receiving: str | None = None,
    error: str | None = None,
    release: bool = False,
) -> None:
    """Record how the mailbox receives and the last IDLE error (None: it works), while ``holder``
    holds the lease; ``release`` gives the lease up."""
    values: dict[str, Any] = {"idle_error": error, "updated_at": utcnow()}
    if receiving is not None:
        values["receiving"] = receiving
    if release:
        values |= {"idle_holder": None, "idle_until": None}
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        t = EmailMailboxState
        await tx.session.execute(update(t).where(t.mailbox == key, t.idle_holder == holder).values(**values))


async def held(runtime: Runtime, tenant_id: uuid.UUID, key: str) -> bool:
    """Whether a live IDLE connection watches the mailbox (the poll job then skips it)."""
    async with runtime.session(tenant_id) as session:
        row = await session.get(EmailMailboxState, (tenant_id, key))
    return row is not None and row.receiving == "idle" and row.idle_until is not None and _aware(row.idle_until) > utcnow()


async def run_poll_job(job: JobRun) -> None:
    """The minute's poll (``email.imap_poll``), skipped while a worker's IDLE connection watches
    the mailbox."""
    key = str(job.payload["mailbox"])
    if not await held(job.runtime, job.tenant_id, key):
        await imap.poll(job.runtime, job.tenant_id, key)


async def mailboxes_to_watch(runtime: Runtime, tenant_id: uuid.UUID | None = None) -> list[tuple[uuid.UUID, str]]:
    """(tenant, mailbox) of every mailbox receiving is switched on for: its poll job is
    scheduled, its tenant active and the plugin enabled for it."""
    job = ScheduledJob
    stmt = (
        select(job.tenant_id, job.payload)
        .join(Tenant, Tenant.id == job.tenant_id)
        .where(job.kind == imap.POLL_JOB, job.status.in_(("scheduled", "running")), Tenant.status != "suspended")
    )
    if tenant_id is not None:
        stmt = stmt.where(job.tenant_id == tenant_id)
    async with runtime.session(None) as session, unscoped(session):
        rows = (await session.execute(stmt)).all()
    found: list[tuple[uuid.UUID, str]] = []
    for owner, payload in rows:
        key = str((payload or {}).get("mailbox") or "")
        if key and await runtime.plugin_enabled(CHANNEL, owner):
            found.append((owner, key))
    return sorted(set(found))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _error(exc: BaseException) -> str:
    if isinstance(exc, imap.LoginRefused):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the IMAP server did not answer in time"
    return f"{type(exc).__name__}: {exc}"[:500]


class Watcher:
    """One mailbox's IDLE connection, reconnected with backoff until stopped."""

    def __init__(
        self, runtime: Runtime, tenant_id: uuid.UUID, key: str, holder: str, *, lease_s: float, renew_s: float, retry_cap_s: float
    ) -> None:
        self.runtime, self.tenant_id, self.key, self.holder = runtime, tenant_id, key, holder
        self.lease_s, self.renew_s, self.retry_cap_s = lease_s, renew_s, retry_cap_s
        self.stopping = asyncio.Event()
        #: IDLE sessions begun (a reconnection begins another); for tests and metrics
        self.sessions = 0

    async def run(self) -> str:
        """Watch until stopped; ``"stopped"``, ``"unsupported"`` (left to polling) or ``"taken"``
        (another process holds the mailbox)."""
        failures = 0
        try:
            while not self.stopping.is_set():
                if not await claim(self.runtime, self.tenant_id, self.key, self.holder, self.lease_s):
                    return "taken"
                try:
                    await self._session()
                    failures = 0
                except IdleUnsupported as exc:
                    log.info("mailbox %s of tenant %s is polled: %s", self.key, self.tenant_id, exc)
                    await mark(self.runtime, self.tenant_id, self.key, self.holder, receiving="polling", error=None, release=True)
                    return "unsupported"
                except LeaseLost:
                    return "taken"
                except Exception as exc:  # a lost connection, a refused login, a database hiccup
                    failures += 1
                    error = _error(exc)
                    log.warning("IMAP IDLE of mailbox %s (tenant %s) failed (%d in a row): %s", self.key, self.tenant_id, failures, error)
                    with contextlib.suppress(Exception):
                        await mark(self.runtime, self.tenant_id, self.key, self.holder, receiving="polling", error=error)
                    delay = backoff(failures, base_s=1.0, cap_s=self.retry_cap_s)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            return "stopped"
        finally:
            with contextlib.suppress(Exception):
                await mark(self.runtime, self.tenant_id, self.key, self.holder, receiving="polling", release=True)

    async def _session(self) -> None:
        """Connect, catch up, and IDLE until stopped; raises when the connection is lost."""
        try:
            account = await accounts.tenant_account(self.runtime, self.tenant_id, CHANNEL, self.key)
        except NotFoundError:
            raise IdleUnsupported("the mailbox was deleted") from None
        mailbox: Mailbox = account.settings
        if account.secrets is None or mailbox.imap_host is None:
            raise IdleUnsupported("the mailbox has no usable IMAP settings")
        if mailbox.imap_security == "starttls":
            raise IdleUnsupported("IDLE is used over implicit TLS or plain connections; a STARTTLS mailbox is polled")
        secrets: MailboxSecrets = account.secrets
        settings: EmailSettings = self.runtime.plugin_settings(CHANNEL)
        lost = asyncio.Event()
        client = aioimaplib.IMAP4(
            host=mailbox.imap_host,
            port=mailbox.imap_port,
            timeout=settings.timeout_s,
            conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=tls_context(settings) if mailbox.imap_security == "tls" else None,
        )
        try:
            await client.wait_hello_from_server()
            user = mailbox.imap_username or mailbox.address
            answer = await client.login(user, secrets.imap_password)
            if answer.result != "OK":
                raise imap.LoginRefused(user, b" ".join(answer.lines).decode("utf-8", "replace"))
            if not client.has_capability("IDLE"):
                raise IdleUnsupported("the IMAP server offers no IDLE")
            answer = await client.select(f'"{mailbox.imap_folder}"')
            if answer.result != "OK":
                raise OSError(f"SELECT {mailbox.imap_folder!r} refused: {answer.result}")
            self.sessions += 1
            await mark(self.runtime, self.tenant_id, self.key, self.holder, receiving="idle", error=None)
            await self._read(settings)  # catch up by UID
            while not self.stopping.is_set():
                try:  # aioimaplib waits for the server's continuation without a limit: a cut connection must not hang us
                    idle = await asyncio.wait_for(client.idle_start(timeout=self.renew_s), timeout=settings.timeout_s)
                except TimeoutError:
                    raise ConnectionError("the IMAP server did not acknowledge IDLE") from None
                news = await self._wait(client, lost)
                client.idle_done()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(idle, timeout=settings.timeout_s)
                if lost.is_set():
                    raise ConnectionError("the IMAP server closed the connection")
                if news and not self.stopping.is_set():
                    await self._read(settings)
        finally:
            if not lost.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.logout(), timeout=2.0)
            transport = client.protocol.transport if client.protocol is not None else None
            if transport is not None:
                transport.close()

    async def _read(self, settings: EmailSettings) -> None:
        """Read what is new (a batch at a time) into the inbox."""
        while (await imap.poll(self.runtime, self.tenant_id, self.key, timeout_s=settings.timeout_s)).more:
            if self.stopping.is_set():
                return

    async def _wait(self, client: aioimaplib.IMAP4, lost: asyncio.Event) -> bool:
        """Wait in IDLE until the server announces new mail (True), IDLE is due for renewal, the
        watcher stops or the connection is lost (False); renew the lease meanwhile."""
        stop = asyncio.ensure_future(self.stopping.wait())
        gone = asyncio.ensure_future(lost.wait())
        try:
            while True:
                push = asyncio.ensure_future(client.wait_server_push(timeout=self.renew_s + 60))
                renew_at = time.monotonic() + self.lease_s / 3
                done, _ = await asyncio.wait({push, stop, gone}, timeout=self.lease_s / 3, return_when=asyncio.FIRST_COMPLETED)
                if push not in done:
                    push.cancel()
                    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                        await push
                if stop in done or gone in done:
                    return False
                if push in done:
                    lines = push.result() if push.exception() is None else aioimaplib.STOP_WAIT_SERVER_PUSH
                    if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                        return False  # time to renew IDLE
                    if any(b"EXISTS" in line for line in lines if isinstance(line, bytes)):
                        return True
                    continue  # flags, expunges: nothing to read
                if time.monotonic() >= renew_at - 1 and not await claim(self.runtime, self.tenant_id, self.key, self.holder, self.lease_s):
                    raise LeaseLost()
        finally:
            for task in (stop, gone):
                task.cancel()


class IdleSupervisor:
    """A worker process's IDLE connections: every ``scan_s`` it starts a :class:`Watcher` for
    each mailbox to watch that no process holds, and stops those no longer to watch."""

    name = "email-idle"

    def __init__(
        self,
        runtime: Runtime,
        *,
        scan_s: float = 30.0,
        lease_s: float = LEASE_S,
        renew_s: float = RENEW_S,
        retry_cap_s: float = 300.0,
        holder: str | None = None,
        tenant_id: uuid.UUID | None = None,
    ) -> None:
        self.tenant_id = tenant_id  # one tenant's mailboxes only (tests); None: every tenant's
        self.runtime, self.scan_s, self.lease_s, self.renew_s, self.retry_cap_s = runtime, scan_s, lease_s, renew_s, retry_cap_s
        self.holder = holder or holder_id()
        self.watchers: dict[tuple[uuid.UUID, str], tuple[Watcher, asyncio.Task[str]]] = {}
        self._unsupported: dict[tuple[uuid.UUID, str], float] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="guanxi-email-idle")

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop the watchers: they log out and give up their leases; one still busy after
        ``grace_s`` (a connection that stopped answering) is cancelled (its lease runs out)."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_s)
            except TimeoutError:
                for _, task in self.watchers.values():
                    task.cancel()
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    def watching(self) -> list[tuple[uuid.UUID, str]]:
        """The mailboxes this process holds an IDLE watcher for."""
        return sorted(k for k, (_, task) in self.watchers.items() if not task.done())

    async def scan(self) -> None:
        wanted = set(await mailboxes_to_watch(self.runtime, self.tenant_id))
        now = time.monotonic()
        for key, (watcher, task) in list(self.watchers.items()):
            if task.done():
                del self.watchers[key]
                if not task.cancelled() and task.exception() is None and task.result() == "unsupported":
                    self._unsupported[key] = now + RECHECK_S
            elif key not in wanted:
                watcher.stopping.set()
        for key in sorted(wanted):
            if key in self.watchers or self._unsupported.get(key, 0.0) > now:
                continue
            if not await claim(self.runtime, *key, self.holder, self.lease_s):
                continue  # another process watches it
            watcher = Watcher(self.runtime, *key, self.holder, lease_s=self.lease_s, renew_s=self.renew_s, retry_cap_s=self.retry_cap_s)
            self.watchers[key] = (watcher, asyncio.create_task(watcher.run(), name=f"guanxi-email-idle-{key[1]}"))

    async def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    await self.scan()
                except Exception:
                    log.exception("scanning the mailboxes to watch by IMAP IDLE failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.scan_s)
        finally:
            for watcher, _ in self.watchers.values():
                watcher.stopping.set()
            await asyncio.gather(*(task for _, task in self.watchers.values()), return_exceptions=True)
            self.watchers.clear()
