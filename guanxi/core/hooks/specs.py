"""Every hook a Guanxi plugin can implement.

Plugins implement hooks with ``from guanxi import hookimpl``. Hooks are grouped by phase:

* **Contributions** are called once at start-up and return things to add to the application.
* **Events** are called after the transaction that caused them has committed. An
  implementation may be ``async def``; core awaits it. A failing event implementation is logged
  and does not undo the committed change or stop the other plugins' async implementations.
* **Collections** ask every plugin for its part (an export of a person's data, score
  components, entry points) and combine the answers. An implementation may be ``async def``.
* **Decisions** ask "who handles this?": they are ``firstresult`` (the first non-None result
  wins, later implementations are not called). An implementation may be ``async def``: core
  calls the implementations one at a time in pluggy's order (``tryfirst`` first, ``trylast``
  last), awaits each answer, and stops at the first that is not None.

Every hook receives only the arguments it names (pluggy passes by keyword), so an implementation
may leave out arguments it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import datetime as dt
    import uuid
    from pathlib import Path

    import click
    import msgspec

    from guanxi.core.domain.access import Permission
    from guanxi.core.domain.channels import AccountSpec, Channel, InboundEvent, Receipt, StaffChannel
    from guanxi.core.domain.contracts import (
        Arrival,
        BackgroundWorker,
        EntryPoint,
        EntryPointRequest,
        JobKind,
        JourneyAction,
        PoolReturnRule,
        ScoreComponent,
        StaffHandover,
    )
    from guanxi.core.domain.events import (
        ContactArrived,
        ContactLeft,
        CustomerCreated,
        CustomerData,
        CustomerReferred,
        CustomersMerged,
        CustomerUpdated,
        IdentityAttached,
        InboundApplied,
        InteractionRecorded,
        MessageStatusChanged,
        NotificationCreated,
        ReferralProgress,
        SegmentMembershipChanged,
        StageChanged,
        TagsChanged,
        TaskChanged,
    )
    from guanxi.core.domain.models import OutboxMessage
    from guanxi.core.runtime import Runtime, Tx
    from guanxi.core.services.identities import IdentityInput
    from guanxi.core.storage.tenancy import TenantSession

hookspec = pluggy.HookspecMarker("guanxi")


# --------------------------------------------------------------------------------------------
# Contributions (start-up)
# --------------------------------------------------------------------------------------------


@hookspec
def guanxi_config_schema() -> type[msgspec.Struct] | None:
    """Return the msgspec Struct type of this plugin's config section ``[plugins.<name>]``.

    Called once while the configuration is loaded, before any other hook. The section is decoded
    into this type (declare it ``frozen=True, forbid_unknown_fields=True``); an invalid value fails
    start-up with its key path, e.g. ``$.plugins.wecom.corp_id``. The decoded value is available
    as ``runtime.plugin_settings("<name>")``. Return None (or do not implement the hook) when the
    plugin takes no settings; a section for such a plugin is then rejected.
    """


@hookspec
def guanxi_tenant_settings() -> type[msgspec.Struct] | None:
    """Return the msgspec Struct type of the settings a tenant may override, or None.

    Its fields are a subset of the plugin's ``guanxi_config_schema`` struct, with the same names
    and types (start-up fails otherwise). Never deployment concerns (API base URLs, file paths,
    public URLs, secrets): a tenant admin writes them, and could turn a URL into a request from the
    server or a path into a file probe. A tenant's overrides are validated against this struct
    and then against the whole config struct, stored in the database and read with
    ``runtime.plugin_settings(name, tenant_id)``. Called once at start-up. Synchronous.
    """


@hookspec
def guanxi_startup(runtime: Runtime) -> Any:
    """Called once when the application (server, worker or CLI command) starts, after the
    configuration is loaded and the database engine exists. May be ``async def``. Use it to
    open clients or start background tasks; keep them on your plugin object.

    :param runtime: the running application's :class:`guanxi.core.runtime.Runtime`.
    """


@hookspec
def guanxi_shutdown(runtime: Runtime) -> Any:
    """Called once when the application stops, in the reverse of the start-up order. May be
    ``async def``. Close what :func:`guanxi_startup` opened."""


@hookspec
def guanxi_routes(runtime: Runtime) -> list[Any] | None:
    """Return Litestar route handlers, controllers or routers to mount (webhooks, redirects,
    tracking pixels). Paths should start with the plugin's name, e.g. ``/webhooks/wecom``.
    Called once while the HTTP app is built. Synchronous."""


@hookspec
def guanxi_graphql(runtime: Runtime) -> Any:
    """Return this plugin's part of the GraphQL schema, a
    :class:`guanxi.graphql.contrib.GraphQLContribution` (Query, Mutation and Subscription
    field classes, extra types, and fields added to core types such as ``Customer``), or None.

    Called once while the schema is built. A field name that clashes with core's or another
    plugin's fails start-up with both owners named. Synchronous.
    """


@hookspec
def guanxi_migrations() -> Path | str | None:
    """Return the folder of this plugin's Alembic revisions, or None if it owns no tables.

    The folder is the plugin's own Alembic history, recorded in its own version table
    ``alembic_version_<plugin>``; ``guanxi db upgrade`` applies core first, then each enabled
    plugin's folder in the order of ``plugins.enabled``, so a revision may rely on core's tables.
    A disabled plugin's tables are left alone. Tables must be named ``<plugin>_<table>`` and carry
    ``tenant_id`` first in every key.
    """


@hookspec
def guanxi_channels(runtime: Runtime) -> list[Channel] | None:
    """Return this plugin's channel adapters (instances of :class:`guanxi.Channel`).

    Called once, the first time core needs the channels (sending, profile refresh). A channel's
    ``name`` must be unique across plugins; two plugins offering the same name fail with both
    named. Synchronous; adapters may open clients lazily and close them in ``aclose``.
    """


@hookspec
def guanxi_staff_channels(runtime: Runtime) -> list[StaffChannel] | None:
    """Return this plugin's staff notification channels (instances of :class:`guanxi.StaffChannel`):
    ways to reach an *employee* (a WeCom application message, an e-mail), not a customer.

    Called once, the first time core delivers a notification. A staff channel's ``name`` must be
    unique across plugins (it may equal the plugin's customer channel name, e.g. ``wecom``). Core
    asks each channel for the user's address when a notification is recorded (no address: the
    user is not reachable there and keeps the in-app notification only), queues one delivery per
    reachable channel the user chose, and calls ``send`` from the staff delivery worker with
    retries, quiet hours and digests applied. Synchronous.
    """


@hookspec
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind] | None:
    """Return the kinds of scheduled job this plugin runs (:class:`guanxi.JobKind`: a name
    prefixed with the plugin's, an ``async def run(job)``, retry limit).

    Called once, the first time the scheduler needs the kinds. Jobs of a kind are scheduled with
    :func:`guanxi.core.services.schedule.schedule_job` (at a time, or on a cron schedule in the
    tenant's time zone) and run by the scheduler worker, once per slot across processes. A name
    already taken (by core or another plugin) fails with both owners named. Synchronous.
    """


@hookspec
def guanxi_workers(runtime: Runtime) -> list[BackgroundWorker] | None:
    """Return background loops to run in the worker processes (:class:`guanxi.BackgroundWorker`:
    ``name``, ``start()``, ``async stop()``): long-lived connections a job cannot hold, such as
    an IMAP IDLE connection per mailbox.

    Called when a process starts its workers (a server with ``queues.run_workers``, or ``guanxi
    worker``), after core's inbox, outbox, scheduler and staff workers are started; each is
    stopped with them on shutdown. Not called by other CLI commands. Several worker processes
    each start theirs: coordinate through the database (a lease row) when one at a time must
    do the work. Synchronous.
    """


@hookspec
def guanxi_journey_actions(runtime: Runtime) -> list[JourneyAction] | None:
    """Return the step types this plugin adds to marketing-automation journeys
    (:class:`guanxi.JourneyAction`: a name prefixed with the plugin's, an
    ``async def run(action: ActionRun) -> str | None``).

    Called when a journey is saved (its ``action`` steps must name an action of a plugin the
    tenant has enabled) and when a run reaches an action step; only enabled plugins are asked.
    ``run`` gets the step's open transaction: its writes commit with the step's record, once.
    Returning a text records the step as skipped with that reason; raising records it as failed.
    Synchronous (``run`` is async).
    """


@hookspec
def guanxi_channel_accounts(runtime: Runtime) -> list[AccountSpec] | None:
    """Declare the accounts of this plugin's channels (:class:`guanxi.AccountSpec`): their public
    settings, their secret fields and which field is the provider's account id.

    Core keeps each tenant's accounts in ``channel_accounts`` rows, secrets sealed at rest, and
    gives them back through :mod:`guanxi.core.services.accounts` (``account_by_key`` for a
    webhook, which learns the tenant from the account; ``tenant_accounts`` for a tenant's work).
    Accounts listed in ``config_accounts`` are imported on ``guanxi db upgrade``. Called when
    core first needs the specs. Synchronous.
    """


@hookspec
def guanxi_cli(group: click.Group) -> None:
    """Add commands to the ``guanxi`` command line, e.g. ``group.add_command(my_group)``.

    Called once when the CLI starts, only for enabled plugins. Name a command group after the
    plugin (``guanxi wecom sync``)."""


@hookspec
def guanxi_pool_return_rules(runtime: Runtime) -> list[PoolReturnRule] | None:
    """Return the lead-pool return rules this plugin contributes (:class:`guanxi.PoolReturnRule`:
    a key prefixed with the plugin's name, its text, its parameter's unit and range, and a SQL
    condition "this customer's lead lapsed as of a time").

    Called by the sales plugin, only for the plugins the tenant enabled, when a pool is created
    (a pool names the rules it applies, each with its parameter; an unknown key is refused) and
    on each run of its return job, which evaluates every rule of every pool in SQL: held leads
    whose condition holds now go back to their pool, those whose condition holds a day later get
    their holder warned. A key already taken fails with both owners named. Synchronous.
    """


@hookspec
def guanxi_permissions() -> list[Permission] | None:
    """Declare this plugin's permissions: which roles may use which of its GraphQL fields.

    Each :class:`guanxi.core.domain.access.Permission` names the roles that hold it and the schema
    coordinates it guards (``"Mutation.wecomMassSend"``). Core enforces them in one place for
    every request; a plugin never checks roles in its resolvers. A plugin mutation that no
    permission covers is allowed to admins only. Called once at start-up. Synchronous.
    """


# --------------------------------------------------------------------------------------------
# Events (after commit)
# --------------------------------------------------------------------------------------------


@hookspec
def guanxi_customer_created(runtime: Runtime, event: CustomerCreated) -> Any:
    """A customer was created (by the API, an import, or an inbound event on a channel)."""


@hookspec
def guanxi_customer_updated(runtime: Runtime, event: CustomerUpdated) -> Any:
    """A customer's fields changed; ``event.changed`` maps each field to ``[old, new]``."""


@hookspec
def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> Any:
    """Two customers were merged: everything of ``event.merged_id`` now belongs to
    ``event.survivor_id``, and the merged customer is a tombstone. Plugins that key their own rows
    by customer move them here."""


@hookspec
def guanxi_identity_attached(runtime: Runtime, event: IdentityAttached) -> Any:
    """A channel identity was attached to a customer. (Identities moved by a merge are reported
    by :func:`guanxi_customers_merged` instead.)"""


@hookspec
def guanxi_interaction_recorded(runtime: Runtime, event: InteractionRecorded) -> Any:
    """An interaction was appended to a customer's timeline. Not called for a replayed event
    whose dedupe key was already recorded."""


@hookspec
def guanxi_stage_changed(runtime: Runtime, event: StageChanged) -> Any:
    """A customer moved from one lifecycle stage to another (``from_stage`` is None for the first
    stage). ``rule`` names the automation rule that moved it, if any."""


@hookspec
def guanxi_tags_changed(runtime: Runtime, event: TagsChanged) -> Any:
    """Tags were added to or removed from a customer (names as ``group/name`` or ``name``)."""


@hookspec
def guanxi_task_changed(runtime: Runtime, event: TaskChanged) -> Any:
    """A follow-up task was created or completed (``event.done``)."""


@hookspec
def guanxi_message_status_changed(runtime: Runtime, event: MessageStatusChanged) -> Any:
    """An outbox message changed status: ``queued`` (accepted by ``sendMessage``), ``sending``,
    ``sent`` (with the provider's message id) or ``failed`` (with the error, after the last
    retry or a permanent error). Retries show as ``queued`` again with a higher ``attempts``.

    After ``sent``, receipts from the provider (``guanxi.Receipt``, applied by the inbox worker)
    move the message on to ``delivered``, ``read``, ``failed``, ``bounced`` or ``complained``
    (``event.source == "receipt"``, ``event.occurred_at`` the provider's time). A receipt that
    does not move the status forward (a late ``delivered`` after ``read``, a duplicate) fires
    nothing. ``event.previous_status`` is the status before the change."""


@hookspec
def guanxi_notification_created(runtime: Runtime, event: NotificationCreated) -> Any:
    """A notification to a staff member was recorded (``event.user_id``); its deliveries on the
    user's staff channels are queued. Core's real-time plugin feeds the ``notificationReceived``
    subscription from it."""


@hookspec
def guanxi_contact_arrived(runtime: Runtime, event: ContactArrived) -> Any:
    """A person became a contact on a channel through an entry point carrying ``event.state``
    (a WeCom contact-way ``state``, a link token). The referral plugin resolves the state to an
    attribution token here; any plugin may react (a welcome flow, a source report)."""


@hookspec
def guanxi_contact_left(runtime: Runtime, event: ContactLeft) -> Any:
    """A person stopped being a contact on a channel (removed the staff member, was removed, or
    unfollowed). Used to reverse referral credit and to lower engagement scores."""


@hookspec
def guanxi_customer_referred(runtime: Runtime, event: CustomerReferred) -> Any:
    """A plugin learned who brought a customer outside a channel's entry point (a forwarded
    radar link of the materials plugin). The referral plugin may count it as a referral (its
    ``forward_campaign`` setting), under its usual anti-fraud rules."""


@hookspec
def guanxi_referral_progress(runtime: Runtime, event: ReferralProgress) -> Any:
    """An inviter's progress in an invite-N campaign changed (``qualified`` of ``goal``). A
    channel plugin may tell the inviter ("2 more friends to go")."""


@hookspec
def guanxi_segment_membership_changed(runtime: Runtime, event: SegmentMembershipChanged) -> Any:
    """Customers entered (``event.entered``) or left (``event.exited``) a segment of the
    automation plugin, after the transaction that changed its membership commits. Journeys start
    on entry; any plugin may react (sync a WeCom tag, notify an owner)."""


# --------------------------------------------------------------------------------------------
# In the transaction
# --------------------------------------------------------------------------------------------


@hookspec
def guanxi_inbound_applied(tx: Tx, event: InboundEvent, applied: InboundApplied) -> Any:
    """Core applied an inbound channel event from the inbox (customer resolved, identity and
    interaction recorded); add the channel's own bookkeeping in the same transaction.

    Called inside the inbox's transaction, in the event's savepoint, for every implementation
    (check ``event.channel``). May be ``async def``. An exception undoes the whole event (core's
    changes, yours, and the events queued with ``tx.emit``) and the inbox retries it later with
    backoff, so a relation table cannot fall out of step with the timeline. Keep it to database
    work; start provider calls with ``tx.after_commit``.
    """


@hookspec
def guanxi_inbound_prefetch(tx: Tx, events: list[InboundEvent]) -> Any:
    """The inbox is about to apply ``events`` (a batch, in order) one after the other in ``tx``,
    without savepoints; look up at once what your ``guanxi_inbound_applied`` will need for them
    (rows, settings) and keep it for this transaction (``tx.session.info``), so that each event
    costs no statement of its own.

    Called once per batch before its first event, and only when the batch is applied in one go:
    when an event fails, the batch is rolled back and applied again with a savepoint per event,
    without this call, so ``guanxi_inbound_applied`` must also work without what you kept. Every
    implementation sees every channel's events (filter on ``event.channel``). May be ``async
    def``. An exception sends the batch to the one-savepoint-per-event path.
    """


@hookspec
def guanxi_receipt_applied(tx: Tx, receipt: Receipt, message: OutboxMessage, previous_status: str) -> Any:
    """Core applied a receipt (a delivery report, a bounce, a complaint) from the inbox to its
    outbox ``message``; add the channel's own bookkeeping (bounce counts, suppression) in the same
    transaction. ``previous_status`` is the message's status before; ``message.status`` differs
    from it only when the receipt moved the message on.

    Called inside the inbox's transaction, in the receipt's savepoint, for every receipt of every
    channel (check ``receipt.channel``). May be ``async def``. An exception undoes the receipt and
    the inbox retries it with backoff, so a count is never lost nor taken twice.
    """


@hookspec
def guanxi_staff_handover(tx: Tx, handover: StaffHandover) -> dict[str, int] | None:
    """A staff member's customers are being handed over to another user, or back to a lead pool
    (``handover.to_user_id`` None), in one operation: hand over this plugin's part of them (open
    deals, follow relations …) in the same transaction, and start provider calls (WeCom's
    transfer APIs) with ``tx.after_commit``. Called by the sales plugin's ``handOverCustomers``
    after core's owners and tasks moved. Return counts of what was handed over, or None. An
    exception undoes the whole handover.
    """


@hookspec
def guanxi_customers_scored(tx: Tx, totals: dict[uuid.UUID, float]) -> Any:
    """A scoring plugin has just computed the score totals of some customers (``totals``: the
    customer's id → its total, whether or not it changed), inside the transaction that stored
    them: derive what depends on the score (a grade field, a flag) in the same transaction.

    Called for one customer after an event, and once per batch (thousands of customers) by a
    recompute: answer with set-based statements, a constant number per call, never one per
    customer. May be ``async def``. An exception undoes the scores of the batch.
    """


# --------------------------------------------------------------------------------------------
# Collections (every implementation answers; may be async)
# --------------------------------------------------------------------------------------------


@hookspec
def guanxi_export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    """Return everything this plugin holds on one person, as JSON-compatible values (PIPL / GDPR
    right of access). The answer is the plugin's section of ``exportCustomerData``, under the
    plugin's name. Return None when the plugin holds nothing on the person. A plugin with tables
    holding personal data (columns with ``info=PERSONAL``) must implement this hook and
    :func:`guanxi_erase_customer`; ``guanxi plugins --check`` reports one that does not.
    """


@hookspec
def guanxi_erase_customer(
    runtime: Runtime, session: TenantSession, customer_id: uuid.UUID, identities: list[tuple[str, str, str | None]]
) -> dict[str, int] | None:
    """Delete or anonymise the personal data this plugin holds on one person (right to erasure),
    inside the erasing transaction (``session`` writes; an exception undoes the whole erasure).
    ``identities`` are the person's channel identities as they were before core blanked them,
    as ``(channel, external_id, union_id)``: how to find rows keyed by a provider's user id.

    Keep what aggregates need (counts, scores, campaign progress) without the person's data:
    blank names, texts and external ids rather than deleting rows others count. Return what was
    erased, e.g. ``{"followers": 2, "messages": 14}``.
    """


@hookspec
def guanxi_merge_record(runtime: Runtime, session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> dict[str, Any] | None:
    """Return what this plugin needs to undo a merge of ``merged_id`` into ``survivor_id``: the
    ids of its rows of the merged customer (the ones its ``guanxi_customers_merged`` will move),
    rows it will delete, as JSON-compatible values. Called inside the merge's transaction, before
    core moves anything. Core keeps the answer with the merge and hands it back to
    :func:`guanxi_merge_undone`. Return None when the plugin holds nothing of the merged customer.
    """


@hookspec
def guanxi_merge_undone(
    runtime: Runtime, session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID, record: dict[str, Any]
) -> dict[str, int] | None:
    """A merge is being undone: give the merged customer back its rows, using ``record`` (this
    plugin's answer to :func:`guanxi_merge_record` for that merge). Called inside the undo's
    transaction, after core has given back its own rows (an exception undoes the whole undo),
    only for plugins that recorded something. Return counts of what was given back, or None.
    """


@hookspec
def guanxi_export_tenant(runtime: Runtime, session: TenantSession) -> dict[str, Any] | None:
    """Return everything this plugin holds for the session's tenant, as JSON-compatible values:
    every row of its tables, tenant-level ones too (staff mappings, campaigns, tags), not only
    the per-customer data. Called when the operator deletes a tenant, before anything is
    removed, for every loaded plugin (also one the tenant disabled). The answer is the plugin's
    section of the tenant export. ``guanxi.core.services.tenants.dump_models(session, models)``
    dumps tables. Return None when the plugin holds nothing. May be ``async def``; an exception
    stops the deletion (nothing is removed).
    """


@hookspec
def guanxi_purge_tenant(runtime: Runtime, session: TenantSession) -> dict[str, int] | None:
    """Remove every row this plugin holds for the session's tenant (and any file it keeps for
    it), inside the deleting transaction (``session`` writes; an exception undoes the whole
    deletion). Called after :func:`guanxi_export_tenant`, before core removes its own rows, for
    every loaded plugin (also one the tenant disabled). Return the rows deleted by table;
    ``guanxi.core.services.tenants.purge_models(session, models)`` deletes tables in a safe order.
    """


@hookspec
def guanxi_entry_points(runtime: Runtime, session: TenantSession, request: EntryPointRequest) -> list[EntryPoint] | None:
    """Make this channel's entry points for an attribution token (WeCom: a contact-way QR code
    whose ``state`` is the token). Called by the referral plugin when it mints a token; every
    channel plugin may answer. Contacts arriving through the entry point are reported with
    :func:`guanxi_contact_arrived` and ``state`` set to the token."""


@hookspec
def guanxi_score_components(
    runtime: Runtime, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent] | None:
    """Return this plugin's parts of the scores of ``customer_ids`` as of ``as_of`` (one query
    for the whole batch, not one per customer). The scoring plugin adds every plugin's
    components to its own; a customer missing from the answer gets no component from this
    plugin. Components are named ``<plugin>.<part>``."""


# --------------------------------------------------------------------------------------------
# Decisions (firstresult; may be async)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def guanxi_resolve_customer(session: TenantSession, identity: IdentityInput) -> uuid.UUID | None:
    """Find the existing customer a new channel identity belongs to.

    Called when an identity that Guanxi has not seen arrives, before a new customer would be
    created for it. Core has already tried its own matching (same union id on any channel, then
    the same phone or email); this hook adds matching core cannot do (a CRM lookup, a fuzzy rule).
    The session is scoped to the tenant and inside the ingesting transaction. May be
    ``async def``. Stops at the first non-None result; return None to let the next plugin (and
    finally core, which creates a customer) decide. An answer that is not the id of a live
    customer of the tenant is logged and skipped, and the next plugin is asked.
    """


@hookspec(firstresult=True)
def guanxi_assign_owner(runtime: Runtime, session: TenantSession, customer: CustomerData, arrival: Arrival | None) -> uuid.UUID | None:
    """Pick the staff user who owns a new customer that arrived without an owner. ``arrival``
    says how a customer a channel brings arrived (the staff member's channel identity it came
    through, in the event's payload); None for customers created otherwise.

    Called inside the creating transaction, for customers created without an owner. May be
    ``async def``. Stops at the first non-None result; return None to leave the decision to the
    next plugin (or leave the customer unassigned). An id that is not an active user of the
    tenant is logged and skipped, and the next plugin is asked."""
