"""What a callback does beyond core's inbox: the follow relation, the staff mapping, the
cross-plugin events (contact arrived / left), the welcome message, profile and tag refresh,
and the corp-level tag and customer-group events."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.events import ContactArrived, ContactLeft, InboundApplied
from guanxi.core.domain.models import CustomerTag, Identity, Tag, User, utcnow
from guanxi.core.queues.inbox import ingest
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import customers, identities, outbound, tags
from guanxi.core.services.schedule import schedule_job
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.wecom import accounts as corp_accounts
from guanxi.plugins.wecom.callbacks import CHANNEL, FOLLOW_STATUS, dedupe_key
from guanxi.plugins.wecom.models import WecomChat, WecomEvent, WecomFollow, WecomStaff, WecomTag
from guanxi.plugins.wecom.settings import CorpSettings
from guanxi.plugins.wecom.state import WecomState, wecom_state

log = logging.getLogger("guanxi.wecom")
ACTOR = Actor(kind="system", name="wecom")
LEFT_REASONS = {"del_follow_user": "removed_staff", "del_external_contact": "removed_by_staff"}


def _insert(runtime: Runtime) -> Any:
    return pg_insert if runtime.engine.dialect.name == "postgresql" else sqlite_insert


async def ensure_row(tx: Tx, model: Any, **values: Any) -> Any:
    """The row with these key values, inserted first if missing. One ``INSERT … ON CONFLICT DO
    NOTHING`` then a load, so two transactions creating the same row (a profile refresh and the
    next event, in PostgreSQL) do not fail; the caller then sets the other columns."""
    await tx.session.execute(_insert(tx.runtime)(model).values(tenant_id=tx.tenant_id, **values).on_conflict_do_nothing())
    pk = tuple(values[c.name] if c.name != "tenant_id" else tx.tenant_id for c in model.__table__.primary_key.columns)
    return await tx.session.get(model, pk, populate_existing=True)


# -- staff ------------------------------------------------------------------------------------


async def _remember_staff(session: TenantSession, corp: CorpSettings, userid: str, user_id: uuid.UUID) -> None:
    insert = pg_insert if session.sync_session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(WecomStaff).values(tenant_id=session.tenant_id, corp_id=corp.corp_id, userid=userid, user_id=user_id)
    await session.execute(stmt.on_conflict_do_nothing())


#: ``session.info`` keys: the members' users a session found (:func:`staff_user`), and the follow
#: rows an inbox batch looked up (:func:`prefetch`; None: no such row)
STAFF_USERS = "wecom.staff_users"
FOLLOWS = "wecom.follows"


async def staff_user(session: TenantSession, corp: CorpSettings, userid: str) -> uuid.UUID | None:
    """The Guanxi user behind a corp member: the ``wecom_staff`` row, else the ``staff`` map of
    the corp's config (UserID → email), remembered in ``wecom_staff`` on first use. Answered
    once per session (a batch of the inbox asks per event)."""
    known: dict[tuple[str, str], uuid.UUID | None] = session.info.setdefault(STAFF_USERS, {})
    if (corp.corp_id, userid) in known:
        return known[(corp.corp_id, userid)]
    found = (
        await session.execute(select(WecomStaff.user_id).where(WecomStaff.corp_id == corp.corp_id, WecomStaff.userid == userid))
    ).scalar_one_or_none()
    if found is None and (email := corp.staff.get(userid)):
        found = (await session.execute(select(User.id).where(User.email == email.strip().lower()))).scalar_one_or_none()
        if found is not None:
            await _remember_staff(session, corp, userid, found)
    known[(corp.corp_id, userid)] = found
    return found


async def wecom_userid(session: TenantSession, corp: CorpSettings, user_id: uuid.UUID) -> str | None:
    """The corp member (UserID) mapped to a Guanxi user, if any."""
    found = (
        await session.execute(select(WecomStaff.userid).where(WecomStaff.corp_id == corp.corp_id, WecomStaff.user_id == user_id))
    ).scalar_one_or_none()
    if found is not None:
        return found
    email = (await session.execute(select(User.email).where(User.id == user_id))).scalar_one_or_none()
    for userid, mapped in corp.staff.items():
        if email and mapped.strip().lower() == email:
            await _remember_staff(session, corp, userid, user_id)
            return userid
    return None


# -- on the callback itself (fast path) ---------------------------------------------------------


def welcome_text(corp: CorpSettings, state: str | None) -> str | None:
    return corp.welcome.get(state or "") or corp.welcome.get("*")


def after_contact_callback(state: WecomState, corp: CorpSettings, fields: dict[str, str], tenant_id: uuid.UUID) -> None:
    """Right after an add event is stored: send the welcome message now, in the background of
    the request, not behind the inbox queue (the WelcomeCode is valid for 20 seconds)."""
    code = fields.get("WelcomeCode")
    if fields.get("ChangeType") not in ("add_external_contact", "add_half_external_contact") or not code:
        return
    text = welcome_text(corp, fields.get("State"))
    client = state.client(corp)
    if text is None or client is None:
        return
    state.spawn(send_welcome(state.runtime, tenant_id, corp, client, code, text, fields), f"welcome message for corp {corp.key}")


async def send_welcome(
    runtime: Runtime, tenant_id: uuid.UUID, corp: CorpSettings, client: Any, code: str, text: str, fields: dict[str, str]
) -> bool:
    """Send a welcome message unless the person is a customer who opted out of WeCom (core's
    outbound check, as for every send), then put it on their timeline: an outbound inbox event,
    applied after the add event that creates the customer. Returns whether it was sent."""
    external = fields.get("ExternalUserID", "")
    async with runtime.session(tenant_id) as session:
        stmt = select(Identity.customer_id).where(Identity.channel == CHANNEL, Identity.external_id == external)
        customer_id = (await session.execute(stmt)).scalar_one_or_none()
        if customer_id is not None:
            screening = await outbound.screen_outbound(runtime, session, CHANNEL, [customer_id], text=text, window=False)
            refused = [r for r in screening.refused if r.code == "NO_CONSENT"]
            if refused:
                log.info("wecom corp %s: no welcome message for a customer who opted out of WeCom", corp.key)
                return False
    await client.send_welcome_msg(code, text)
    await ingest(
        runtime,
        tenant_id,
        InboundEvent(
            channel=CHANNEL,
            provider_event_id=f"welcome:{dedupe_key(corp.corp_id, fields)}"[:200],
            occurred_at=utcnow(),
            identity=ProfileInput(external_id=external),
            kind="welcome_message",
            direction="out",
            text=text,
            payload={"corp_id": corp.corp_id, "userid": fields.get("UserID", ""), "state": fields.get("State") or None},
        ),
    )
    return True


#: the job kind that applies corp events held while their tenant was suspended
HELD_JOB = "wecom.held_corp_events"


async def store_corp_event(runtime: Runtime, tenant_id: uuid.UUID, corp: CorpSettings, fields: dict[str, str]) -> bool:
    """Record a tag or customer-group event once (by dedupe key) and apply it. Returns False for
    a duplicate delivery. A suspended tenant's event is stored, not applied (like its inbox
    rows): a job applies it once the operator resumes the tenant (the scheduler holds a
    suspended tenant's jobs)."""
    event = fields.get("Event", "")
    keep = {k: v for k, v in fields.items() if k not in ("ToUserName", "FromUserName", "MsgType")}
    suspended = await runtime.tenant_suspended(tenant_id)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        stmt = (
            _insert(runtime)(WecomEvent)
            .values(
                tenant_id=tenant_id,
                dedupe_key=dedupe_key(corp.corp_id, fields),
                corp_id=corp.corp_id,
                event=event[:64],
                change_type=fields.get("ChangeType", "")[:64] or None,
                fields=keep,
                received_at=utcnow(),
                applied_at=None if suspended else utcnow(),
            )
            .on_conflict_do_nothing()
            .returning(WecomEvent.dedupe_key)
        )
        if (await tx.session.execute(stmt)).scalar_one_or_none() is None:
            return False
        if suspended:
            await schedule_job(tx, HELD_JOB, HELD_JOB, run_at=utcnow())
            log.info("wecom corp %s: %s of a suspended tenant stored, applied when it resumes", corp.key, event[:40])
            return True
        await _apply_corp_event(runtime, tx, corp, fields)
    return True


async def _apply_corp_event(runtime: Runtime, tx: Tx, corp: CorpSettings, fields: dict[str, str]) -> None:
    event = fields.get("Event", "")
    if event == "change_external_chat":
        await _apply_chat(tx, corp, fields)
    elif event == "change_external_tag":
        refresh = await _apply_tag(tx, corp, fields)
        client = wecom_state(runtime).client(corp)
        if refresh and client is not None:
            tenant_id = tx.tenant_id

            def refresh_tags() -> None:
                wecom_state(runtime).spawn(pull_corp_tags(runtime, tenant_id, corp), "corp tag refresh")

            tx.after_commit(refresh_tags)


async def apply_held_corp_events(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    """Apply the corp events stored while the tenant was suspended, oldest first, each in its own
    transaction (an event of a corp the tenant no longer has is marked applied and skipped)."""
    async with runtime.session(tenant_id) as session:
        held = list(
            (
                await session.execute(select(WecomEvent.dedupe_key).where(WecomEvent.applied_at.is_(None)).order_by(WecomEvent.received_at))
            ).scalars()
        )
    applied = 0
    for key in held:
        async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
            row = await tx.session.get(WecomEvent, (tenant_id, key))
            if row is None or row.applied_at is not None:
                continue
            corp = await corp_accounts.tenant_corp_by_id(runtime, tenant_id, row.corp_id, session=tx.session)
            if corp is not None:
                await _apply_corp_event(runtime, tx, corp, {k: str(v) for k, v in row.fields.items()})
                applied += 1
            else:
                log.info("wecom: held %s of corp %s skipped: the tenant no longer has the corp", row.event, row.corp_id)
            row.applied_at = utcnow()
    return applied


async def _apply_chat(tx: Tx, corp: CorpSettings, fields: dict[str, str]) -> None:
    chat_id = fields.get("ChatId", "")
    if not chat_id:
        return
    chat = await ensure_row(tx, WecomChat, corp_id=corp.corp_id, chat_id=chat_id, status="active", member_changes=0, updated_at=utcnow())
    change = fields.get("ChangeType", "")
    chat.status = "dismissed" if change == "dismiss" else "active"
    chat.last_change = (fields.get("UpdateDetail") or change)[:32]
    count = fields.get("MemChangeCnt", "")
    if count.isdigit():
        chat.member_changes = (chat.member_changes or 0) + int(count)
    chat.updated_at = utcnow()


async def _apply_tag(tx: Tx, corp: CorpSettings, fields: dict[str, str]) -> bool:
    """A deleted tag is marked at once; anything else needs the tag list again (returns True)."""
    change, tag_type, tag_id = fields.get("ChangeType"), fields.get("TagType"), fields.get("Id", "")
    if change == "delete":
        rows = select(WecomTag).where(WecomTag.corp_id == corp.corp_id)
        rows = rows.where(WecomTag.group_id == tag_id) if tag_type == "tag_group" else rows.where(WecomTag.tag_id == tag_id)
        for row in (await tx.session.execute(rows)).scalars():
            row.deleted, row.updated_at = True, utcnow()
        return False
    return True


# -- in the inbox transaction, after core applied a customer event --------------------------------


def _contact_events(events: list[InboundEvent]) -> list[InboundEvent]:
    return [e for e in events if e.channel == CHANNEL and "change_type" in e.payload]


async def prefetch(tx: Tx, events: list[InboundEvent]) -> None:
    """Before a batch of the inbox: the tenant's corps (kept for the transaction), the staff
    mappings and the follow rows its contact events name, in one statement each."""
    contacts = _contact_events(events)
    if not contacts:
        return
    session = tx.session
    corps = {c.corp_id: c for c in await corp_accounts.tenant_corps(tx.runtime, tx.tenant_id, session=session)}
    members: set[tuple[str, str]] = set()
    relations: set[tuple[str, str, str]] = set()
    for event in contacts:
        corp_id, userid = str(event.payload.get("corp_id", "")), str(event.payload.get("userid", ""))
        if corp_id not in corps or not userid:
            continue
        members.add((corp_id, userid))
        if str(event.payload["change_type"]) in FOLLOW_STATUS:
            relations.add((corp_id, event.identity.external_id, userid))
    if members:
        staff: dict[tuple[str, str], uuid.UUID | None] = session.info.setdefault(STAFF_USERS, {})
        # per corp ``corp_id = ? AND userid IN (…)``, a range of the key: SQLite planned the
        # tuple ``IN (VALUES …)`` as a scan of every staff row (and follow row, below) of the tenant
        for corp in sorted({c for c, _ in members}):
            stmt = select(WecomStaff.corp_id, WecomStaff.userid, WecomStaff.user_id).where(
                WecomStaff.corp_id == corp, WecomStaff.userid.in_(sorted(u for c, u in members if c == corp))
            )
            for corp_id, userid, user_id in await session.execute(stmt):
                staff[(corp_id, userid)] = user_id
        for corp_id, userid in members - staff.keys():
            if not corps[corp_id].staff.get(userid):
                staff[(corp_id, userid)] = None  # no row, no mapping in the corp's settings
    if relations:
        follows: dict[tuple[str, str, str], WecomFollow | None] = dict.fromkeys(relations)
        for corp in sorted({c for c, _, _ in relations}):
            stmt_follows = select(WecomFollow).where(
                WecomFollow.corp_id == corp, WecomFollow.external_userid.in_(sorted({e for c, e, _ in relations if c == corp}))
            )
            for row in (await session.execute(stmt_follows)).scalars():
                if (key := (row.corp_id, row.external_userid, row.userid)) in follows:
                    follows[key] = row
        session.info[FOLLOWS] = follows


async def on_inbound(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    """Update the follow relation for a contact event and queue the cross-plugin events, in the
    inbox's transaction (a failure undoes the event, which the inbox retries); fetch the profile
    after commit for add and edit events."""
    if event.channel != CHANNEL or "change_type" not in event.payload:
        return
    state = wecom_state(tx.runtime)
    corp = await corp_accounts.tenant_corp_by_id(tx.runtime, tx.tenant_id, str(event.payload.get("corp_id", "")), session=tx.session)
    if corp is None:
        return
    identity = await tx.session.get(Identity, (tx.tenant_id, applied.identity_id))
    if identity is None:
        return
    change = str(event.payload["change_type"])
    await apply_contact_change(
        tx, corp, change, event.payload, applied.customer_id, event.occurred_at, identity, new_customer=applied.new_customer
    )
    client = state.client(corp)
    refresh = change in ("add_external_contact", "add_half_external_contact", "edit_external_contact")
    if client is not None and state.settings.fetch_profiles and refresh:
        runtime, tenant_id, external = tx.runtime, tx.tenant_id, identity.external_id

        def fetch_profile() -> None:
            state.spawn(refresh_customer(runtime, tenant_id, corp, external), "profile refresh")

        tx.after_commit(fetch_profile)


async def apply_contact_change(
    tx: Tx,
    corp: CorpSettings,
    change: str,
    payload: dict[str, Any],
    customer_id: uuid.UUID,
    occurred_at: dt.datetime,
    identity: Identity,
    *,
    new_customer: bool,
) -> None:
    userid = str(payload.get("userid", ""))
    state_value = payload.get("state")
    staff_id = await staff_user(tx.session, corp, userid) if userid else None
    status = FOLLOW_STATUS.get(change)
    if status is None:  # edit, transfer_fail: no relation change, nothing to report
        return
    key = (corp.corp_id, identity.external_id, userid)
    # a batch of the inbox looked its follow rows up (prefetch); absent ones are inserted together
    batch: dict[tuple[str, str, str], WecomFollow | None] | None = tx.session.info.get(FOLLOWS)
    looked_up = batch is not None and key in batch
    follow = batch[key] if batch is not None and looked_up else await tx.session.get(WecomFollow, (tx.tenant_id, *key))
    previous = follow.status if follow is not None else None
    reported = follow is not None and follow.arrived_at is not None
    if follow is None and batch is not None and looked_up:
        follow = batch[key] = WecomFollow(
            corp_id=corp.corp_id,
            external_userid=identity.external_id,
            userid=userid,
            customer_id=customer_id,
            status=status,
            state=None,
            add_way=None,
            remark=None,
            description=None,
            remark_mobiles=[],
            tag_ids=[],
            followed_at=None,
            removed_at=None,
            arrived_at=None,
            updated_at=utcnow(),
        )
        tx.session.add(follow)
    elif follow is None:
        follow = await ensure_row(
            tx,
            WecomFollow,
            corp_id=corp.corp_id,
            external_userid=identity.external_id,
            userid=userid,
            customer_id=customer_id,
            status=status,
            remark_mobiles=[],
            tag_ids=[],
            updated_at=utcnow(),
        )
    adding = status in ("active", "half")
    # an event older than the relation's last change (a late retry) changes nothing
    last_change = follow.removed_at if adding else follow.followed_at
    if last_change is not None and last_change > occurred_at:
        return
    follow.customer_id = customer_id
    if adding:
        if previous not in ("active", "half"):
            follow.followed_at = occurred_at
        follow.removed_at = None
        if state_value:
            follow.state = str(state_value)
        if previous == "active" and status == "half":
            status = "active"  # a late half-add does not undo a mutual relation
    else:
        follow.removed_at = occurred_at
    follow.status = status
    follow.updated_at = utcnow()
    # half, then mutual: one arrival; a row the API refresh made first has not been reported yet
    arrived = adding and (previous not in ("active", "half") or not reported)
    if adding:
        follow.arrived_at = occurred_at
    if not looked_up:  # a batch's rows are written at its next flush, together
        await tx.session.flush()
    left = not adding and previous != status
    if arrived and state_value:
        tx.emit(
            "guanxi_contact_arrived",
            ContactArrived(
                tenant_id=tx.tenant_id,
                actor=ACTOR,
                customer_id=customer_id,
                identity_id=identity.id,
                channel=CHANNEL,
                external_id=identity.external_id,
                state=str(state_value),
                staff_user_id=staff_id,
                new_customer=new_customer,
                occurred_at=occurred_at,
            ),
        )
    elif left:
        tx.emit(
            "guanxi_contact_left",
            ContactLeft(
                tenant_id=tx.tenant_id,
                actor=ACTOR,
                customer_id=customer_id,
                channel=CHANNEL,
                external_id=identity.external_id,
                staff_user_id=staff_id,
                reason=LEFT_REASONS[change],
                occurred_at=occurred_at,
            ),
        )


# -- profile and tags from the API ----------------------------------------------------------------


def _tag_label(group: str, name: str) -> str:
    return f"{group.replace('/', '_')}/{name.replace('/', '_')}" if group else name.replace("/", "_")


async def refresh_customer(runtime: Runtime, tenant_id: uuid.UUID, corp: CorpSettings, external_userid: str) -> None:
    """Fetch one customer's profile and followers (externalcontact/get) and apply them."""
    client = wecom_state(runtime).client(corp)
    if client is None:
        return
    as_of = utcnow()  # before the request: the answer describes WeCom no earlier than this
    detail = await client.get_external_contact(external_userid)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        contact = detail["external_contact"] or {"external_userid": external_userid}
        await apply_profile(tx, corp, contact, detail["follow_user"], as_of=as_of)


def _listed_since_removal(follow: WecomFollow, item: dict[str, Any], as_of: dt.datetime) -> bool:
    """Whether a profile that lists this follow relation is newer than the relation's removal.

    The item's ``createtime`` is when the relation WeCom lists began: a relation that began
    after the removal is a re-add; one that began before it is the relation that was removed,
    seen in an answer older than the removal (a refresh fetched before a ``del_follow_user``
    was applied). Without ``createtime``, the time the profile was fetched decides."""
    if follow.removed_at is None:
        return True
    created = str(item.get("createtime", ""))
    seen = dt.datetime.fromtimestamp(int(created), dt.UTC) if created.isdigit() and int(created) > 0 else as_of
    return seen > follow.removed_at


async def apply_profile(
    tx: Tx, corp: CorpSettings, contact: dict[str, Any], follows: list[dict[str, Any]], *, as_of: dt.datetime | None = None
) -> tuple[uuid.UUID, bool]:
    """Make the customer, identity, follow rows and WeCom tags match what the API says.

    ``follows`` are ``follow_user`` items (``tags`` with names) or ``follow_info`` items
    (``tag_id`` only, names looked up in ``wecom_tags``). ``as_of``: when the answer was
    requested (default: now); a listed relation that was removed later than the answer
    describes stays removed. Returns (customer id, created)."""
    as_of = as_of or utcnow()
    external = str(contact.get("external_userid") or "")
    name = str(contact.get("name") or "") or None
    data = identities.IdentityInput(
        channel=CHANNEL,
        external_id=external,
        union_id=contact.get("unionid") or None,
        nickname=name,
        avatar_url=contact.get("avatar") or None,
        profile={"corp_id": corp.corp_id, **({"corp_name": contact["corp_name"]} if contact.get("corp_name") else {})},
    )
    states = [str(f["state"]) for f in follows if f.get("state")]
    if states:
        data.profile.setdefault("state", states[0])
    existing = await identities.find_identity(tx, CHANNEL, external)
    if existing is not None and existing.profile.get("state"):
        data.profile.pop("state", None)  # the first acquisition channel stays
    customer, _identity, created = await identities.resolve_identity(tx, data, display_name=name, source=CHANNEL)
    if name and customer.display_name == f"{CHANNEL}:{external}":
        await customers.update_customer(tx, customer.id, customers.CustomerPatch(display_name=name))
    known = {t.tag_id: t for t in (await tx.session.execute(select(WecomTag).where(WecomTag.corp_id == corp.corp_id))).scalars()}
    wanted: set[str] = set()
    rows = {
        f.userid: f
        for f in (
            await tx.session.execute(
                select(WecomFollow).where(WecomFollow.corp_id == corp.corp_id, WecomFollow.external_userid == external)
            )
        ).scalars()
    }
    for item in follows:
        userid = str(item.get("userid") or "")
        if not userid:
            continue
        tag_ids: list[str] = []
        for tag in item.get("tags") or []:
            if tag.get("type", 1) != 1 or not tag.get("tag_id"):
                continue  # personal tags are the member's own; only corp tags are synced
            tag_ids.append(str(tag["tag_id"]))
            if tag["tag_id"] not in known:
                known[tag["tag_id"]] = await ensure_row(
                    tx,
                    WecomTag,
                    corp_id=corp.corp_id,
                    tag_id=str(tag["tag_id"]),
                    group_id="",
                    group_name=str(tag.get("group_name") or ""),
                    name=str(tag.get("tag_name") or ""),
                    deleted=False,
                    updated_at=utcnow(),
                )
        tag_ids.extend(str(t) for t in item.get("tag_id") or [])
        follow = rows.get(userid)
        if follow is not None and not _listed_since_removal(follow, item, as_of):
            continue  # an answer older than the removal: it neither revives the relation nor edits it
        if follow is None:
            follow = rows[userid] = await ensure_row(
                tx,
                WecomFollow,
                corp_id=corp.corp_id,
                external_userid=external,
                userid=userid,
                customer_id=customer.id,
                status="active",
                remark_mobiles=[],
                tag_ids=[],
                updated_at=utcnow(),
            )
        follow.customer_id = customer.id
        follow.remark = item.get("remark") or None
        follow.description = item.get("description") or None
        follow.remark_mobiles = [str(m) for m in item.get("remark_mobiles") or []]
        follow.add_way = int(item["add_way"]) if str(item.get("add_way", "")).lstrip("-").isdigit() else follow.add_way
        follow.state = follow.state or (str(item["state"]) if item.get("state") else None)
        if item.get("createtime"):
            follow.followed_at = follow.followed_at or dt.datetime.fromtimestamp(int(item["createtime"]), dt.UTC)
        if follow.status not in ("active", "half"):
            follow.status, follow.removed_at = "active", None
        follow.tag_ids = list(dict.fromkeys(tag_ids))
        follow.updated_at = utcnow()
        wanted.update(follow.tag_ids)
    await tx.session.flush()
    labels = {tid: _tag_label(t.group_name, t.name) for tid, t in known.items() if t.name and not t.deleted}
    want_labels = {labels[t] for t in wanted if t in labels}
    await set_wecom_tags(tx, customer.id, want_labels, set(labels.values()))
    return customer.id, created


async def set_wecom_tags(tx: Tx, customer_id: uuid.UUID, wanted: set[str], managed: set[str]) -> None:
    """Core tags of a customer that mirror WeCom corp tags: add ``wanted``, remove the other
    ``managed`` labels the customer has."""
    current_rows = await tx.session.execute(
        select(Tag)
        .join(CustomerTag, (CustomerTag.tenant_id == Tag.tenant_id) & (CustomerTag.tag_id == Tag.id))
        .where(CustomerTag.customer_id == customer_id)
    )
    current = {tags.tag_label(t) for t in current_rows.scalars()}
    add = sorted(wanted - current)
    remove = sorted((current & managed) - wanted)
    if add or remove:
        await tags.change_tags(tx, customer_id, add=add, remove=remove)


async def pull_corp_tags(runtime: Runtime, tenant_id: uuid.UUID, corp: CorpSettings) -> int:
    """Mirror the corp tag list (get_corp_tag_list) into ``wecom_tags``; returns the tag count."""
    client = wecom_state(runtime).client(corp)
    if client is None:
        return 0
    groups = await client.corp_tags()
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=ACTOR)) as tx:
        return await store_corp_tags(tx, corp, groups)


async def store_corp_tags(tx: Tx, corp: CorpSettings, groups: list[dict[str, Any]]) -> int:
    rows = {t.tag_id: t for t in (await tx.session.execute(select(WecomTag).where(WecomTag.corp_id == corp.corp_id))).scalars()}
    seen: set[str] = set()
    for group in groups:
        for tag in group.get("tag") or []:
            tag_id = str(tag["id"])
            seen.add(tag_id)
            row = rows.get(tag_id)
            if row is None:
                row = rows[tag_id] = await ensure_row(
                    tx,
                    WecomTag,
                    corp_id=corp.corp_id,
                    tag_id=tag_id,
                    group_id="",
                    group_name="",
                    name="",
                    deleted=False,
                    updated_at=utcnow(),
                )
            row.group_id, row.group_name, row.name = str(group.get("group_id") or ""), str(group.get("group_name") or ""), str(tag["name"])
            row.deleted = bool(tag.get("deleted") or group.get("deleted"))
            row.updated_at = utcnow()
    for tag_id, row in rows.items():
        if tag_id not in seen and not row.deleted:
            row.deleted, row.updated_at = True, utcnow()
    await tx.session.flush()
    return len(seen)
