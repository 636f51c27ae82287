"""Data types that plugins exchange through hooks without importing each other.

A plugin that offers something (a channel turning an attribution token into a QR code, a
plugin adding a part to a customer's score) and a plugin that uses it agree on these types only;
neither imports the other (checked by import-linter).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import msgspec


class ScoreComponent(msgspec.Struct, frozen=True, kw_only=True):
    """One part of one customer's score, as a plugin contributes it through
    :func:`guanxi.core.hooks.specs.guanxi_score_components`.

    ``name`` identifies the component (``referral.social``); ``value`` is in points (may be
    negative); ``reasons`` say in words where the points come from, e.g.
    ``["12 direct referrals x 5", "30 indirect referrals x 1"]``, so that the score can be explained.
    """

    customer_id: uuid.UUID
    name: str
    value: float
    reasons: list[str] = msgspec.field(default_factory=list)


class EntryPointRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the channels for a way in that carries an attribution ``token``.

    ``token`` is at most 30 characters of ``[A-Za-z0-9_-]`` (it fits WeCom's contact-way
    ``state``). The inviter is a staff user (``inviter_user_id``) or a customer
    (``inviter_customer_id``); ``staff_user_id`` is the staff member new contacts should be
    added to (the inviter, or the owner of the inviting customer), if any.
    """

    token: str
    campaign_id: uuid.UUID
    campaign_name: str
    inviter_user_id: uuid.UUID | None = None
    inviter_customer_id: uuid.UUID | None = None
    staff_user_id: uuid.UUID | None = None


class EntryPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A channel's answer to an :class:`EntryPointRequest`.

    ``kind`` is ``qr`` (``url`` is what the QR code encodes or an image of it, as the provider
    returns it) or ``link`` (a URL to open). ``reference`` is the provider's id of the entry point
    (WeCom's contact-way ``config_id``), to delete or refresh it later.
    """

    channel: str
    kind: str
    url: str
    reference: str | None = None


class JobRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of a scheduled job, as its kind's handler receives it.

    ``slot_at`` is the time the run is for (the ``run_at`` of a one-off job, the cron slot of a
    recurring one). ``idempotency_key`` (``<job id>:<slot>``) is the same when the run is
    retried after an error or re-run after a worker died mid-way: use it to make the run's
    effects happen once (a notification's dedupe key, a provider's request id). ``attempt``
    counts from 1. ``runtime`` is the running :class:`guanxi.Runtime`."""

    runtime: Any
    tenant_id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    key: str
    payload: dict[str, Any]
    slot_at: dt.datetime
    attempt: int
    idempotency_key: str


@runtime_checkable
class BackgroundWorker(Protocol):
    """A long-running loop of a plugin that runs in the worker processes (``guanxi_workers``):
    started once, stopped (and awaited) on shutdown."""

    name: str

    def start(self) -> None: ...
    async def stop(self) -> None: ...


class JobKind(msgspec.Struct, frozen=True, kw_only=True):
    """A kind of scheduled job, contributed through ``guanxi_job_kinds``.

    ``name`` is unique across core and plugins, prefixed with the plugin's name
    (``sales.pool_return``). ``run`` is an ``async def run(job: JobRun) -> None``: it opens its own
    transactions (``job.runtime.transaction(...)``); an exception is retried with backoff up to
    ``max_attempts``, then the job is marked failed with the error. A run may happen twice (a
    worker died after the effect committed): make effects idempotent with ``job.idempotency_key``.
    """

    name: str
    run: Callable[[JobRun], Awaitable[None]]
    description: str = ""
    max_attempts: int = 5


class ActionRun(msgspec.Struct, frozen=True, kw_only=True):
    """One customer reaching an ``action`` step of a journey, as the action's ``run`` receives it.

    ``tx`` is the open transaction of the step (a :class:`guanxi.Tx`): write through it, so the
    action commits together with the step's record, exactly once. ``params`` are the step's
    parameters as written in the journey. ``idempotency_key`` (``journey:<run id>:<step number>``)
    is the same if the step is retried after a worker died before committing: give it to any
    provider call that leaves the database."""

    tx: Any
    customer_id: uuid.UUID
    params: dict[str, Any]
    journey: str
    step: str
    idempotency_key: str


class JourneyAction(msgspec.Struct, frozen=True, kw_only=True):
    """A step type a plugin adds to journeys, contributed through ``guanxi_journey_actions``.

    ``name`` is unique, prefixed with the plugin's name (``loyalty.grant_points``). ``run`` is an
    ``async def run(action: ActionRun) -> str | None``: None when done; a text to record the
    step as skipped with that reason (the customer cannot take it). An exception records the
    step as failed and ends the customer's run."""

    name: str
    run: Callable[[ActionRun], Awaitable[str | None]]
    description: str = ""


class Arrival(msgspec.Struct, frozen=True, kw_only=True):
    """How a new customer arrived through a channel, for ``guanxi_assign_owner``: the channel,
    the account's id on it, and the inbound event's ``payload`` (e.g. WeCom's ``userid`` of the
    member the customer added, or the ``state`` of a salesperson's QR code or poster)."""

    channel: str
    external_id: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


class StaffHandover(msgspec.Struct, frozen=True, kw_only=True):
    """A staff member's customers handed over (离职继承 / 在职继承), for ``guanxi_staff_handover``:
    from ``from_user_id`` to ``to_user_id``, or back to a lead pool when ``to_user_id`` is None
    (``pool`` names it)."""

    from_user_id: uuid.UUID
    to_user_id: uuid.UUID | None
    pool: str | None
    customer_ids: list[uuid.UUID]
    reason: str


class PoolReturnRule(msgspec.Struct, frozen=True, kw_only=True):
    """A return rule of the lead pool (公海) a plugin contributes through
    ``guanxi_pool_return_rules``: when a held lead goes back to its pool.

    ``key`` is unique, prefixed with the plugin's name (``sales.contract_lapsed``); a pool turns
    the rule on by giving it a parameter, a whole number of ``unit`` (``"days"`` or
    ``"months"``) between ``min_value`` and ``max_value``. ``text(value)`` says the rule in
    words, e.g. "30 days after the last contract ended without a new one" (the lead's pool
    history names it). ``condition(tenant_id, customer_id, as_of, value)`` returns a SQL boolean
    over the outer query's ``tenant_id`` and ``customer_id`` columns that is true for a customer
    whose lead has *lapsed as of* ``as_of`` (an aware datetime in the tenant's time zone:
    ``as_of.date()`` is the tenant's day); it must not look at the lead itself. The pool
    evaluates it with ``as_of`` now to return leads, and with ``as_of`` a day later to warn
    their holders the day before; keep it one SQL expression (a correlated ``EXISTS`` or scalar
    subquery), never a query per customer. ``warning(value)`` is the body of that notice."""

    key: str
    text: Callable[[int], str]
    condition: Callable[[Any, Any, dt.datetime, int], Any]
    unit: str = "days"
    min_value: int = 1
    max_value: int = 3650
    warning: Callable[[int], str] | None = None
    description: str = ""
