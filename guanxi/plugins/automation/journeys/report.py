"""A journey's figures: entered, where runs are (at each step, waiting), how they ended
(converted, exited, done, failed), what each step did, by channel, and by day. A fixed number of
grouped SQL statements, whatever the number of runs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from sqlalchemy import case, func, select

from guanxi.core.storage.localtime import local_date
from guanxi.plugins.automation.journeys.models import AutomationJourneyRun, AutomationJourneyStep


class StepFigures(msgspec.Struct, kw_only=True):
    step: str
    step_type: str
    #: runs at the step now (waiting there or being advanced)
    current: int = 0
    #: outcome → how many times the step ended that way (sent, skipped, yes, no, waited …)
    outcomes: dict[str, int] = {}


class ChannelFigures(msgspec.Struct, kw_only=True):
    channel: str
    sent: int = 0
    skipped: int = 0


class DayFigures(msgspec.Struct, kw_only=True):
    day: dt.date
    entered: int = 0
    steps: int = 0
    converted: int = 0


class JourneyReport(msgspec.Struct, kw_only=True):
    entered: int
    waiting: int
    converted: int
    exited: int
    done: int
    failed: int
    steps: list[StepFigures]
    channels: list[ChannelFigures]
    days: list[DayFigures]


async def journey_report(
    session: Any, journey_id: uuid.UUID, step_types: dict[str, str], *, version: int | None = None, zone: str = "UTC"
) -> JourneyReport:
    """Figures of one journey (all versions, or one); ``step_types`` orders the steps (the
    current definition's ids and types; steps of older versions follow)."""
    R, S = AutomationJourneyRun, AutomationJourneyStep  # noqa: N806 - short names keep the grouped selects readable
    run_scope = [R.journey_id == journey_id] + ([R.version == version] if version is not None else [])
    step_scope = [S.journey_id == journey_id] + ([S.version == version] if version is not None else [])
    by_status = dict((await session.execute(select(R.status, func.count()).where(*run_scope).group_by(R.status))).all())
    at_step = (
        await session.execute(select(R.step, func.count()).where(*run_scope, R.status.in_(("waiting", "running"))).group_by(R.step))
    ).all()
    outcomes = (
        await session.execute(
            select(S.step, S.step_type, S.outcome, func.count()).where(*step_scope).group_by(S.step, S.step_type, S.outcome)
        )
    ).all()
    channels = (
        await session.execute(
            select(S.channel, S.outcome, func.count()).where(*step_scope, S.channel.is_not(None)).group_by(S.channel, S.outcome)
        )
    ).all()
    entered_day = local_date(R.entered_at, zone, _dialect(session))
    step_day = local_date(S.at, zone, _dialect(session))
    entered_by_day = (await session.execute(select(entered_day, func.count()).where(*run_scope).group_by(entered_day))).all()
    steps_by_day = (
        await session.execute(
            select(step_day, func.count(), func.sum(case((S.outcome == "converted", 1), else_=0))).where(*step_scope).group_by(step_day)
        )
    ).all()

    figures: dict[str, StepFigures] = {sid: StepFigures(step=sid, step_type=kind, outcomes={}) for sid, kind in step_types.items()}
    for sid, kind, outcome, n in outcomes:
        if kind == "goal":
            continue
        fig = figures.setdefault(sid, StepFigures(step=sid, step_type=kind, outcomes={}))
        fig.outcomes[outcome] = int(n)
    for sid, n in at_step:
        if sid is not None:
            figures.setdefault(sid, StepFigures(step=sid, step_type=step_types.get(sid, "?"), outcomes={})).current = int(n)
    by_channel: dict[str, ChannelFigures] = {}
    for channel, outcome, n in channels:
        per_channel = by_channel.setdefault(channel, ChannelFigures(channel=channel))
        if outcome == "sent":
            per_channel.sent += int(n)
        elif outcome == "skipped":
            per_channel.skipped += int(n)
    days: dict[dt.date, DayFigures] = {}
    for day, n in entered_by_day:
        d = _day(day)
        days.setdefault(d, DayFigures(day=d)).entered = int(n)
    for day, n, conv in steps_by_day:
        d = _day(day)
        per_day = days.setdefault(d, DayFigures(day=d))
        per_day.steps, per_day.converted = int(n), int(conv or 0)
    in_flight = int(by_status.get("waiting", 0)) + int(by_status.get("running", 0))
    return JourneyReport(
        entered=sum(int(n) for n in by_status.values()),
        waiting=in_flight,
        converted=int(by_status.get("converted", 0)),
        exited=int(by_status.get("exited", 0)),
        done=int(by_status.get("done", 0)),
        failed=int(by_status.get("failed", 0)),
        steps=list(figures.values()),
        channels=sorted(by_channel.values(), key=lambda c: c.channel),
        days=[days[d] for d in sorted(days)],
    )


def _dialect(session: Any) -> str:
    return str(session.get_bind().dialect.name)


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
