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
    """A snapshot of a customer as it was committed (in ``CustomerCreated``, ``CustomerUpdated``
    and the ``guanxi_assign_owner`` decision)."""

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
    """The fields every event carries: whose data changed and who changed it."""

    #: The tenant the change happened in.
    tenant_id: uuid.UUID
    #: Who did it: a user, an API key, a plugin or a system worker (``actor.kind``, ``actor.name``).
    actor: Actor


class CustomerCreated(Event, frozen=True, kw_only=True):
    """A customer was created (by the API, an import, or the inbox for a new channel account)."""

    customer: CustomerData


class CustomerUpdated(Event, frozen=True, kw_only=True):
    """A customer's fields changed; ``customer`` is the new state."""

    customer: CustomerData
    #: Each changed field: ``[old, new]``.
    changed: dict[str, list[Any]]


class CustomersMerged(Event, frozen=True, kw_only=True):
    """Two customers were merged: ``merged_id`` is now a tombstone pointing at ``survivor_id``.
    Plugins move their own rows keyed by customer here."""

    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    #: What core moved, by kind: identities, interactions, tags, tasks …
    moved: dict[str, int]


class InteractionRecorded(Event, frozen=True, kw_only=True):
    """A touchpoint was added to a customer's timeline (inbound event, outbound message, note …)."""

    interaction_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    kind: str
    direction: str
    occurred_at: dt.datetime
    text: str | None
    payload: dict[str, Any]


class StageChanged(Event, frozen=True, kw_only=True):
    """A customer moved to another lifecycle stage, by hand or by a rule."""

    customer_id: uuid.UUID
    #: The key of the stage before (None for a customer's first stage).
    from_stage: str | None
    #: The key of the new stage.
    to_stage: str
    rule: str | None
    reason: str | None


class TagsChanged(Event, frozen=True, kw_only=True):
    """Tags were added to or removed from a customer (tag names)."""

    customer_id: uuid.UUID
    added: list[str]
    removed: list[str]


class IdentityAttached(Event, frozen=True, kw_only=True):
    """A channel account was attached to a customer."""

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
    #: This event created the customer.
    new_customer: bool
    #: False when the interaction's dedupe key was already recorded.
    new_interaction: bool


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


class SegmentMembershipChanged(Event, frozen=True, kw_only=True):
    """Customers entered or left a segment (a saved customer filter of the automation plugin):
    a dynamic segment's membership was re-evaluated after a change, or a static segment's list
    changed. Large changes come as several events of at most 1,000 customers each."""

    segment_id: uuid.UUID
    segment_key: str
    entered: list[uuid.UUID]
    exited: list[uuid.UUID]


class TaskChanged(Event, frozen=True, kw_only=True):
    """A follow-up task was created or completed (``done``)."""

    task_id: uuid.UUID
    customer_id: uuid.UUID
    assignee_id: uuid.UUID | None
    title: str
    due_at: dt.datetime | None
    done: bool


class MessageStatusChanged(Event, frozen=True, kw_only=True):
    """An outbox message changed status: the outbox moved it to ``queued``, ``sending``, ``sent``
    or ``failed``, or a receipt moved it on to ``delivered``, ``read``, ``failed``, ``bounced``
    or ``complained``."""

    message_id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    status: str
    attempts: int
    provider_message_id: str | None
    error: str | None
    #: The status before this change (None for a newly queued message).
    previous_status: str | None = None
    #: ``"outbox"`` (the outbox worker or ``sendMessage``) or ``"receipt"`` (a provider's report).
    source: str = "outbox"
    #: When it happened: now for the outbox, the provider's time for a receipt.
    occurred_at: dt.datetime | None = None


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
