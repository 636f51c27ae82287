"""Polling a mailbox's IMAP folder: every message after the last UID stored goes through the
same parser as the raw-mail route into the durable inbox, in UID order; the UID is recorded after
each message is stored. A connection lost mid-poll (a server restart) ends the poll with an error;
the next one resumes after the last stored UID, so nothing is lost, and the inbox's dedupe by
Message-ID keeps a message stored but not yet recorded from being doubled.

The IMAP client is the standard library's ``imaplib``, run in a worker thread."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import uuid
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Final

import msgspec

from guanxi import RequestContext, Runtime, ValidationError, ingest
from guanxi.core.domain.models import utcnow
from guanxi.core.services import accounts
from guanxi.core.services.schedule import schedule_job
from guanxi.plugins.email import inbound
from guanxi.plugins.email.models import EmailImapState
from guanxi.plugins.email.settings import CHANNEL, EmailSettings, Mailbox, MailboxSecrets
from guanxi.plugins.email.tls import tls_context

POLL_JOB: Final = "email.imap_poll"
POLL_CRON: Final = "* * * * *"
BATCH: Final = 50


class PollResult(msgspec.Struct, frozen=True, kw_only=True):
    stored: int
    duplicates: int
    last_uid: int
    #: more than a batch was waiting: poll again for the rest
    more: bool = False


class LoginRefused(imaplib.IMAP4.error):
    """The server refused the mailbox's login: the message names the user and what the server
    said, never the password."""

    def __init__(self, user: str, answer: str) -> None:
        super().__init__(
            f"the IMAP server refused the login of {user!r}: check the mailbox's imap_username and imap_password ({answer[:200]})"
        )


def open_client(mailbox: Mailbox, secrets: MailboxSecrets, timeout_s: float, context: ssl.SSLContext | None = None) -> imaplib.IMAP4:
    """Connected and logged in (blocking: run it in a thread)."""
    assert mailbox.imap_host is not None
    context = context or ssl.create_default_context()
    client: imaplib.IMAP4
    if mailbox.imap_security == "tls":
        client = imaplib.IMAP4_SSL(mailbox.imap_host, mailbox.imap_port, ssl_context=context, timeout=timeout_s)
    else:
        client = imaplib.IMAP4(mailbox.imap_host, mailbox.imap_port, timeout=timeout_s)
        if mailbox.imap_security == "starttls":
            client.starttls(context)
    user = mailbox.imap_username or mailbox.address
    try:
        client.login(user, secrets.imap_password)
    except imaplib.IMAP4.error as exc:
        close(client)
        answer = exc.args[0] if exc.args else ""
        raise LoginRefused(user, answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)) from None
    except BaseException:
        close(client)
        raise
    return client


def close(client: imaplib.IMAP4) -> None:
    with suppress(imaplib.IMAP4.error, OSError):
        client.logout()


def _check(answer: tuple[str, Sequence[Any]], what: str) -> Sequence[Any]:
    status, data = answer
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what}: {status} {data!r}")
    return data


def select_folder(client: imaplib.IMAP4, folder: str) -> int:
    """Select ``folder`` read-only (nothing marked seen); its UIDVALIDITY."""
    _check(client.select(f'"{folder}"', readonly=True), "SELECT")
    found = client.untagged_responses.get("UIDVALIDITY") or [b"0"]
    last = found[-1]
    return int(last if isinstance(last, bytes) else last[0])


def uids_after(client: imaplib.IMAP4, last_uid: int) -> list[int]:
    data = _check(client.uid("SEARCH", f"UID {last_uid + 1}:*"), "UID SEARCH")
    found = b" ".join(d for d in data if isinstance(d, bytes)).split()
    return sorted(u for u in (int(x) for x in found) if u > last_uid)  # n:* always matches the highest UID


def fetch(client: imaplib.IMAP4, uid: int) -> bytes | None:
    data = _check(client.uid("FETCH", str(uid), "(BODY.PEEK[])"), "UID FETCH")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None  # expunged meanwhile


async def _state(runtime: Runtime, tenant_id: uuid.UUID, key: str, folder: str) -> tuple[int, int]:
    async with runtime.session(tenant_id) as session:
        row = await session.get(EmailImapState, (tenant_id, key, folder))
    return (row.uidvalidity, row.last_uid) if row is not None else (0, 0)


async def _record(
    runtime: Runtime, tenant_id: uuid.UUID, key: str, folder: str, uidvalidity: int, last_uid: int, error: str | None
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row = await tx.session.get(EmailImapState, (tenant_id, key, folder))
        if row is None:
            row = EmailImapState(mailbox=key, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid)
            tx.session.add(row)
        if row.uidvalidity == uidvalidity:  # a poll never moves back what another (IDLE, a worker) got further with
            last_uid = max(last_uid, row.last_uid)
        row.uidvalidity, row.last_uid, row.polled_at, row.last_error = uidvalidity, last_uid, utcnow(), error


async def _record_error(runtime: Runtime, tenant_id: uuid.UUID, key: str, folder: str, error: str) -> None:
    """Keep what went wrong before anything was read (a refused login, no server)."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row = await tx.session.get(EmailImapState, (tenant_id, key, folder))
        if row is None:
            row = EmailImapState(mailbox=key, folder=folder, uidvalidity=0, last_uid=0)
            tx.session.add(row)
        row.polled_at, row.last_error = utcnow(), error


def error_text(exc: BaseException) -> str:
    """What the mailbox shows of a failed poll (never a secret: imaplib's errors hold server answers)."""
    if isinstance(exc, LoginRefused):
        return str(exc)[:500]
    if isinstance(exc, TimeoutError):
        return "the IMAP server did not answer in time"
    return f"{type(exc).__name__}: {exc}"[:500]


async def poll(runtime: Runtime, tenant_id: uuid.UUID, key: str, *, timeout_s: float = 30.0) -> PollResult:
    """Read what arrived in the mailbox ``key`` of ``tenant_id`` since the last poll into the inbox."""
    account = await accounts.tenant_account(runtime, tenant_id, CHANNEL, key)
    mailbox: Mailbox = account.settings
    if account.secrets is None or mailbox.imap_host is None:
        raise ValidationError(f"mailbox {key!r} has no usable IMAP settings", field="mailbox")
    secrets: MailboxSecrets = account.secrets
    folder = mailbox.imap_folder
    known_validity, last_uid = await _state(runtime, tenant_id, key, folder)
    stored = duplicates = 0
    settings: EmailSettings = runtime.plugin_settings(CHANNEL)
    context = tls_context(settings) if mailbox.imap_security != "none" else None
    try:
        client = await asyncio.to_thread(open_client, mailbox, secrets, timeout_s, context)
    except (imaplib.IMAP4.error, OSError) as exc:
        await _record_error(runtime, tenant_id, key, folder, error_text(exc))
        raise
    try:
        try:
            uidvalidity = await asyncio.to_thread(select_folder, client, folder)
        except (imaplib.IMAP4.error, OSError) as exc:
            await _record_error(runtime, tenant_id, key, folder, error_text(exc))
            raise
        if uidvalidity != known_validity:
            last_uid = 0  # a new folder generation: read it all again (dedupe drops what is known)
        try:
            pending = await asyncio.to_thread(uids_after, client, last_uid)
            for uid in pending[:BATCH]:
                raw = await asyncio.to_thread(fetch, client, uid)
                if raw is not None:
                    event = await asyncio.to_thread(inbound.parse, runtime, raw, mailbox, tenant_id=tenant_id)  # stores attachments
                    if event is not None:
                        result = await ingest(runtime, tenant_id, event)
                        stored, duplicates = stored + (not result.duplicate), duplicates + result.duplicate
                last_uid = uid
                await _record(runtime, tenant_id, key, folder, uidvalidity, last_uid, None)
        except (imaplib.IMAP4.error, OSError) as exc:
            await _record(runtime, tenant_id, key, folder, uidvalidity, last_uid, error_text(exc))
            raise
        if not pending:
            await _record(runtime, tenant_id, key, folder, uidvalidity, last_uid, None)
    finally:
        await asyncio.to_thread(close, client)
    return PollResult(stored=stored, duplicates=duplicates, last_uid=last_uid, more=len(pending) > BATCH)


async def schedule(runtime: Runtime, tenant_id: uuid.UUID, key: str) -> None:
    """Poll the mailbox every minute from now on (the job of ``email.imap_poll``)."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await schedule_job(tx, POLL_JOB, f"{POLL_JOB}:{key}", cron=POLL_CRON, payload={"mailbox": key}, max_attempts=3)
