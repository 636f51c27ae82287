"""Hook implementations: wiring only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click
import msgspec
from sqlalchemy import delete, select, update

from guanxi import JobKind, Runtime, Tx, hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConfigError
from guanxi.core.domain.access import Permission
from guanxi.core.domain.channels import AccountSpec, Channel, InboundEvent
from guanxi.core.domain.events import CustomersMerged, InboundApplied
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.douyin import accounts, events, privacy
from guanxi.plugins.douyin.channel import DouyinChannel
from guanxi.plugins.douyin.models import DouyinConversation
from guanxi.plugins.douyin.routes import douyin_oauth_callback, douyin_webhook
from guanxi.plugins.douyin.settings import DouyinSettings
from guanxi.plugins.douyin.state import douyin_state


@hookimpl
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind]:
    return [JobKind(name=privacy.PURGE_JOB, run=privacy.run_purge, description="Delete ignored Douyin webhook events past their retention")]


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return DouyinSettings


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_routes(runtime: Runtime) -> list[Any]:
    return [douyin_webhook, douyin_oauth_callback]


@hookimpl
def guanxi_channels(runtime: Runtime) -> list[Channel]:
    return [DouyinChannel(runtime, runtime.plugin_settings("douyin"))]


@hookimpl
def guanxi_channel_accounts(runtime: Runtime) -> list[AccountSpec]:
    return [accounts.spec(runtime.plugin_settings("douyin"))]


@hookimpl
def guanxi_graphql(runtime: Runtime) -> Any:
    from guanxi.plugins.douyin.graphql import contribution

    return contribution()


@hookimpl
def guanxi_cli(group: click.Group) -> None:
    from guanxi.plugins.douyin.cli import douyin

    group.add_command(douyin)


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="douyin.connect",
            roles=("admin", "manager"),
            fields=("Mutation.connectDouyinAccount", "Mutation.refreshDouyinFans"),
            description="Connect Douyin business accounts (authorization URL) and refresh their fan figures.",
        ),
        Permission(
            name="douyin.replyComment",
            roles=("admin", "manager", "marketing", "sales"),
            fields=("Mutation.replyDouyinComment",),
            description="Reply to a customer's comment on the business account's videos.",
        ),
    ]


@hookimpl
def guanxi_startup(runtime: Runtime) -> None:
    """Refuse to start with a deployment app that could not verify a single webhook."""
    problems = douyin_state(runtime).settings.problems()
    if problems:
        raise ConfigError("invalid Douyin configuration: " + "; ".join(problems))


@hookimpl
async def guanxi_shutdown(runtime: Runtime) -> None:
    if "douyin" in runtime.state:
        await douyin_state(runtime).aclose()


@hookimpl
async def guanxi_inbound_applied(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    await events.on_inbound(tx, event, applied)


@hookimpl
async def guanxi_export_tenant(runtime: Runtime, session: TenantSession) -> dict[str, Any]:
    """Every row of the plugin's tables for the tenant (before the operator deletes it)."""
    from guanxi.core.services.tenants import dump_models
    from guanxi.plugins.douyin.models import TABLES

    return await dump_models(session, TABLES)


@hookimpl
async def guanxi_purge_tenant(runtime: Runtime, session: TenantSession) -> dict[str, int]:
    """Remove every row of the plugin's tables for the tenant (the operator deletes it)."""
    from guanxi.core.services.tenants import purge_models
    from guanxi.plugins.douyin.models import TABLES

    return await purge_models(session, TABLES)


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    """Conversations follow the customer."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=events.ACTOR)) as tx:
        await tx.session.execute(
            update(DouyinConversation).where(DouyinConversation.customer_id == event.merged_id).values(customer_id=event.survivor_id)
        )


@hookimpl
async def guanxi_export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    """The customer's conversations with business accounts (who wrote to whom, and when)."""
    rows = (await session.execute(select(DouyinConversation).where(DouyinConversation.customer_id == customer_id))).scalars().all()
    kept = await privacy.export_events(session, customer_id)
    if not rows and not kept:
        return None
    return {
        "events": kept,
        "conversations": [
            {
                "account_open_id": r.account_open_id,
                "open_id": r.open_id,
                "conversation_id": r.conversation_id,
                "last_in_at": r.last_in_at.isoformat(),
            }
            for r in rows
        ],
    }


@hookimpl
async def guanxi_erase_customer(
    runtime: Runtime, session: TenantSession, customer_id: uuid.UUID, identities: list[tuple[str, str, str | None]]
) -> dict[str, int] | None:
    """Delete the customer's conversation rows (a reply to them is then impossible, as it should
    be) and blank the raw events kept about them (by their identities' open_id / union_id)."""
    result = await session.execute(
        delete(DouyinConversation).where(DouyinConversation.customer_id == customer_id).execution_options(synchronize_session=False)
    )
    counts = {"conversations": int(result.rowcount or 0), "events": await privacy.erase_events(session, identities)}  # type: ignore[attr-defined]
    counts = {k: n for k, n in counts.items() if n}
    return counts or None
