"""A journey definition: data (msgspec structs), decoded from JSON or TOML, and published as a
JSON Schema (``docs/plugins/automation-journey.schema.json``, generated from these structs).

A journey is a trigger, an optional goal, and a list of steps. Steps run in the order listed;
a step may name its successor with ``next`` (``null`` ends the run), a ``branch`` names one for
each outcome, and a ``wait_event`` one for the event and one for the timeout. Every step has an
``id`` unique in the journey (runs, reports and errors name steps by it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

StepId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="lower_snake_case, unique in the journey")]
#: where a step goes: a step id, or ``$end`` (or JSON ``null``) to end the run; TOML has no null
END = "$end"
Target = Annotated[str, msgspec.Meta(pattern=r"^([a-z][a-z0-9_]{0,47}|\$end)$", description="a step id, or $end to end the run")]
Clock = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM")]
Seconds = Annotated[int, msgspec.Meta(ge=0, le=366 * 86400)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Condition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Who matches, compiled to SQL by core's customer filter (every part given must hold):
    stage keys, tag labels (any / all / none), channels with an account, custom field conditions
    (as ``customers(filter: {fields})``), and interactions of a kind in the last ``within_s``."""

    stages: list[str] | None = None
    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    tags_none: list[str] | None = None
    channels: list[str] | None = None
    fields: list[dict[str, Any]] | None = None
    interaction_kind: str | None = None
    interaction_within_s: Seconds | None = None


# --- triggers -------------------------------------------------------------------------------


class SegmentEntered(msgspec.Struct, tag="segment_entered", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """A customer enters a segment (the segments part of this plugin announces entries)."""

    segment: Name


class InteractionTrigger(msgspec.Struct, tag="interaction", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """An interaction of a kind is recorded (``comment``, ``purchase`` …), on a channel if given."""

    kind: Name
    channel: str | None = None


class StageChangedTrigger(msgspec.Struct, tag="stage_changed", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """A customer moves to stage ``to`` (from ``from_stage`` if given)."""

    to: Name
    from_stage: str | None = None


class TagAdded(msgspec.Struct, tag="tag_added", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """A tag is added to a customer (its label, ``name`` or ``group/name``)."""

    tag: Name


class DateField(msgspec.Struct, tag="date_field", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """A date custom field (``birthday``, ``contract_end``) comes round: every day at ``at``
    (tenant's time zone) customers whose date is ``offset_days`` from today enter (``annual``:
    month and day only, as for a birthday)."""

    field: Name
    offset_days: Annotated[int, msgspec.Meta(ge=-366, le=366)] = 0
    annual: bool = False
    at: Clock = "09:00"


class Schedule(msgspec.Struct, tag="schedule", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """On a cron schedule (tenant's time zone), every customer matching ``audience`` enters."""

    cron: Name
    audience: Condition | None = None


Trigger = SegmentEntered | InteractionTrigger | StageChangedTrigger | TagAdded | DateField | Schedule


# --- goals ----------------------------------------------------------------------------------


class Goal(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Reaching a stage or an interaction of a kind (a ``purchase``) ends a run early as a
    conversion."""

    stage: str | None = None
    interaction_kind: str | None = None


# --- steps ----------------------------------------------------------------------------------


class Wait(msgspec.Struct, tag="wait", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Wait a duration."""

    id: StepId
    seconds: Annotated[int, msgspec.Meta(ge=1, le=366 * 86400)]
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class WaitUntil(msgspec.Struct, tag="wait_until", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Wait until the next ``time`` of day in the customer's time zone (their ``time_zone``
    attribute), else the tenant's."""

    id: StepId
    time: Clock
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class WaitEvent(msgspec.Struct, tag="wait_event", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Wait for an interaction of ``kind`` (on ``channel`` if given) at most ``timeout_s``;
    go on to ``next`` when it comes, to ``on_timeout`` when it does not."""

    id: StepId
    kind: Name
    timeout_s: Annotated[int, msgspec.Meta(ge=1, le=366 * 86400)]
    channel: str | None = None
    next: Target | msgspec.UnsetType | None = msgspec.UNSET
    on_timeout: Target | None = None


class Branch(msgspec.Struct, tag="branch", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Go to ``then`` when the customer matches ``condition`` now, else to ``otherwise``
    (``null``: the run ends)."""

    id: StepId
    condition: Condition
    then: Target | None = None
    otherwise: Target | None = None


class Send(msgspec.Struct, tag="send", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Send ``text`` on ``channel`` through the outbox (consent, channel policy, the tenant's
    quiet hours and the per-customer frequency cap checked; a refusal is recorded as skipped)."""

    id: StepId
    channel: Name
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=20000)]
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class Tag(msgspec.Struct, tag="tag", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Add and remove tags."""

    id: StepId
    add: list[str] = []
    remove: list[str] = []
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class MoveStage(msgspec.Struct, tag="move_stage", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Move the customer to a stage (by key)."""

    id: StepId
    stage: Name
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class CreateTask(msgspec.Struct, tag="create_task", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Create a follow-up task for the customer's owner, due ``due_in_s`` from now."""

    id: StepId
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    due_in_s: Seconds = 86400
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class NotifyOwner(msgspec.Struct, tag="notify_owner", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """Notify the customer's owner (core notifications: their channels and quiet hours)."""

    id: StepId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class Webhook(msgspec.Struct, tag="webhook", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """POST the run's event to ``url`` (https, a host the tenant allows), signed with the
    tenant's journey webhook secret (``X-Guanxi-Signature``)."""

    id: StepId
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


class Action(msgspec.Struct, tag="action", tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """An action a plugin contributes (``guanxi_journey_actions``), by name, with parameters."""

    id: StepId
    action: Name
    params: dict[str, Any] = {}
    next: Target | msgspec.UnsetType | None = msgspec.UNSET


Step = Wait | WaitUntil | WaitEvent | Branch | Send | Tag | MoveStage | CreateTask | NotifyOwner | Webhook | Action
WAITS = (Wait, WaitUntil, WaitEvent)
STEP_TYPES: tuple[str, ...] = tuple(str(t.__struct_config__.tag) for t in Step.__args__)


class Journey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A journey: ``key`` (unique in the tenant), ``name``, ``trigger``, ``steps`` and an optional
    ``goal``. ``reenter``: a customer may run it again after a finished run (never two runs of
    one version at once)."""

    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
    name: Name
    trigger: Trigger
    steps: Annotated[list[Step], msgspec.Meta(min_length=1, max_length=200)]
    goal: Goal | None = None
    schema: Literal["https://guanxi.dev/schemas/automation-journey.json"] | None = msgspec.field(default=None, name="$schema")


def schema_document() -> dict[str, Any]:
    """The published JSON Schema of a journey definition."""
    schema = msgspec.json.schema(Journey)
    schema["$id"] = "https://guanxi.dev/schemas/automation-journey.json"
    schema["title"] = "Guanxi journey"
    return schema


def successor(steps: list[Any], index: int) -> str | None:
    """The id of the step a non-branching step goes to: its ``next``, else the one listed after it."""
    step = steps[index]
    nxt = getattr(step, "next", msgspec.UNSET)
    if nxt is not msgspec.UNSET:
        return _target(nxt)
    return steps[index + 1].id if index + 1 < len(steps) else None


def exits(steps: list[Any], index: int) -> list[str | None]:
    """Every step id a step may go to (None: the run ends)."""
    step = steps[index]
    if isinstance(step, Branch):
        return [_target(step.then), _target(step.otherwise)]
    if isinstance(step, WaitEvent):
        return [successor(steps, index), _target(step.on_timeout)]
    return [successor(steps, index)]


def _target(value: Any) -> str | None:
    return None if value is None or value == END else str(value)
