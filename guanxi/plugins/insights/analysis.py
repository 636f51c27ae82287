"""Sentiment of inbound texts and the alerts they raise, after the interaction committed.

One transaction per inbound text: the score goes into ``insights_sentiments`` (idempotent on the
interaction), and a text at or below the alert threshold, or containing an alert keyword, creates
a task for the customer's owner (or, for an unowned customer, for the service-role user with the
fewest open tasks: the team queue) and a staff notification quoting the message.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid

from sqlalchemy import func, select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.events import InteractionRecorded
from guanxi.core.domain.models import Customer, Task, User
from guanxi.core.hooks import manager as plugins
from guanxi.core.realtime.broker import MAX_TEXT, Envelope
from guanxi.core.realtime.publisher import broker_of
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services.notifications import NotificationInput, notify
from guanxi.core.services.tasks import TaskInput, create_task
from guanxi.plugins.insights.actor import RULE_ACTOR
from guanxi.plugins.insights.models import InsightsSentiment
from guanxi.plugins.insights.rules import match_keywords
from guanxi.plugins.insights.sentiment import Sentiment, label, language, score_text
from guanxi.plugins.insights.settings import InsightsSettings

log = logging.getLogger(__name__)

NAME = "insights"
QUOTE = 500
#: The broker topic of the ``alertRaised`` subscription.
ALERT_TOPIC = "insights.alert_raised"


async def sentiment_of(runtime: Runtime, text: str) -> Sentiment:
    """Another plugin's model (``guanxi_insights_sentiment``) if one answers, else the lexicon's."""
    lang = language(text)
    hook = getattr(runtime.pm.hook, "guanxi_insights_sentiment", None)
    if hook is not None and hook.get_hookimpls():
        answer = await plugins.call_first(hook, text=text, language=lang)
        if answer is not None:
            try:
                score, model = answer
                score = float(score)
                if not (-1 <= score <= 1) or math.isnan(score) or not isinstance(model, str) or not 0 < len(model) <= 64:
                    raise ValueError
            except (TypeError, ValueError):
                log.warning("guanxi_insights_sentiment answered %r, not (score in [-1, 1], model name); using the lexicon", answer)
            else:
                return Sentiment(score=score, label=label(score), language=lang, model=model)
    return score_text(text)


def alert_reason(settings: InsightsSettings, text: str, sentiment: Sentiment) -> str | None:
    """Why this text raises an alert (a keyword, or a score at or below the threshold), or None."""
    if not settings.alerts:
        return None
    lowered = text.lower()
    for keyword in settings.alert_keywords:
        if keyword.lower() in lowered:
            return f"keyword {keyword}"
    if sentiment.score <= settings.alert_threshold:
        return f"sentiment {sentiment.score:+.2f} <= {settings.alert_threshold:+.2f}"
    return None


async def service_user(tx: Tx) -> uuid.UUID | None:
    """The team queue: the active service-role user with the fewest open tasks (then the oldest
    id, so the choice is stable)."""
    open_tasks = select(func.count(Task.id)).where(Task.assignee_id == User.id, Task.done_at.is_(None)).correlate(User).scalar_subquery()
    query = select(User.id).where(User.role == "service", User.active.is_(True)).order_by(open_tasks, User.id).limit(1)
    return (await tx.session.execute(query)).scalar_one_or_none()


async def _raise_alert(tx: Tx, settings: InsightsSettings, event: InteractionRecorded, text: str, reason: str) -> Task | None:
    customer = await tx.session.get(Customer, (tx.tenant_id, event.customer_id))
    if customer is None or customer.merged_into_id is not None:
        return None
    assignee = customer.owner_id or await service_user(tx)
    quote = text if len(text) <= QUOTE else text[: QUOTE - 1] + "…"
    name = customer.display_name or str(customer.id)
    title = f"Unhappy customer {name} on {event.channel}"
    task = await create_task(
        tx,
        TaskInput(
            customer_id=customer.id,
            title=title[:300],
            assignee_id=assignee,
            due_at=event.occurred_at + dt.timedelta(hours=settings.alert_due_hours),
            notes=f"「{quote}」\n({reason})",
        ),
    )
    if assignee is not None:
        await notify(
            tx,
            NotificationInput(
                user_id=assignee,
                kind="insights.alert",
                title=title,
                body=f"「{quote}」\n{reason}",
                dedupe_key=f"insights.alert:{event.interaction_id}",
                link_type="task",
                link_id=task.id,
            ),
        )
    return task


async def analyse(runtime: Runtime, event: InteractionRecorded) -> InsightsSentiment | None:
    """Score an inbound text and raise its alert; nothing for outbound or text-less interactions,
    or one already scored."""
    text = (event.text or "").strip()
    if event.direction != "in" or not text:
        return None
    sentiment = await sentiment_of(runtime, text)
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=RULE_ACTOR)) as tx:
        settings: InsightsSettings = runtime.plugin_settings(NAME, tx.tenant_id)  # with the tenant's overrides
        if await tx.session.get(InsightsSentiment, (tx.tenant_id, event.interaction_id)) is not None:
            return None
        reason = alert_reason(settings, text, sentiment)
        row = InsightsSentiment(
            tenant_id=tx.tenant_id,
            interaction_id=event.interaction_id,
            customer_id=event.customer_id,
            channel=event.channel,
            occurred_at=event.occurred_at,
            score=sentiment.score,
            label=sentiment.label,
            language=sentiment.language,
            model=sentiment.model,
            alert=reason,
        )
        tx.session.add(row)
        await tx.session.flush()
        await match_keywords(tx, event, text)
        task = await _raise_alert(tx, settings, event, text, reason) if reason is not None else None
    if reason is not None:
        await _publish(runtime, event, row, text, task)
    return row


async def _publish(runtime: Runtime, event: InteractionRecorded, row: InsightsSentiment, text: str, task: Task | None) -> None:
    """The ``alertRaised`` subscription's event, once the alert committed."""
    data = {
        "customer_id": str(event.customer_id),
        "interaction_id": str(event.interaction_id),
        "channel": event.channel,
        "occurred_at": event.occurred_at.isoformat(),
        "text": text[:MAX_TEXT],
        "score": row.score,
        "label": row.label,
        "reason": row.alert,
        "task_id": str(task.id) if task else None,
        "assignee_id": str(task.assignee_id) if task and task.assignee_id else None,
    }
    await broker_of(runtime).publish(Envelope(ALERT_TOPIC, event.tenant_id, data))
