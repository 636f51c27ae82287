"""The ``[plugins.scoring]`` config section: every scoring rule, validated at start.

A bad rule fails start-up with its key path (``$.plugins.scoring.engagement.rules[2].period``):
msgspec checks types and bounds, and each Struct's ``__post_init__`` checks what types cannot say.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PERIOD_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400}

Points = Annotated[float, Meta(ge=-10_000, le=10_000)]
Positive = Annotated[float, Meta(gt=0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class EngagementRule(_Section, frozen=True, kw_only=True):
    """Points per interaction of ``kind`` (on ``channel``, or any channel when omitted).

    ``cap``: at most this many such interactions count per ``period`` (a calendar bucket of
    UTC days, 7-day weeks or 30-day months since 1970); the others are shown as over the cap."""

    kind: str
    points: Points
    channel: str | None = None
    cap: Annotated[int, Meta(ge=1)] | None = None
    period: Literal["day", "week", "month"] = "day"

    def __post_init__(self) -> None:
        if not NAME.match(self.kind):
            raise ValueError(f"kind must be lower_snake_case, not {self.kind!r}")
        if self.channel is not None and not NAME.match(self.channel):
            raise ValueError(f"channel must be lower_snake_case, not {self.channel!r}")

    @property
    def key(self) -> str:
        return f"{self.kind}@{self.channel or '*'}"


def _default_engagement_rules() -> list[EngagementRule]:
    return [
        EngagementRule(kind="message_in", points=5, cap=5),
        EngagementRule(kind="comment", points=3, cap=5),
        EngagementRule(kind="follow", points=5),
        EngagementRule(kind="scan", points=5, cap=3),
        EngagementRule(kind="email_open", points=1, cap=3),
        EngagementRule(kind="click", points=3, cap=5),
        EngagementRule(kind="form", points=15),
        EngagementRule(kind="call", points=8, cap=2),
        EngagementRule(kind="visit", points=10, cap=1),
        EngagementRule(kind="meeting", points=15, cap=1),
        EngagementRule(kind="unfollow", points=-10),
        EngagementRule(kind="contact_removed", points=-25),
        EngagementRule(kind="unsubscribe", points=-20),
        EngagementRule(kind="complaint", points=-30),
    ]


class Engagement(_Section, frozen=True, kw_only=True):
    """Points per interaction, decayed exponentially: an interaction ``half_life_days`` old
    counts half. The first rule that matches an interaction (kind, then channel) applies."""

    half_life_days: Positive = 30.0
    rules: list[EngagementRule] = msgspec.field(default_factory=_default_engagement_rules)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.key in seen:
                raise ValueError(f"rules[{i}] repeats the rule for {rule.key}")
            seen.add(rule.key)


class AttributeRule(_Section, frozen=True, kw_only=True):
    """Points when the customer's attribute ``key`` equals ``equals`` (or is set at all, when
    ``equals`` is omitted)."""

    key: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    points: Points
    equals: str | None = None


COMPLETENESS_FIELDS = ("company", "phones", "emails", "source")


class ProfileFit(_Section, frozen=True, kw_only=True):
    """Points for a complete profile (per filled field) and for configured attribute values."""

    completeness: dict[str, Points] = msgspec.field(default_factory=lambda: {"company": 5.0, "phones": 5.0, "emails": 5.0})
    attributes: list[AttributeRule] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in self.completeness:
            if name not in COMPLETENESS_FIELDS:
                raise ValueError(f"completeness has unknown field {name!r} (fields: {', '.join(COMPLETENESS_FIELDS)})")


class Social(_Section, frozen=True, kw_only=True):
    """Social value from channel identities: ``points_per_decade`` × log10(1 + followers) per
    identity (at most ``max_points_per_identity``), plus ``engagement_points`` × the identity
    profile's ``engagement_key`` value (an engagement rate, clamped to 0..1)."""

    points_per_decade: Annotated[float, Meta(ge=0)] = 5.0
    max_points_per_identity: Annotated[float, Meta(ge=0)] = 30.0
    engagement_key: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")] = "engagement_rate"
    engagement_points: Annotated[float, Meta(ge=0)] = 20.0


class Purchase(_Section, frozen=True, kw_only=True):
    """Recency, frequency and monetary value of money received: interactions of ``kinds``
    (``purchase`` and ``payment``: a contract's payment recorded by the sales plugin, or one sent
    through the API). The amount is read from the payload's first key of ``amount_keys`` that
    holds a number; a negative amount (a refund) lowers the money spent but is not a purchase."""

    recency_points: Annotated[float, Meta(ge=0)] = 20.0
    recency_half_life_days: Positive = 90.0
    frequency_points: Annotated[float, Meta(ge=0)] = 5.0
    frequency_cap: Annotated[int, Meta(ge=0)] = 10
    monetary_points_per_decade: Annotated[float, Meta(ge=0)] = 10.0
    amount_keys: list[Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]+$")]] = msgspec.field(
        default_factory=lambda: ["amount", "total", "value"]
    )
    kinds: list[Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]] = msgspec.field(default_factory=lambda: ["purchase", "payment"])

    def __post_init__(self) -> None:
        if not self.amount_keys:
            raise ValueError("amount_keys must name at least one payload key")
        if not self.kinds:
            raise ValueError("kinds must name at least one interaction kind")


class StageRule(_Section, frozen=True, kw_only=True):
    """Move a customer in stage ``from_stage`` to ``to_stage`` once the score is at least
    ``min_score``. The StageChange records the rule (``scoring.stage_rules[i]``) and the reason."""

    from_stage: str
    to_stage: str
    min_score: Points

    def __post_init__(self) -> None:
        for name in ("from_stage", "to_stage"):
            if not NAME.match(getattr(self, name)):
                raise ValueError(f"{name} must be a stage key (lower_snake_case), not {getattr(self, name)!r}")
        if self.from_stage == self.to_stage:
            raise ValueError("from_stage and to_stage are the same stage")


def _default_stage_rules() -> list[StageRule]:
    return [StageRule(from_stage="lead", to_stage="mql", min_score=50), StageRule(from_stage="mql", to_stage="sql", min_score=80)]


class Assignment(_Section, frozen=True, kw_only=True):
    """Who gets a lead moved by a stage rule when it has no owner (through ``guanxi_assign_owner``;
    the scoring plugin's own answer is ``strategy`` among active users with one of ``roles``), and
    the follow-up task created for the owner."""

    strategy: Literal["round_robin", "least_loaded"] = "least_loaded"
    roles: list[str] = msgspec.field(default_factory=lambda: ["sales"])
    task_title: Annotated[str, Meta(min_length=1, max_length=200)] = "Follow up: reached {stage} with score {score}"
    task_due_hours: Annotated[float, Meta(ge=0)] = 24.0

    def __post_init__(self) -> None:
        if not self.roles:
            raise ValueError("roles must name at least one role")
        try:
            self.task_title.format(stage="x", score=1.0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"task_title may only use {{stage}} and {{score}}: {exc}") from None


class Queue(_Section, frozen=True, kw_only=True):
    """Weights of the priority queue's rank: score + points for a recent inbound touch
    (decayed with ``touch_half_life_hours``) + points per due or overdue task + points per
    stage position beyond the first."""

    touch_points: Annotated[float, Meta(ge=0)] = 30.0
    touch_half_life_hours: Positive = 48.0
    task_points: Annotated[float, Meta(ge=0)] = 20.0
    stage_points: Annotated[float, Meta(ge=0)] = 5.0


class ScoringSettings(_Section, frozen=True, kw_only=True):
    engagement: Engagement = msgspec.field(default_factory=Engagement)
    profile: ProfileFit = msgspec.field(default_factory=ProfileFit)
    social: Social = msgspec.field(default_factory=Social)
    purchase: Purchase = msgspec.field(default_factory=Purchase)
    stage_rules: list[StageRule] = msgspec.field(default_factory=_default_stage_rules)
    assignment: Assignment = msgspec.field(default_factory=Assignment)
    queue: Queue = msgspec.field(default_factory=Queue)
    batch_size: Annotated[int, Meta(ge=1, le=100_000)] = 2_000
    history_limit: Annotated[int, Meta(ge=1)] = 100
    history_min_change: Annotated[float, Meta(ge=0)] = 1.0

    def __post_init__(self) -> None:
        froms: set[str] = set()
        for i, rule in enumerate(self.stage_rules):
            if rule.from_stage in froms:
                raise ValueError(f"stage_rules[{i}]: a second rule from stage {rule.from_stage!r}")
            froms.add(rule.from_stage)


class ScoringTenantSettings(_Section, frozen=True, kw_only=True):
    """The scoring settings a tenant may override (``guanxi_tenant_settings``): its weights,
    decay, rules and hand-over; not ``batch_size``, which is the deployment's load concern."""

    engagement: Engagement = msgspec.field(default_factory=Engagement)
    profile: ProfileFit = msgspec.field(default_factory=ProfileFit)
    social: Social = msgspec.field(default_factory=Social)
    purchase: Purchase = msgspec.field(default_factory=Purchase)
    stage_rules: list[StageRule] = msgspec.field(default_factory=_default_stage_rules)
    assignment: Assignment = msgspec.field(default_factory=Assignment)
    queue: Queue = msgspec.field(default_factory=Queue)
    history_limit: Annotated[int, Meta(ge=1)] = 100
    history_min_change: Annotated[float, Meta(ge=0)] = 1.0
