"""Event payloads handed to the event hooks after a transaction commits.

They are immutable msgspec Structs (snapshots), never live ORM objects, so a plugin cannot change
a committed row by accident and can serialise an event as it is (``msgspec.json.encode``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from guanxi.core.base.context import Actor


class CustomerData(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    display_name: str
    company: str | None
    phones: list[str]
    emails: list[str]
    attributes: dict[str, Any]
    owner_id: uuid.UUID | None
    stage_id: uuid.UUID | None
    source: str | None
    created_at: dt.datetime


class Event(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    actor: Actor


class CustomerCreated(Event, frozen=True, kw_only=True):
    customer: CustomerData


class CustomerUpdated(Event, frozen=True, kw_only=True):
    customer: CustomerData
    changed: dict[str, list[Any]]  # field -> [old, new]


class CustomersMerged(Event, frozen=True, kw_only=True):
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    moved: dict[str, int]  # what moved: identities, interactions, tags, tasks ...


class InteractionRecorded(Event, frozen=True, kw_only=True):
    interaction_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    kind: str
    direction: str
    occurred_at: dt.datetime
    text: str | None
    payload: dict[str, Any]


class StageChanged(Event, frozen=True, kw_only=True):
    customer_id: uuid.UUID
    from_stage: str | None  # stage keys
    to_stage: str
    rule: str | None
    reason: str | None


class TagsChanged(Event, frozen=True, kw_only=True):
    customer_id: uuid.UUID
    added: list[str]
    removed: list[str]


class IdentityAttached(Event, frozen=True, kw_only=True):
    customer_id: uuid.UUID
    identity_id: uuid.UUID
    channel: str
    external_id: str


class InboundApplied(msgspec.Struct, frozen=True, kw_only=True):
    """What core did with one inbound channel event (see ``guanxi_inbound_applied``)."""

    customer_id: uuid.UUID
    identity_id: uuid.UUID
    external_id: str
    interaction_id: uuid.UUID
    new_customer: bool  # this event created the customer
    new_interaction: bool  # False when the interaction's dedupe key was already recorded


class ContactArrived(Event, frozen=True, kw_only=True):
    """A person became a contact on a channel through an entry point that carried ``state``
    (WeCom's contact-way ``state``, a link's token). ``staff_user_id`` is the staff member they
    were added to, when the channel knows it; ``new_customer`` says whether the customer was
    created by this arrival."""

    customer_id: uuid.UUID
    identity_id: uuid.UUID
    channel: str
    external_id: str
    state: str | None
    staff_user_id: uuid.UUID | None
    new_customer: bool
    occurred_at: dt.datetime


class ContactLeft(Event, frozen=True, kw_only=True):
    """A person stopped being a contact on a channel: removed the staff member
    (``reason="removed_staff"``), was removed by them (``"removed_by_staff"``), or unfollowed
    (``"unfollowed"``). ``staff_user_id`` is the staff member concerned, when known."""

    customer_id: uuid.UUID
    channel: str
    external_id: str
    staff_user_id: uuid.UUID | None
    reason: str
    occurred_at: dt.datetime


class ReferralProgress(Event, frozen=True, kw_only=True):
    """An inviter's progress in an invite-N campaign changed: ``qualified`` of ``goal`` invites
    count now (it may go down when an invitee leaves), ``rewarded`` once the goal was reached and a
    reward written to the ledger. The inviter is a customer or a staff user."""

    campaign_id: uuid.UUID
    campaign_name: str
    inviter_customer_id: uuid.UUID | None
    inviter_user_id: uuid.UUID | None
    qualified: int
    goal: int
    rewarded: bool


class TaskChanged(Event, frozen=True, kw_only=True):
    task_id: uuid.UUID
    customer_id: uuid.UUID
    assignee_id: uuid.UUID | None
    title: str
    due_at: dt.datetime | None
    done: bool


class MessageStatusChanged(Event, frozen=True, kw_only=True):
    """An outbox message moved to ``queued``, ``sending``, ``sent`` or ``failed``."""

    message_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    status: str
    attempts: int
    provider_message_id: str | None
    error: str | None


class NotificationCreated(Event, frozen=True, kw_only=True):
    """A notification to a staff member was recorded (its channel deliveries are queued)."""

    notification_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
    body: str | None
    link_type: str | None
    link_id: uuid.UUID | None
    created_at: dt.datetime
