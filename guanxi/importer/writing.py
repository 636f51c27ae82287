"""Writing validated rows, batch by batch, inside the import's one transaction.

Per batch, whatever its size: the key lookups of :mod:`guanxi.importer.matching`, one ``SELECT``
of the customers that rows update (when any), one Core ``INSERT`` executemany per table written
(customers, contact points, identities, stage history, tag links, custom field values) and one
audit entry. New rows are built as plain parameter dicts (no ORM objects); customers that rows
update go through the ORM, as the customer service does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import delete, insert, select

from guanxi.core.base.ids import new_id, new_ids
from guanxi.core.domain.events import CustomerData, CustomerUpdated
from guanxi.core.domain.models import ContactPoint, Customer, CustomerFieldValue, CustomerTag, Identity, StageChange, Tag, utcnow
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Tx
from guanxi.core.services import quotas
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import get_customer, merge_patch, search_text, snapshot
from guanxi.core.services.fields import Row as FieldRow
from guanxi.core.storage.bulk import insert_rows
from guanxi.importer.matching import chunks, existing_keys
from guanxi.importer.validation import Lookups, Row

_CUSTOMERS = cast(Any, Customer).__table__
_CONTACT_POINTS = cast(Any, ContactPoint).__table__
_IDENTITIES = cast(Any, Identity).__table__
_STAGE_CHANGES = cast(Any, StageChange).__table__
_CUSTOMER_TAGS = cast(Any, CustomerTag).__table__
_TAGS = cast(Any, Tag).__table__
_FIELD_VALUES = cast(Any, CustomerFieldValue).__table__


class _Names:
    """The fields :func:`search_text` reads, without building an ORM object."""

    __slots__ = ("company", "display_name", "emails", "phones")

    def __init__(self, display_name: str, company: str | None, phones: list[str], emails: list[str]) -> None:
        self.display_name, self.company, self.phones, self.emails = display_name, company, phones, emails


@dataclass(slots=True)
class _Pending:
    """A customer created by this batch, accumulating the rows that match it (the first row's
    lists are taken over, not copied: a row is used once)."""

    id: uuid.UUID
    display_name: str
    company: str | None
    phones: list[str]
    emails: list[str]
    attributes: dict[str, Any]
    owner_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    source: str | None
    tags: list[tuple[str, str]]
    identities: list[tuple[str, str]]
    custom: dict[uuid.UUID, list[FieldRow]] = field(default_factory=dict)

    @classmethod
    def of(cls, cid: uuid.UUID, row: Row) -> _Pending:
        return cls(
            cid, row.display_name, row.company, row.phones, row.emails, row.attributes, row.owner_id, row.stage_id, row.source,
            row.tags, [row.identity] if row.identity else [], row.custom,
        )  # fmt: skip

    def merge(self, row: Row) -> None:
        self.display_name = row.display_name
        self.company = row.company or self.company
        self.phones = list(dict.fromkeys([*self.phones, *row.phones]))
        self.emails = list(dict.fromkeys([*self.emails, *row.emails]))
        self.attributes = merge_patch(self.attributes, row.attributes)
        self.owner_id = row.owner_id or self.owner_id
        self.stage_id = row.stage_id or self.stage_id
        self.source = row.source or self.source
        self.tags = [*self.tags, *(t for t in row.tags if t not in self.tags)]
        self.custom = {**self.custom, **row.custom}
        if row.identity and row.identity not in self.identities:
            self.identities = [*self.identities, row.identity]


@dataclass
class _Batch:
    """The parameter rows of one batch, per table."""

    now: dt.datetime
    actor_id: uuid.UUID | None
    known_identities: set[tuple[str, str]]
    #: ids drawn for the batch at once (:func:`new_ids`); :func:`new_id` if they run out
    ids: Iterator[uuid.UUID]
    customers: list[dict[str, Any]] = field(default_factory=list)
    contact_points: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    customer_tags: list[dict[str, Any]] = field(default_factory=list)
    new_identity_keys: set[tuple[str, str]] = field(default_factory=set)

    def new_id(self) -> uuid.UUID:
        return next(self.ids, None) or new_id()

    def identity(self, cid: uuid.UUID, key: tuple[str, str]) -> None:
        if key in self.known_identities or key in self.new_identity_keys:
            return
        self.new_identity_keys.add(key)
        now = self.now
        self.identities.append({
            "id": self.new_id(), "customer_id": cid, "channel": key[0], "external_id": key[1], "union_id": None, "nickname": None,
            "avatar_url": None, "follower_count": None, "profile": {}, "created_at": now, "updated_at": now, "unreachable_at": None,
        })  # fmt: skip

    def stage_change(self, cid: uuid.UUID, from_id: uuid.UUID | None, to_id: uuid.UUID) -> None:
        self.stage_changes.append({
            "id": self.new_id(), "customer_id": cid, "from_stage_id": from_id, "to_stage_id": to_id, "changed_at": self.now,
            "actor_id": self.actor_id, "rule": None, "reason": "imported",
        })  # fmt: skip

    def tag(self, cid: uuid.UUID, tag_id: uuid.UUID) -> None:
        self.customer_tags.append({"customer_id": cid, "tag_id": tag_id, "tagged_at": self.now, "actor_id": self.actor_id})


class Writer:
    """Writes validated rows batch by batch inside one transaction."""

    def __init__(self, tx: Tx, lk: Lookups, file_name: str) -> None:
        self.tx = tx
        self.session = tx.session
        self.lk = lk
        self.file_name = file_name
        self.actor_id = tx.ctx.actor.user_id
        self.tag_ids: dict[tuple[str, str], uuid.UUID] = {}
        self.created = 0
        self.updated = 0
        hook = tx.runtime.pm.hook
        self.keep_created = bool(hook.guanxi_customer_created.get_hookimpls())
        self.keep_updated = bool(hook.guanxi_customer_updated.get_hookimpls())
        self.assign_owner = bool(hook.guanxi_assign_owner.get_hookimpls())
        self.created_ids: list[uuid.UUID] = []
        #: custom field values to write for this batch: customer id -> field id -> rows
        self.custom: dict[uuid.UUID, dict[uuid.UUID, list[FieldRow]]] = {}
        self.updated_events: list[CustomerUpdated] = []

    async def _tag_ids(self, labels: list[tuple[str, str]]) -> None:
        missing = [t for t in dict.fromkeys(labels) if t not in self.tag_ids]
        if not missing:
            return
        names = list(dict.fromkeys(name for _, name in missing))
        for chunk in chunks(names):
            for tag in (await self.session.execute(select(Tag).where(Tag.name.in_(chunk)))).scalars():
                self.tag_ids[(tag.group_name, tag.name)] = tag.id
        new_rows = []
        for group, name in missing:
            if (group, name) not in self.tag_ids:
                tid = self.tag_ids[(group, name)] = new_id()
                new_rows.append({"id": tid, "group_name": group, "name": name, "color": None, "created_at": utcnow()})
        if new_rows:
            await self.session.execute(insert(_TAGS), new_rows)

    async def write(self, rows: list[Row]) -> None:
        session = self.session
        index, known_identities = await existing_keys(session, rows)
        pending: dict[uuid.UUID, _Pending] = {}
        existing: dict[uuid.UUID, list[Row]] = {}
        # at most one customer, one identity and one stage change per row
        ids = iter(new_ids(3 * len(rows)))
        for row in rows:
            keys = row.keys()
            target = next((index[k] for k in keys if k in index), None)
            if target is None:
                target = next(ids)
                pending[target] = _Pending.of(target, row)
                self.created += 1
            else:
                self.updated += 1
                if target in pending:
                    pending[target].merge(row)
                else:
                    existing.setdefault(target, []).append(row)
            for key in keys:
                known = index.get(key)
                if known is None or target < known:
                    index[key] = target

        await self._tag_ids([t for row in rows for t in row.tags])
        batch = _Batch(utcnow(), self.actor_id, known_identities, ids)
        updated_ids = await self._update_existing(existing, batch)
        await self._created(pending, batch)

        await session.flush()  # the ORM updates of existing customers
        if batch.customers:
            await quotas.check_new_customers(self.tx, len(batch.customers))
        for table, values in (
            (_CUSTOMERS, batch.customers),
            (_CONTACT_POINTS, batch.contact_points),
            (_IDENTITIES, batch.identities),
            (_STAGE_CHANGES, batch.stage_changes),
            (_CUSTOMER_TAGS, batch.customer_tags),
        ):
            await insert_rows(session, table, values)
        await self._write_custom()
        audit(
            self.tx, "customer.import", "customer", None,
            {"file": self.file_name, "rows": [rows[0].row, rows[-1].row], "created_ids": list(pending), "updated_ids": updated_ids},
        )  # fmt: skip
        await session.flush()
        session.expunge_all()  # keep memory bounded: nothing of this batch is needed any more
        if self.keep_created:
            self.created_ids += pending

    async def _created(self, pending: dict[uuid.UUID, _Pending], batch: _Batch) -> None:
        """The parameter rows of the customers this batch creates."""
        now, first_stage, tag_ids = batch.now, self.lk.first_stage, self.tag_ids
        for p in pending.values():
            if p.custom:
                self.custom[p.id] = p.custom
            stage_id = p.stage_id or first_stage
            owner_id = p.owner_id
            if owner_id is None and self.assign_owner:
                owner_id = await self._assigned_owner(p, stage_id, now)
            batch.customers.append({
                "id": p.id, "display_name": p.display_name, "company": p.company, "phones": p.phones, "emails": p.emails,
                "attributes": p.attributes, "owner_id": owner_id, "stage_id": stage_id, "source": p.source,
                "search_text": search_text(cast(Customer, _Names(p.display_name, p.company, p.phones, p.emails))),
                "merged_into_id": None, "merged_at": None, "erased_at": None, "last_interaction_at": None,
                "created_at": now, "updated_at": now,
            })  # fmt: skip
            batch.contact_points += [{"customer_id": p.id, "kind": "phone", "value": v} for v in p.phones]
            batch.contact_points += [{"customer_id": p.id, "kind": "email", "value": v} for v in p.emails]
            batch.stage_change(p.id, None, stage_id)
            for t in p.tags:
                batch.tag(p.id, tag_ids[t])
            for key in p.identities:
                batch.identity(p.id, key)

    async def _write_custom(self) -> None:
        """The batch's custom field values: a cell replaces the customer's value of that field."""
        if not self.custom:
            return
        by_field: dict[uuid.UUID, list[uuid.UUID]] = {}
        rows: list[dict[str, Any]] = []
        for cid, per_field in self.custom.items():
            for fid, values in per_field.items():
                by_field.setdefault(fid, []).append(cid)
                rows += [
                    {"id": new_id(), "customer_id": cid, "field_id": fid, "text_value": t, "number_value": n, "date_value": d}
                    for t, n, d in values
                ]
        for fid, cids in by_field.items():
            for chunk in chunks(cids):
                await self.session.execute(
                    delete(CustomerFieldValue).where(CustomerFieldValue.field_id == fid, CustomerFieldValue.customer_id.in_(chunk))
                )
        if rows:
            await self.session.execute(insert(_FIELD_VALUES), rows)
        self.custom = {}

    async def _update_existing(self, existing: dict[uuid.UUID, list[Row]], batch: _Batch) -> list[uuid.UUID]:
        if not existing:
            return []
        session, now = self.session, batch.now
        loaded: dict[uuid.UUID, Customer] = {}
        for chunk in chunks(list(existing)):
            for c in (await session.execute(select(Customer).where(Customer.id.in_(chunk)))).scalars():
                loaded[c.id] = c
        # a key of a merged-away customer leads to its survivor
        targets: dict[uuid.UUID, list[Row]] = {}
        for cid, rows in existing.items():
            customer = loaded[cid] if cid in loaded and loaded[cid].merged_into_id is None else await get_customer(session, cid)
            loaded[customer.id] = customer
            targets.setdefault(customer.id, []).extend(rows)
        ids = list(targets)
        nicknames: dict[uuid.UUID, list[str]] = {}
        tagged: set[tuple[uuid.UUID, uuid.UUID]] = set()
        for chunk in chunks(ids):
            stmt = select(Identity.customer_id, Identity.nickname).where(Identity.customer_id.in_(chunk), Identity.nickname.is_not(None))
            for cid, nick in await session.execute(stmt):
                if nick:
                    nicknames.setdefault(cid, []).append(nick)
            stmt2 = select(CustomerTag.customer_id, CustomerTag.tag_id).where(CustomerTag.customer_id.in_(chunk))
            tagged.update(await session.execute(stmt2))
        for cid, rows in targets.items():
            c = loaded[cid]
            before = {f: getattr(c, f) for f in ("display_name", "company", "phones", "emails", "attributes", "owner_id", "source")}
            old_stage = c.stage_id
            phones, emails, attributes = list(c.phones), list(c.emails), dict(c.attributes)
            for row in rows:
                c.display_name = row.display_name
                c.company = row.company or c.company
                c.owner_id = row.owner_id or c.owner_id
                c.source = row.source or c.source
                phones = list(dict.fromkeys([*phones, *row.phones]))
                emails = list(dict.fromkeys([*emails, *row.emails]))
                attributes = merge_patch(attributes, row.attributes)
                if row.stage_id is not None and row.stage_id != c.stage_id:
                    batch.stage_change(cid, c.stage_id, row.stage_id)
                    c.stage_id = row.stage_id
                for tag in row.tags:
                    pair = (cid, self.tag_ids[tag])
                    if pair not in tagged:
                        tagged.add(pair)
                        batch.tag(cid, pair[1])
                if row.identity:
                    batch.identity(cid, row.identity)
                if row.custom:
                    self.custom.setdefault(cid, {}).update(row.custom)
            batch.contact_points += [{"customer_id": cid, "kind": "phone", "value": v} for v in phones if v not in c.phones]
            batch.contact_points += [{"customer_id": cid, "kind": "email", "value": v} for v in emails if v not in c.emails]
            c.phones, c.emails, c.attributes = phones, emails, attributes
            changed = {f: [old, getattr(c, f)] for f, old in before.items() if getattr(c, f) != old}
            if changed or c.stage_id != old_stage:
                c.updated_at = now
            if {"display_name", "company", "phones", "emails"} & changed.keys():
                c.search_text = search_text(c, nicknames.get(cid, []))
            if self.keep_updated and changed:
                self.updated_events.append(
                    CustomerUpdated(tenant_id=self.tx.tenant_id, actor=self.tx.ctx.actor, customer=snapshot(c), changed=changed)
                )
        return ids

    async def _assigned_owner(self, p: _Pending, stage_id: uuid.UUID, now: dt.datetime) -> uuid.UUID | None:
        """Ask ``guanxi_assign_owner`` like the customer service does: an answer that is not an
        active user of the tenant is skipped and the next plugin is asked."""
        data = CustomerData(
            id=p.id, display_name=p.display_name, company=p.company, phones=p.phones, emails=p.emails, attributes=p.attributes,
            owner_id=None, stage_id=stage_id, source=p.source, created_at=now,
        )  # fmt: skip
        active = {uid for uid, is_active in self.lk.users.values() if is_active}

        async def active_user(answer: object) -> bool:
            return answer in active

        owner = await plugins.call_first(
            (await self.tx.hooks()).guanxi_assign_owner,
            accept=active_user,
            runtime=self.tx.runtime,
            session=self.session,
            customer=data,
            arrival=None,
        )
        return cast(uuid.UUID | None, owner)
