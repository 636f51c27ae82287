"""Hook implementations: wiring only."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import click
import msgspec
from sqlalchemy import select, update

from guanxi import Runtime, Tx, hookimpl
from guanxi.core.base.errors import ConfigError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.access import Permission
from guanxi.core.domain.channels import AccountSpec, Channel, InboundEvent, StaffChannel
from guanxi.core.domain.contracts import Arrival, EntryPoint, EntryPointRequest, JobKind, JobRun, ScoreComponent, StaffHandover
from guanxi.core.domain.events import CustomersMerged, InboundApplied
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.wecom import accounts as corp_accounts
from guanxi.plugins.wecom import events
from guanxi.plugins.wecom.channel import WecomChannel
from guanxi.plugins.wecom.models import WecomContactWay, WecomFollow
from guanxi.plugins.wecom.routes import wecom_callback, wecom_verify
from guanxi.plugins.wecom.settings import CorpSettings, WecomSettings
from guanxi.plugins.wecom.state import wecom_state


async def _apply_held(job: JobRun) -> None:
    await events.apply_held_corp_events(job.runtime, job.tenant_id)


@hookimpl
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind]:
    return [
        JobKind(
            name=events.HELD_JOB,
            run=_apply_held,
            description="Apply the tag and customer-group events stored while the tenant was suspended",
        )
    ]


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return WecomSettings


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_routes(runtime: Runtime) -> list[Any]:
    return [wecom_verify, wecom_callback]


@hookimpl
def guanxi_channels(runtime: Runtime) -> list[Channel]:
    return [WecomChannel(runtime)]


@hookimpl
def guanxi_staff_channels(runtime: Runtime) -> list[StaffChannel]:
    from guanxi.plugins.wecom.staff import WecomStaffChannel

    return [WecomStaffChannel(runtime)]


@hookimpl
def guanxi_channel_accounts(runtime: Runtime) -> list[AccountSpec]:
    return [corp_accounts.spec(runtime.plugin_settings("wecom"))]


@hookimpl
def guanxi_graphql(runtime: Runtime) -> Any:
    from guanxi.plugins.wecom.graphql import contribution

    return contribution()


@hookimpl
def guanxi_cli(group: click.Group) -> None:
    from guanxi.plugins.wecom.cli import wecom

    group.add_command(wecom)


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="wecom.massSend",
            roles=("admin", "manager", "marketing"),
            fields=("Mutation.wecomMassSend", "Query.wecomMassSendResult"),
            description="Create WeCom mass-send tasks (群发) for a segment.",
        ),
        Permission(
            name="wecom.contactWays",
            roles=("admin", "manager", "marketing", "sales"),
            fields=("Mutation.createWecomContactWay",),
            description="Create WeCom contact-way QR codes (渠道活码).",
        ),
        Permission(
            name="wecom.tagSync",
            roles=("admin", "manager"),
            fields=("Mutation.syncWecomTags",),
            description="Synchronise corp tags both ways with WeCom.",
        ),
    ]


@hookimpl
def guanxi_startup(runtime: Runtime) -> None:
    """Refuse to start with a corp configuration that could not verify a single callback."""
    problems = wecom_state(runtime).settings.problems()
    if problems:
        raise ConfigError("invalid WeCom configuration: " + "; ".join(problems))


@hookimpl
async def guanxi_shutdown(runtime: Runtime) -> None:
    if "wecom" in runtime.state:
        await wecom_state(runtime).aclose()


@hookimpl
async def guanxi_inbound_prefetch(tx: Tx, events: list[InboundEvent]) -> None:
    """The corps, staff mappings and follow rows of a batch of the inbox, looked up at once."""
    from guanxi.plugins.wecom.events import prefetch

    await prefetch(tx, events)


@hookimpl
async def guanxi_inbound_applied(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    await events.on_inbound(tx, event, applied)


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    """Follow rows follow the customer."""
    from guanxi.core.base.context import RequestContext

    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=events.ACTOR)) as tx:
        await tx.session.execute(
            update(WecomFollow).where(WecomFollow.customer_id == event.merged_id).values(customer_id=event.survivor_id)
        )


@hookimpl
async def guanxi_merge_record(session: TenantSession, merged_id: uuid.UUID) -> dict[str, Any] | None:
    """The follow rows the merge will move (by their key), so an undo gives them back."""
    rows = (await session.execute(select(WecomFollow).where(WecomFollow.customer_id == merged_id))).scalars().all()
    return {"follows": [[r.corp_id, r.external_userid, r.userid] for r in rows]} if rows else None


@hookimpl
async def guanxi_merge_undone(
    session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID, record: dict[str, Any]
) -> dict[str, int]:
    moved = 0
    for corp_id, external_userid, userid in record.get("follows", []):
        result: Any = await session.execute(
            update(WecomFollow)
            .where(
                WecomFollow.corp_id == corp_id,
                WecomFollow.external_userid == external_userid,
                WecomFollow.userid == userid,
                WecomFollow.customer_id == survivor_id,
            )
            .values(customer_id=merged_id)
        )
        moved += int(result.rowcount or 0)
    return {"follows": moved}


@hookimpl
async def guanxi_assign_owner(runtime: Runtime, session: TenantSession, arrival: Arrival | None) -> uuid.UUID | None:
    """A customer who added a staff member on WeCom belongs to that member's Guanxi user (the
    ``staff`` map of the corp), unless a plugin answered first or the customer has an owner."""
    if arrival is None or arrival.channel != events.CHANNEL:
        return None
    corp_id, userid = arrival.payload.get("corp_id"), arrival.payload.get("userid")
    if not corp_id or not userid:
        return None
    for corp in await corp_accounts.tenant_corps(runtime, session.tenant_id, session=session):
        if corp.corp_id == corp_id:
            return await events.staff_user(session, corp, str(userid))
    return None


@hookimpl
async def guanxi_staff_handover(tx: Tx, handover: StaffHandover) -> dict[str, int] | None:
    """Transfer the handed-over customers' WeCom follow relations from the departing member to
    the new owner's member, through WeCom's transfer APIs (离职继承 when the departing user is
    no longer active), after the handover commits. Customers going back to a pool stay with
    their member (WeCom transfers only to a member)."""
    from guanxi.core.domain.models import User
    from guanxi.plugins.wecom.handover import transfer_follows

    if handover.to_user_id is None or not handover.customer_ids:
        return None
    session = tx.session
    plans: list[tuple[CorpSettings, str, str, list[str]]] = []
    for corp in await corp_accounts.tenant_corps(tx.runtime, tx.tenant_id, session=session):
        handover_userid = await events.wecom_userid(session, corp, handover.from_user_id)
        takeover_userid = await events.wecom_userid(session, corp, handover.to_user_id)
        if handover_userid is None or takeover_userid is None:
            continue
        rows = await session.execute(
            select(WecomFollow.external_userid).where(
                WecomFollow.corp_id == corp.corp_id,
                WecomFollow.userid == handover_userid,
                WecomFollow.customer_id.in_(handover.customer_ids),
                WecomFollow.status.in_(("active", "half")),
            )
        )
        externals = sorted(set(rows.scalars()))
        if externals:
            plans.append((corp, handover_userid, takeover_userid, externals))
    if not plans:
        return {"follows": 0}
    active = (await session.execute(select(User.active).where(User.id == handover.from_user_id))).scalar_one_or_none()
    state = wecom_state(tx.runtime)

    def start() -> None:
        state.spawn(transfer_follows(state, plans, resigned=not active), "customer transfer")

    tx.after_commit(start)
    return {"follows": sum(len(p[3]) for p in plans)}


@hookimpl
async def guanxi_entry_points(runtime: Runtime, session: TenantSession, request: EntryPointRequest) -> list[EntryPoint] | None:
    """A single-member contact-way QR code whose ``state`` is the token, for the staff member
    new contacts should be added to (when that member is mapped to a WeCom UserID)."""
    if request.staff_user_id is None:
        return None
    state = wecom_state(runtime)
    for corp in await corp_accounts.tenant_corps(runtime, session.tenant_id, session=session):
        client = state.client(corp)
        if client is None:
            continue
        userid = await events.wecom_userid(session, corp, request.staff_user_id)
        if userid is None:
            continue
        way = await client.add_contact_way(userid=userid, state=request.token, remark=request.campaign_name[:30] or None)
        session.add(
            WecomContactWay(
                corp_id=corp.corp_id, config_id=str(way["config_id"]), state=request.token, userid=userid, qr_code=way["qr_code"]
            )
        )
        await session.flush()
        return [EntryPoint(channel="wecom", kind="qr", url=str(way["qr_code"] or ""), reference=str(way["config_id"]))]
    return None


#: Points of the ``wecom.relation`` score component, per follow row.
RELATION_POINTS = {"active": 10.0, "half": 5.0, "removed_staff": -5.0}


@hookimpl
async def guanxi_score_components(
    runtime: Runtime, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent] | None:
    """``wecom.relation``: +10 per staff member with a mutual relation, +5 per half-added one,
    -5 per staff member the customer removed, as of ``as_of`` (one query for the batch)."""
    if not customer_ids:
        return None
    rows = await session.execute(
        select(WecomFollow.customer_id, WecomFollow.status, WecomFollow.followed_at, WecomFollow.removed_at).where(
            WecomFollow.customer_id.in_(customer_ids)
        )
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for customer_id, status, followed_at, removed_at in rows:
        following = status in ("active", "half") and (followed_at is None or followed_at <= as_of)
        removed = status == "removed_staff" and removed_at is not None and removed_at <= as_of
        if following or removed:
            counts.setdefault(customer_id, {}).setdefault(status, 0)
            counts[customer_id][status] += 1
    labels = {"active": "staff following", "half": "half-added staff", "removed_staff": "staff removed by the customer"}
    return [
        ScoreComponent(
            customer_id=customer_id,
            name="wecom.relation",
            value=sum(RELATION_POINTS[s] * n for s, n in by_status.items()),
            reasons=[f"{n} {labels[s]} x {RELATION_POINTS[s]:g}" for s, n in sorted(by_status.items())],
        )
        for customer_id, by_status in counts.items()
    ]


def _follow_dict(row: WecomFollow) -> dict[str, Any]:
    return {
        "corp_id": row.corp_id,
        "external_userid": row.external_userid,
        "userid": row.userid,
        "status": row.status,
        "state": row.state,
        "add_way": row.add_way,
        "remark": row.remark,
        "description": row.description,
        "remark_mobiles": list(row.remark_mobiles or []),
        "tag_ids": list(row.tag_ids or []),
        "followed_at": row.followed_at.isoformat() if row.followed_at else None,
        "removed_at": row.removed_at.isoformat() if row.removed_at else None,
    }


@hookimpl
async def guanxi_export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    rows = [
        row
        for row in (await session.execute(select(WecomFollow).where(WecomFollow.customer_id == customer_id))).scalars()
        if not row.external_userid.startswith("erased:") or row.remark or row.description or row.remark_mobiles
    ]  # rows already erased are not counted again
    if not rows:
        return None
    return {"follows": [_follow_dict(r) for r in rows]}


@hookimpl
async def guanxi_erase_customer(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int] | None:
    """Blank remarks, descriptions and mobiles and replace the ExternalUserID with a random
    placeholder; the rows stay so follower counts and acquisition states still add up."""
    rows = [
        row
        for row in (await session.execute(select(WecomFollow).where(WecomFollow.customer_id == customer_id))).scalars()
        if not row.external_userid.startswith("erased:") or row.remark or row.description or row.remark_mobiles
    ]  # rows already erased are not counted again
    if not rows:
        return None
    placeholder = f"erased:{new_id().hex}"
    for row in rows:
        await session.execute(
            update(WecomFollow)
            .where(WecomFollow.corp_id == row.corp_id, WecomFollow.external_userid == row.external_userid, WecomFollow.userid == row.userid)
            .values(external_userid=placeholder, remark=None, description=None, remark_mobiles=[])
            .execution_options(synchronize_session=False)
        )
    return {"follows": len(rows)}


@hookimpl
async def guanxi_export_tenant(runtime: Runtime, session: TenantSession) -> dict[str, Any]:
    """Every row of the plugin's tables for the tenant (before the operator deletes it)."""
    from guanxi.core.services.tenants import dump_models
    from guanxi.plugins.wecom.models import TABLES

    return await dump_models(session, TABLES)


@hookimpl
async def guanxi_purge_tenant(runtime: Runtime, session: TenantSession) -> dict[str, int]:
    """Remove every row of the plugin's tables for the tenant (the operator deletes it)."""
    from guanxi.core.services.tenants import purge_models
    from guanxi.plugins.wecom.models import TABLES

    return await purge_models(session, TABLES)
