"""The plugin's part of the GraphQL schema: ``Customer.wecom`` and three mutations."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from guanxi.graphql.contrib import GraphQLContribution
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.wecom import service
from guanxi.plugins.wecom.models import WecomFollow, WecomStaff, WecomTag


@strawberry.enum(description="Where a follow relation between a customer and a WeCom member stands.")
class WecomFollowStatus(enum.Enum):
    ACTIVE = strawberry.enum_value("active", description="mutual contacts")
    HALF = strawberry.enum_value("half", description="the customer added the member; not yet mutual")
    REMOVED_STAFF = strawberry.enum_value("removed_staff", description="the customer removed the member")
    REMOVED_BY_STAFF = strawberry.enum_value("removed_by_staff", description="the member removed the customer")


@strawberry.type(description="A staff member (WeCom UserID) who has the customer as an external contact.")
class WecomFollower:
    corp_id: str
    userid: str = strawberry.field(description="The member's WeCom UserID.")
    staff_user_id: strawberry.ID | None = strawberry.field(description="The mapped Guanxi user (global id), if any.")
    status: WecomFollowStatus
    remark: str | None
    description: str | None
    add_way: int | None = strawberry.field(description="WeCom add_way code (1 QR scan, 2 phone search, …).")
    state: str | None = strawberry.field(description="The contact-way state the customer arrived with (acquisition channel).")
    tags: list[str] = strawberry.field(description="Corp tags this member put on the customer, as group/name.")
    followed_at: dt.datetime | None
    removed_at: dt.datetime | None


@strawberry.type(description="The customer as WeCom knows it.")
class CustomerWecom:
    followers: list[WecomFollower]
    state: str | None = strawberry.field(description="The first acquisition state (渠道活码 state).")
    add_way: int | None
    tags: list[str] = strawberry.field(description="Corp tags from all followers, as group/name.")


async def _load_follows(info: Info, ids: Sequence[uuid.UUID]) -> list[CustomerWecom | None]:
    """One query for the follows of every customer on the page, one for tags, one for staff."""
    execute = info.context.loaders.execute
    stmt = select(WecomFollow).where(WecomFollow.customer_id.in_(list(ids))).order_by(WecomFollow.followed_at)
    rows = (await execute(stmt)).scalars().all()
    if not rows:
        return [None for _ in ids]
    tag_ids = {t for r in rows for t in r.tag_ids}
    tags: dict[tuple[str, str], str] = {}
    if tag_ids:
        for t in (await execute(select(WecomTag).where(WecomTag.tag_id.in_(tag_ids), WecomTag.deleted.is_(False)))).scalars():
            tags[(t.corp_id, t.tag_id)] = f"{t.group_name}/{t.name}" if t.group_name else t.name
    userids = {r.userid for r in rows}
    staff = {(s.corp_id, s.userid): s.user_id for s in (await execute(select(WecomStaff).where(WecomStaff.userid.in_(userids)))).scalars()}
    by_customer: dict[uuid.UUID, list[WecomFollow]] = {}
    for row in rows:
        by_customer.setdefault(row.customer_id, []).append(row)
    from guanxi.graphql.ids import to_global_id

    out: list[CustomerWecom | None] = []
    for cid in ids:
        follows = by_customer.get(cid)
        if not follows:
            out.append(None)
            continue
        followers = []
        for f in follows:
            user = staff.get((f.corp_id, f.userid))
            followers.append(
                WecomFollower(
                    corp_id=f.corp_id,
                    userid=f.userid,
                    staff_user_id=strawberry.ID(to_global_id("User", user)) if user else None,
                    status=WecomFollowStatus(f.status),
                    remark=f.remark,
                    description=f.description,
                    add_way=f.add_way,
                    state=f.state,
                    tags=[tags[(f.corp_id, t)] for t in f.tag_ids if (f.corp_id, t) in tags],
                    followed_at=f.followed_at,
                    removed_at=f.removed_at,
                )
            )
        first = next((f for f in followers if f.state), None)
        out.append(
            CustomerWecom(
                followers=followers,
                state=first.state if first else None,
                add_way=next((f.add_way for f in followers if f.add_way is not None), None),
                tags=sorted({t for f in followers for t in f.tags}),
            )
        )
    return out


@strawberry.type
class CustomerWecomField:
    @strawberry.field(description="WeCom followers, acquisition state and corp tags; null when the customer is no WeCom contact.")
    async def wecom(self, info: Info) -> CustomerWecom | None:
        state = info.context.state
        loader = state.get("wecom_follows")
        if loader is None:

            async def load(ids: list[uuid.UUID]) -> list[CustomerWecom | None]:
                return await _load_follows(info, ids)

            loader = state["wecom_follows"] = DataLoader(load_fn=load)
        return await loader.load(self.uuid)  # type: ignore[attr-defined]


@strawberry.type
class WecomContactWay:
    config_id: str
    qr_code: str | None
    state: str | None
    userid: str


@strawberry.type
class WecomContactWayPayload:
    contact_way: WecomContactWay | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class WecomTagSync:
    pulled: int = strawberry.field(description="Corp tags known after the pull.")
    created: int = strawberry.field(description="Tags created in WeCom from core tags of WeCom groups.")
    customers_pushed: int = strawberry.field(description="Customers whose WeCom tags were changed (mark_tag).")


@strawberry.type
class WecomTagSyncPayload:
    sync: WecomTagSync | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A customer of a mass send's segment who was left out, and why.")
class WecomMassSendSkip:
    customer_id: strawberry.ID
    code: str = strawberry.field(description="NO_CONSENT (opted out of WeCom), VALIDATION (no WeCom account), NOT_FOUND")
    message: str


@strawberry.type
class WecomMassSend:
    msgid: str
    recipients: int
    failed: list[str] = strawberry.field(description="ExternalUserIDs WeCom could not reach.")
    skipped: list[WecomMassSendSkip] = strawberry.field(
        default_factory=list, description="Customers of the segment left out by the consent and channel checks (as sendMessage)."
    )


@strawberry.type
class WecomMassSendPayload:
    mass_send: WecomMassSend | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="One recipient of a mass-send task (get_group_msg_result).")
class WecomMassSendRecipient:
    external_userid: str
    userid: str | None = strawberry.field(description="The member who sent (or should send) it.")
    status: int = strawberry.field(description="0 not sent, 1 sent, 2 not a friend, 3 recipient's monthly limit reached.")
    send_time: dt.datetime | None


@strawberry.type
class WecomQuery:
    @strawberry.field(description="Who a mass-send task (群发) reached so far, as WeCom reports it.")
    async def wecom_mass_send_result(self, info: Info, msgid: str, corp: str | None = None) -> list[WecomMassSendRecipient]:
        _, client = await service.corp_and_client(info.context.rt, info.context.ctx.tenant_id, corp)
        body = await client.group_msg_result(msgid)
        return [
            WecomMassSendRecipient(
                external_userid=str(d.get("external_userid") or ""),
                userid=d.get("userid") or None,
                status=int(d.get("status") or 0),
                send_time=dt.datetime.fromtimestamp(int(d["send_time"]), dt.UTC) if d.get("send_time") else None,
            )
            for d in body.get("detail_list") or []
        ]


async def _run(run: Any, payload: Any) -> Any:
    """WeCom errors are GuanxiErrors: they come back as ``errors { code: "WECOM_<errcode>" }``."""
    return await as_payload(run, payload)


@strawberry.type
class WecomMutation:
    @strawberry.mutation(description="Create a single-member contact-way QR code (渠道活码) whose adds carry `state`.")
    async def create_wecom_contact_way(
        self, info: Info, userid: str, state: str | None = None, remark: str | None = None, corp: str | None = None
    ) -> WecomContactWayPayload:
        async def run() -> WecomContactWayPayload:
            way = await service.create_contact_way(
                info.context.rt, info.context.ctx, corp_key=corp, userid=userid, state=state, remark=remark
            )
            return WecomContactWayPayload(
                contact_way=WecomContactWay(config_id=way.config_id, qr_code=way.qr_code, state=way.state, userid=way.userid)
            )

        return await _run(run, WecomContactWayPayload)

    @strawberry.mutation(description="Synchronise corp tags both ways with WeCom.")
    async def sync_wecom_tags(self, info: Info, corp: str | None = None) -> WecomTagSyncPayload:
        async def run() -> WecomTagSyncPayload:
            result = await service.sync_tags(info.context.rt, info.context.ctx, corp_key=corp)
            info.context.reset_reads()
            return WecomTagSyncPayload(
                sync=WecomTagSync(pulled=result.pulled, created=result.created, customers_pushed=result.customers_pushed)
            )

        return await _run(run, WecomTagSyncPayload)

    @strawberry.mutation(description="Create a mass-send task (群发) for a segment; staff confirm it in the WeCom client.")
    async def wecom_mass_send(
        self,
        info: Info,
        text: str,
        tag: str | None = None,
        customer_ids: list[strawberry.ID] | None = None,
        sender: str | None = None,
        corp: str | None = None,
    ) -> WecomMassSendPayload:
        async def run() -> WecomMassSendPayload:
            ids = [from_global_id(str(c), "Customer", field="customerIds") for c in customer_ids or []]
            result = await service.mass_send(
                info.context.rt, info.context.ctx, corp_key=corp, text=text, tag=tag, customer_ids=ids, sender=sender
            )
            skipped = [
                WecomMassSendSkip(customer_id=strawberry.ID(to_global_id("Customer", r.customer_id)), code=r.code, message=r.reason)
                for r in result.skipped
            ]
            mass = WecomMassSend(msgid=result.msgid, recipients=result.recipients, failed=result.failed, skipped=skipped)
            return WecomMassSendPayload(mass_send=mass)

        return await _run(run, WecomMassSendPayload)


def contribution() -> GraphQLContribution:
    return GraphQLContribution(query=WecomQuery, mutation=WecomMutation, extend={"Customer": CustomerWecomField})
