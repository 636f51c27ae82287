"""Hook implementations: wiring only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import delete, select

from guanxi import AccountSpec, BackgroundWorker, Channel, InboundApplied, InboundEvent, JobKind, Receipt, Runtime, Tx, hookimpl
from guanxi.core.domain.access import Permission
from guanxi.core.domain.models import OutboxMessage
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.email import idle, imap, service, suppression
from guanxi.plugins.email.channel import EmailChannel
from guanxi.plugins.email.models import EmailAddress, EmailDraft
from guanxi.plugins.email.routes import routes
from guanxi.plugins.email.settings import CHANNEL, EmailSettings, spec


def _settings(runtime: Runtime) -> EmailSettings:
    settings: EmailSettings = runtime.plugin_settings(CHANNEL)
    return settings


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return EmailSettings


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_channels(runtime: Runtime) -> list[Channel]:
    return [EmailChannel(runtime, _settings(runtime))]


@hookimpl
def guanxi_channel_accounts(runtime: Runtime) -> list[AccountSpec]:
    return [spec(_settings(runtime))]


@hookimpl
def guanxi_routes(runtime: Runtime) -> list[Any]:
    return routes(_settings(runtime))


@hookimpl
def guanxi_graphql(runtime: Runtime) -> Any:
    from guanxi.plugins.email.graphql import contribution

    return contribution()


@hookimpl
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind]:
    return [JobKind(name=imap.POLL_JOB, run=idle.run_poll_job, description="Read a mailbox's IMAP folder into the inbox", max_attempts=3)]


@hookimpl
def guanxi_workers(runtime: Runtime) -> list[BackgroundWorker]:
    """The IMAP IDLE connections of the receiving mailboxes (one per mailbox across processes)."""
    return [idle.IdleSupervisor(runtime)] if _settings(runtime).imap_idle else []


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="email.send",
            roles=("admin", "manager", "marketing", "sales"),
            fields=("Mutation.sendEmail",),
            description="Send an email to a customer (consent and suppression checked).",
        ),
        Permission(
            name="email.mailboxes",
            roles=("admin", "manager"),
            fields=("Mutation.pollEmailMailbox", "Query.emailMailboxes"),
            description="Switch receiving on for a mailbox (IMAP IDLE, or a poll every minute) and see how its mailboxes receive.",
        ),
    ]


@hookimpl
async def guanxi_inbound_applied(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    await service.ref_attachments(tx, event, applied)
    await service.notify_owner(tx, event, applied)


@hookimpl
async def guanxi_receipt_applied(tx: Tx, receipt: Receipt, message: OutboxMessage, previous_status: str) -> None:
    await suppression.on_receipt(tx, receipt, message, previous_status, threshold=_settings(tx.runtime).soft_bounce_threshold)


@hookimpl
async def guanxi_export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any]:
    drafts = (await session.execute(select(EmailDraft).where(EmailDraft.customer_id == customer_id))).scalars()
    addresses = (await session.execute(select(EmailAddress).where(EmailAddress.customer_id == customer_id))).scalars()
    return {
        "emails": [{"outbox_id": str(d.outbox_id), "subject": d.subject, "html": d.html, "marketing": d.marketing} for d in drafts],
        "addresses": [{"address": a.address, "suppressed": a.suppressed, "soft_bounces": a.soft_bounces} for a in addresses],
    }


@hookimpl
async def guanxi_erase_customer(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
    drafts = await session.execute(delete(EmailDraft).where(EmailDraft.customer_id == customer_id))
    addresses = await session.execute(delete(EmailAddress).where(EmailAddress.customer_id == customer_id))
    return {"email_drafts": drafts.rowcount or 0, "email_addresses": addresses.rowcount or 0}  # type: ignore[attr-defined]
