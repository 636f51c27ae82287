"""Operations behind the GraphQL mutations and the CLI: contact ways, two-way tag sync, mass
sends and the initial sync. Each talks to the API first, then records the outcome locally (API
writes produce no callback, PROTOCOLS.md §A.1)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.models import CustomerTag, Tag, utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services import outbound
from guanxi.core.services import tags as tag_service
from guanxi.plugins.wecom import accounts as corp_accounts
from guanxi.plugins.wecom import events
from guanxi.plugins.wecom.callbacks import CHANNEL
from guanxi.plugins.wecom.client import WecomClient
from guanxi.plugins.wecom.models import WecomContactWay, WecomFollow, WecomMassSend, WecomTag
from guanxi.plugins.wecom.settings import CorpSettings
from guanxi.plugins.wecom.state import wecom_state


async def tenant_corps(runtime: Runtime, tenant_id: uuid.UUID) -> list[CorpSettings]:
    """The corps this tenant connected (its channel-account rows, read through the tenant
    chokepoint): the one place a corp is chosen for a caller, so a corp of another tenant is
    invisible (not merely refused) to it."""
    return await corp_accounts.tenant_corps(runtime, tenant_id)


async def corp_and_client(runtime: Runtime, tenant_id: uuid.UUID, key: str | None) -> tuple[CorpSettings, WecomClient]:
    """The caller's corp by key (optional when its tenant has exactly one) and its API client.
    A corp of another tenant answers exactly like a corp that does not exist; a broken one
    (its secrets do not open) says so."""
    found = await corp_accounts.tenant_corp_accounts(runtime, tenant_id)
    account = found[0] if key is None and len(found) == 1 else next((a for a in found if a.key == key), None)
    if account is None:
        known = ", ".join(a.key for a in found) or "none"
        raise NotFoundError(f"no WeCom corp {key!r} is configured for this tenant (corps: {known})")
    corp = corp_accounts.usable(account)
    client = wecom_state(runtime).client(corp)
    if client is None:
        raise ValidationError(f"WeCom corp {corp.key!r} has no secret configured", field="corp")
    return corp, client


class ContactWayResult(msgspec.Struct, frozen=True, kw_only=True):
    config_id: str
    qr_code: str | None
    state: str | None
    userid: str


async def create_contact_way(
    runtime: Runtime, ctx: RequestContext, *, corp_key: str | None, userid: str, state: str | None, remark: str | None
) -> ContactWayResult:
    if state is not None and not 1 <= len(state) <= 30:
        raise ValidationError("state must be 1 to 30 characters (WeCom's limit)", field="state")
    if remark is not None and len(remark) > 30:
        raise ValidationError("remark must be at most 30 characters", field="remark")
    corp, client = await corp_and_client(runtime, ctx.tenant_id, corp_key)
    way = await client.add_contact_way(userid=userid, state=state, remark=remark)
    async with runtime.transaction(ctx) as tx:
        tx.session.add(
            WecomContactWay(
                corp_id=corp.corp_id, config_id=str(way["config_id"]), state=state, userid=userid, qr_code=way["qr_code"], remark=remark
            )
        )
    return ContactWayResult(config_id=str(way["config_id"]), qr_code=way["qr_code"], state=state, userid=userid)


class TagSyncResult(msgspec.Struct, frozen=True, kw_only=True):
    pulled: int
    created: int
    customers_pushed: int


async def sync_tags(runtime: Runtime, ctx: RequestContext, *, corp_key: str | None) -> TagSyncResult:
    """Two-way tag sync. Pull: the corp tag list into ``wecom_tags``. Push: core tags whose group
    is a WeCom tag group but that WeCom lacks are created (add_corp_tag); then each follow whose
    customer's core tags differ from its WeCom corp tags is marked (mark_tag) and the local
    state updated, since API writes produce no callback."""
    corp, client = await corp_and_client(runtime, ctx.tenant_id, corp_key)
    groups = await client.corp_tags()
    created = 0
    async with runtime.session(ctx.tenant_id) as session:
        core_tags = (await session.execute(select(Tag))).scalars().all()
    group_names = {str(g.get("group_name")) for g in groups}
    existing = {(str(g.get("group_name")), str(t["name"])) for g in groups for t in g.get("tag") or []}
    missing: dict[str, list[str]] = {}
    for tag in core_tags:
        if tag.group_name in group_names and (tag.group_name, tag.name) not in existing:
            missing.setdefault(tag.group_name, []).append(tag.name)
    for group_name, names in missing.items():
        await client.add_corp_tag(group_name, names)
        created += len(names)
    if created:
        groups = await client.corp_tags()
    async with runtime.transaction(ctx) as tx:
        pulled = await events.store_corp_tags(tx, corp, groups)
    pushes = await _tag_pushes(runtime, ctx, corp)
    for userid, external, add, remove in pushes:
        await client.mark_tag(userid, external, add=add, remove=remove)
    if pushes:
        async with runtime.transaction(ctx) as tx:
            for userid, external, add, remove in pushes:
                follow = await tx.session.get(WecomFollow, (tx.tenant_id, corp.corp_id, external, userid))
                if follow is not None:
                    follow.tag_ids = sorted((set(follow.tag_ids) | set(add)) - set(remove))
    return TagSyncResult(pulled=pulled, created=created, customers_pushed=len({p[1] for p in pushes}))


async def _tag_pushes(runtime: Runtime, ctx: RequestContext, corp: CorpSettings) -> list[tuple[str, str, list[str], list[str]]]:
    """(userid, external_userid, add tag ids, remove tag ids) for every active follow whose
    WeCom tags differ from its customer's core tags. Three queries, whatever the count."""
    async with runtime.session(ctx.tenant_id) as session:
        wtags = (
            (await session.execute(select(WecomTag).where(WecomTag.corp_id == corp.corp_id, WecomTag.deleted.is_(False)))).scalars().all()
        )
        by_label = {events._tag_label(t.group_name, t.name): t.tag_id for t in wtags}
        follows = (
            (await session.execute(select(WecomFollow).where(WecomFollow.corp_id == corp.corp_id, WecomFollow.status == "active")))
            .scalars()
            .all()
        )
        labels: dict[uuid.UUID, set[str]] = {}
        rows = await session.execute(
            select(CustomerTag.customer_id, Tag.group_name, Tag.name).join(
                Tag, (Tag.tenant_id == CustomerTag.tenant_id) & (Tag.id == CustomerTag.tag_id)
            )
        )
        for customer_id, group_name, name in rows:
            labels.setdefault(customer_id, set()).add(events._tag_label(group_name, name))
    pushes = []
    for follow in follows:
        want = {by_label[label] for label in labels.get(follow.customer_id, set()) if label in by_label}
        have = {t for t in follow.tag_ids if t in by_label.values()}
        if want != have:
            pushes.append((follow.userid, follow.external_userid, sorted(want - have), sorted(have - want)))
    return pushes


class MassSendResult(msgspec.Struct, frozen=True, kw_only=True):
    msgid: str
    recipients: int
    failed: list[str]
    #: customers of the segment left out, with why (``NO_CONSENT``: opted out of WeCom …)
    skipped: list[outbound.Refusal] = msgspec.field(default_factory=list)


async def mass_send(
    runtime: Runtime,
    ctx: RequestContext,
    *,
    corp_key: str | None,
    text: str,
    tag: str | None,
    customer_ids: list[uuid.UUID],
    sender: str | None,
) -> MassSendResult:
    """Create a mass-send task (add_msg_template, chat_type single) for a segment: the
    customers carrying a core tag and/or the given customers, through their WeCom identities.
    The task waits for the sender (or every follower) to confirm it in the client.

    Every customer passes core's outbound check (:func:`guanxi.core.services.outbound.screen_outbound`,
    as ``sendMessage``): one who opted out of WeCom, or has no WeCom account, is skipped and
    reported; when nobody is left the call fails like ``sendMessage`` would (``NO_CONSENT`` if
    consent is what stopped everyone). Each recipient gets the message on their timeline."""
    if not text.strip() or len(text.encode("utf-8")) > 4000:
        raise ValidationError("text must be 1 to 4000 bytes", field="text")
    corp, client = await corp_and_client(runtime, ctx.tenant_id, corp_key)
    async with runtime.session(ctx.tenant_id) as session:
        wanted = list(dict.fromkeys(customer_ids))
        if tag:
            group, name = tag_service.split_tag(tag)
            tagged = await session.execute(
                select(CustomerTag.customer_id)
                .join(Tag, (Tag.tenant_id == CustomerTag.tenant_id) & (Tag.id == CustomerTag.tag_id))
                .where(Tag.group_name == group, Tag.name == name)
            )
            wanted += [c for c in tagged.scalars() if c not in wanted]
        if not wanted:
            raise ValidationError("the segment is empty: give a tag or customer ids", field="tag")
        # a broadcast: no messaging window, but consent and the channel's rules as for any send
        screening = await outbound.screen_outbound(runtime, session, CHANNEL, wanted, text=text, window=False)
    allowed, skipped = screening.allowed, screening.refused
    if not allowed:
        codes = {r.code for r in skipped}
        if codes == {"NO_CONSENT"}:
            raise outbound.ConsentError(f"every customer of the segment opted out of {CHANNEL}; nothing was sent")
        raise ValidationError("no customer of the segment has a WeCom identity (or may receive it)", field="tag")
    by_external = {r.external_id: r for r in allowed}
    if len(by_external) > 10_000:
        raise ValidationError("WeCom takes at most 10 000 recipients per task", field="tag")
    answer = await client.add_msg_template(external_userids=sorted(by_external), sender=sender, text=text)
    msgid = str(answer["msgid"])
    async with runtime.transaction(ctx) as tx:
        tx.session.add(
            WecomMassSend(
                corp_id=corp.corp_id, msgid=msgid, sender=sender, text=text, recipients=len(by_external), failed=answer["fail_list"]
            )
        )
        failed = set(answer["fail_list"])
        for external, recipient in by_external.items():
            if external not in failed:
                await outbound.record_outbound(
                    tx,
                    recipient,
                    CHANNEL,
                    text=text,
                    kind="mass_send",
                    payload={"msgid": msgid, "corp_id": corp.corp_id, "sender": sender},
                    dedupe_key=f"wecom:mass:{msgid}:{recipient.customer_id}",
                )
    return MassSendResult(msgid=msgid, recipients=len(by_external), failed=list(answer["fail_list"]), skipped=skipped)


class SyncResult(msgspec.Struct, frozen=True, kw_only=True):
    staff: int
    customers: int
    created: int


async def initial_sync(
    runtime: Runtime, tenant_id: uuid.UUID, corp_key: str | None, progress: Callable[[int], Any] | None = None
) -> SyncResult:
    """Pull every follower's customers (get_follow_user_list, then batch/get_by_user with cursor
    paging) and apply them; running it twice changes nothing the second time."""
    corp, client = await corp_and_client(runtime, tenant_id, corp_key)
    ctx = RequestContext(tenant_id=tenant_id, actor=events.ACTOR)
    await events.pull_corp_tags(runtime, tenant_id, corp)
    staff = await client.follow_users()
    seen: set[str] = set()
    created = 0
    as_of = utcnow()
    async for page in client.batch_get_by_user(staff):
        by_customer: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        for item in page:
            contact = item.get("external_contact") or {}
            external = str(contact.get("external_userid") or "")
            if external:
                by_customer.setdefault(external, (contact, []))[1].append(item.get("follow_info") or {})
        async with runtime.transaction(ctx) as tx:
            for contact, follows in by_customer.values():
                _, new = await events.apply_profile(tx, corp, contact, follows, as_of=as_of)
                created += int(new)
        seen.update(by_customer)
        if progress is not None:
            progress(len(page))
    return SyncResult(staff=len(staff), customers=len(seen), created=created)
