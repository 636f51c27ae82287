"""How each of a tenant's mailboxes receives and what last went wrong with it (``emailMailboxes``):
its IMAP state (how far its folder was read, the last poll's error), its IDLE lease and the last
SMTP error that is the mailbox's fault (a refused login). Three queries for all of them."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from sqlalchemy import select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import ScheduledJob, utcnow
from guanxi.core.services import accounts
from guanxi.plugins.email import imap
from guanxi.plugins.email.models import EmailImapState, EmailMailboxState
from guanxi.plugins.email.settings import CHANNEL, Mailbox


class MailboxStatus(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    address: str
    #: off (no IMAP, or receiving not switched on) | polling | idle
    receiving: str
    failing: bool
    last_error: str | None
    last_uid: int | None
    polled_at: dt.datetime | None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


async def statuses(runtime: Runtime, tenant_id: uuid.UUID) -> list[MailboxStatus]:
    found = await accounts.tenant_accounts(runtime, tenant_id, CHANNEL)
    async with runtime.session(tenant_id) as session:
        imap_rows = {(r.mailbox, r.folder): r for r in (await session.execute(select(EmailImapState))).scalars()}
        states = {r.mailbox: r for r in (await session.execute(select(EmailMailboxState))).scalars()}
        jobs = select(ScheduledJob.key).where(ScheduledJob.kind == imap.POLL_JOB, ScheduledJob.status.in_(("scheduled", "running")))
        switched_on = set((await session.execute(jobs)).scalars())
    now = utcnow()
    out = []
    for account in found:
        if account.broken is not None:
            out.append(
                MailboxStatus(
                    key=account.key, address="", receiving="off", failing=True, last_error=account.broken, last_uid=None, polled_at=None
                )
            )
            continue
        mailbox: Mailbox = account.settings
        state = states.get(account.key)
        row = imap_rows.get((account.key, mailbox.imap_folder))
        receiving = "off"
        if mailbox.imap_host is not None and f"{imap.POLL_JOB}:{account.key}" in switched_on:
            live = state is not None and state.receiving == "idle" and (_aware(state.idle_until) or now) > now
            receiving = "idle" if live else "polling"
        # the newest error of the mailbox's parts: its SMTP login, its IMAP poll, its IDLE connection
        errors = [
            e for e in (state.smtp_error if state else None, row.last_error if row else None, state.idle_error if state else None) if e
        ]
        out.append(
            MailboxStatus(
                key=account.key,
                address=mailbox.address,
                receiving=receiving,
                failing=bool(errors),
                last_error=errors[0] if errors else None,
                last_uid=row.last_uid if row is not None else None,
                polled_at=_aware(row.polled_at) if row is not None else None,
            )
        )
    return out


async def record_smtp_error(runtime: Runtime, tenant_id: uuid.UUID, key: str, error: str | None) -> None:
    """Keep (or clear, with None) the mailbox's SMTP error."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row = await tx.session.get(EmailMailboxState, (tenant_id, key))
        if row is None:
            if error is None:
                return
            row = EmailMailboxState(mailbox=key, receiving="polling")
            tx.session.add(row)
        row.smtp_error, row.smtp_error_at, row.updated_at = error, utcnow() if error else None, utcnow()
