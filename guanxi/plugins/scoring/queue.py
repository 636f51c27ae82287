"""The sales priority queue (智能排序): a salesperson's customers ranked by score, the recency of
their last inbound touch, due or overdue tasks and stage, in one SQL statement."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from sqlalchemy import Float, and_, case, func, literal, select

from guanxi.core.domain.models import Customer, Interaction, Stage, Task
from guanxi.core.services.queries import CUSTOMER_COLUMNS
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.scoring.models import ScoringScore
from guanxi.plugins.scoring.settings import ScoringSettings
from guanxi.plugins.scoring.sql import Dialect, epoch_seconds

#: Stage categories that leave the queue: nothing to follow up.
CLOSED = ("lost", "churned")


class Ranked(msgspec.Struct, kw_only=True):
    row: Any  # a row of CUSTOMER_COLUMNS
    rank: float
    score: float
    reasons: list[str]


def queue_statement(dialect: str, user_id: uuid.UUID, settings: ScoringSettings, now: dt.datetime, first: int) -> Any:
    d = Dialect(dialect)
    cfg = settings.queue
    c, s, i, t, st = Customer, ScoringScore, Interaction, Task, Stage
    last_in = (
        select(func.max(i.occurred_at)).where(i.tenant_id == c.tenant_id, i.customer_id == c.id, i.direction == "in").scalar_subquery()
    )
    due = (
        select(func.count())
        .where(t.tenant_id == c.tenant_id, t.customer_id == c.id, t.done_at.is_(None), t.due_at.is_not(None), t.due_at <= now)
        .scalar_subquery()
    )
    score = func.coalesce(s.total, literal(0.0, Float))
    age = literal(epoch_seconds(now), Float) - d.epoch(last_in)
    # CASE, not coalesce: PostgreSQL's greatest() skips NULLs where SQLite's max() returns NULL
    decayed = literal(cfg.touch_points, Float) * d.decay(d.greatest(age, literal(0.0, Float)), cfg.touch_half_life_hours * 3600.0)
    touch = case((last_in.is_(None), literal(0.0, Float)), else_=decayed)
    position = func.coalesce(st.position, 0)
    rank = score + touch + literal(cfg.task_points, Float) * due + literal(cfg.stage_points, Float) * position
    inner = (
        select(
            *CUSTOMER_COLUMNS,
            score.label("score"),
            last_in.label("last_in"),
            touch.label("touch"),
            due.label("due"),
            st.key.label("stage_key"),
            position.label("position"),
        )
        .select_from(c)
        .outerjoin(s, and_(s.tenant_id == c.tenant_id, s.customer_id == c.id))
        .outerjoin(st, and_(st.tenant_id == c.tenant_id, st.id == c.stage_id))
        .where(c.owner_id == user_id, c.merged_into_id.is_(None), func.coalesce(st.category, "open").not_in(CLOSED))
        .add_columns(rank.label("rank"))
        .order_by(rank.desc(), c.id)
        .limit(first)
    )
    return inner


async def priority_queue(session: TenantSession, user_id: uuid.UUID, settings: ScoringSettings, first: int) -> list[Ranked]:
    from guanxi.plugins.scoring.recompute import clock

    now = clock()
    dialect = (await session.connection()).dialect.name
    rows = (await session.execute(queue_statement(dialect, user_id, settings, now, first))).all()
    cfg = settings.queue
    out = []
    for r in rows:
        reasons = [f"score {r.score:.1f}"]
        if r.last_in is not None:
            hours = max((now - r.last_in).total_seconds(), 0) / 3600
            ago = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
            reasons.append(f"last inbound touch {ago} ago: +{r.touch:.1f}")
        else:
            reasons.append("no inbound touch yet")
        if r.due:
            reasons.append(f"{r.due} task{'s' if r.due > 1 else ''} due or overdue: +{cfg.task_points * r.due:.1f}")
        if r.stage_key is not None:
            reasons.append(f"stage {r.stage_key}: +{cfg.stage_points * r.position:.1f}")
        out.append(Ranked(row=r, rank=float(r.rank), score=float(r.score), reasons=reasons))
    return out
