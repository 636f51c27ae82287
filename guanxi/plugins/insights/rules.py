"""Tag rules (标签规则): keyword rules over inbound texts and behaviour rules over interactions.

A rule is tenant data (``insights_tag_rules``). It gives its tag with itself as the reason
(``insights_rule_tags``: which rule, why, since when), and, when ``remove_when_false`` is set,
takes it away once the rule no longer holds; a tag that several rules gave stays while one of
them holds, and a tag someone set by hand is never taken by a rule.

* **Keyword rules** match as words of the text's segmentation (jieba, with every rule's keywords
  added to its user dictionary, so a product name is one word); an English phrase with a space
  matches as a phrase. Each hit is kept (``insights_keyword_hits``): the evidence of the tag, and
  the customer's interests in the profile. The tag is given in the transaction that scores the
  text.
* **Behaviour rules** (``at_least``: N or more matching interactions in the last D days;
  ``none_for``: none in the last D days) and the windows of keyword rules are evaluated set-based,
  one SQL statement per rule for who holds it, by the scheduled job ``insights.tag_rules``
  (hourly, scheduled when a rule is saved) or ``runInsightsTagRules``; only the changes are then
  applied, through core's tag service (audited, ``guanxi_tags_changed``), in batches.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Select, and_, delete, exists, func, select

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.events import InteractionRecorded
from guanxi.core.domain.models import Customer, Interaction, utcnow
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.interactions import DIRECTIONS
from guanxi.core.services.schedule import schedule_job
from guanxi.core.services.tags import change_tags, split_tag
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.insights.actor import RULE_ACTOR
from guanxi.plugins.insights.models import InsightsKeywordHit, InsightsRuleTag, InsightsTagRule
from guanxi.plugins.insights.sentiment import add_words, has_segmenter, tokens

KINDS = ("keyword", "at_least", "none_for")
JOB = "insights.tag_rules"
CRON = "17 * * * *"  # hourly, off the hour
BATCH = 500
MAX_KEYWORDS = 200
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_HAN = re.compile(r"[\u3400-\u9fff]")


class RuleInput(msgspec.Struct, kw_only=True):
    key: str
    tag: str
    kind: str
    keywords: list[str] = msgspec.field(default_factory=list)
    interaction_kind: str | None = None
    channel: str | None = None
    direction: str | None = None
    min_count: int = 1
    window_days: int | None = None
    remove_when_false: bool = False
    enabled: bool = True
    score_points: float = 0.0


class RunResult(msgspec.Struct, kw_only=True):
    """What one evaluation changed: tags given and taken, over all rules."""

    added: int = 0
    removed: int = 0


def _check(data: RuleInput) -> RuleInput:
    if not _KEY.match(data.key):
        raise ValidationError("key must be lower case: a letter, then letters, digits, _ or -, at most 64", field="key")
    group, name = split_tag(data.tag)
    tag = f"{group}/{name}" if group else name
    if data.kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if data.direction is not None and data.direction not in DIRECTIONS:
        raise ValidationError(f"direction must be one of {', '.join(DIRECTIONS)}", field="direction")
    if data.window_days is not None and not 1 <= data.window_days <= 3650:
        raise ValidationError("windowDays must be 1 to 3650", field="windowDays")
    keywords = list(dict.fromkeys(k.strip() for k in data.keywords if k.strip()))
    if data.kind == "keyword":
        if not keywords:
            raise ValidationError("a keyword rule needs at least one keyword", field="keywords")
        if len(keywords) > MAX_KEYWORDS or any(len(k) > 50 for k in keywords):
            raise ValidationError(f"at most {MAX_KEYWORDS} keywords, each at most 50 characters", field="keywords")
        if data.interaction_kind or data.channel or data.direction:
            raise ValidationError("a keyword rule reads inbound texts: interactionKind, channel and direction do not apply", field="kind")
    else:
        if keywords:
            raise ValidationError(f"keywords apply to keyword rules, not {data.kind}", field="keywords")
        if data.window_days is None:
            raise ValidationError(f"a {data.kind} rule needs windowDays", field="windowDays")
        if data.kind == "at_least" and not 1 <= data.min_count <= 100_000:
            raise ValidationError("minCount must be 1 to 100000", field="minCount")
    if not -1000 <= data.score_points <= 1000 or data.score_points != data.score_points:
        raise ValidationError("scorePoints must be -1000 to 1000", field="scorePoints")
    for name_, value in (("interactionKind", data.interaction_kind), ("channel", data.channel)):
        if value is not None and not 1 <= len(value) <= 32:
            raise ValidationError(f"{name_} must be 1 to 32 characters", field=name_)
    return msgspec.structs.replace(data, tag=tag, keywords=keywords, min_count=data.min_count if data.kind == "at_least" else 1)


async def save_rule(tx: Tx, data: RuleInput) -> InsightsTagRule:
    """Create the rule ``data.key`` or change it; schedules the hourly evaluation job."""
    data = _check(data)
    session = tx.session
    rule = (await session.execute(select(InsightsTagRule).where(InsightsTagRule.key == data.key))).scalar_one_or_none()
    created = rule is None
    if rule is None:
        rule = InsightsTagRule(key=data.key, created_at=utcnow())
        session.add(rule)
    elif rule.tag != data.tag:
        # the rule's past tags keep the old label; its reasons go with the rule's new meaning
        await session.execute(
            delete(InsightsRuleTag).where(InsightsRuleTag.rule_id == rule.id).execution_options(synchronize_session=False)
        )
    for name in (
        "tag",
        "kind",
        "keywords",
        "interaction_kind",
        "channel",
        "direction",
        "min_count",
        "window_days",
        "remove_when_false",
        "score_points",
    ):
        setattr(rule, name, getattr(data, name))
    rule.enabled = data.enabled
    rule.updated_at = utcnow()
    await session.flush()
    await schedule_job(tx, JOB, JOB, cron=CRON)
    add_words(rule.keywords)
    audit(tx, "insights.rule.create" if created else "insights.rule.update", "insightsTagRule", rule.id, msgspec.to_builtins(data))
    return rule


async def delete_rule(tx: Tx, key: str) -> None:
    """Delete a rule with its hits and reasons; the tags it gave stay (remove them by hand, or
    disable the rule with ``removeWhenFalse`` first)."""
    session = tx.session
    rule = (await session.execute(select(InsightsTagRule).where(InsightsTagRule.key == key))).scalar_one_or_none()
    if rule is None:
        raise NotFoundError(f"no tag rule {key!r}", field="key")
    for table in (InsightsKeywordHit, InsightsRuleTag):
        await session.execute(delete(table).where(table.rule_id == rule.id).execution_options(synchronize_session=False))
    await session.delete(rule)
    audit(tx, "insights.rule.delete", "insightsTagRule", rule.id, {"key": key})


async def list_rules(session: TenantSession) -> list[InsightsTagRule]:
    return list((await session.scalars(select(InsightsTagRule).order_by(InsightsTagRule.key))).all())


# -- keyword rules, as a text arrives ---------------------------------------------------------


def keyword_hits(rule_keywords: Sequence[str], text: str) -> list[str]:
    """The keywords found in the text: as words of its segmentation (a phrase with a space, or
    any keyword when no segmenter is installed, as a substring), case ignored."""
    lowered = text.lower()
    words = set(tokens(text))
    found = []
    for keyword in rule_keywords:
        k = keyword.lower()
        if k in words or ((" " in k or (_HAN.search(k) and not has_segmenter())) and k in lowered):
            found.append(keyword)
    return found


def _reason_keyword(hits: list[str], channel: str) -> str:
    return f"keyword {', '.join(hits)} on {channel}"[:300]


async def match_keywords(tx: Tx, event: InteractionRecorded, text: str) -> list[str]:
    """Record the keyword hits of an inbound text and give the rules' tags; returns the tags given."""
    session = tx.session
    rules = (
        await session.scalars(select(InsightsTagRule).where(InsightsTagRule.kind == "keyword", InsightsTagRule.enabled.is_(True)))
    ).all()
    if not rules:
        return []
    for rule in rules:
        add_words(rule.keywords)
    given: list[str] = []
    for rule in rules:
        hits = keyword_hits(rule.keywords, text)
        if not hits:
            continue
        for keyword in hits:
            session.add(
                InsightsKeywordHit(
                    interaction_id=event.interaction_id,
                    rule_id=rule.id,
                    keyword=keyword,
                    customer_id=event.customer_id,
                    channel=event.channel,
                    occurred_at=event.occurred_at,
                )
            )
        await session.flush()
        if await _give(tx, event.customer_id, rule, _reason_keyword(hits, event.channel)):
            given.append(rule.tag)
    return given


# -- set-based evaluation ----------------------------------------------------------------------


def _interactions(rule: InsightsTagRule, since: dt.datetime) -> list[object]:
    i = Interaction
    conditions: list[object] = [i.occurred_at >= since]
    if rule.interaction_kind:
        conditions.append(i.kind == rule.interaction_kind)
    if rule.channel:
        conditions.append(i.channel == rule.channel)
    if rule.direction:
        conditions.append(i.direction == rule.direction)
    return conditions


def holders(rule: InsightsTagRule, now: dt.datetime) -> Select[Any]:
    """One statement: the ids of the customers for whom the rule holds at ``now``."""
    since = now - dt.timedelta(days=rule.window_days or 0)
    if rule.kind == "keyword":
        h = InsightsKeywordHit
        stmt = select(h.customer_id).where(h.rule_id == rule.id)
        if rule.window_days:
            stmt = stmt.where(h.occurred_at >= since)
        return stmt.distinct()
    if rule.kind == "at_least":
        i = Interaction
        return select(i.customer_id).where(and_(*_interactions(rule, since))).group_by(i.customer_id).having(func.count() >= rule.min_count)  # type: ignore[arg-type]
    i, c = Interaction, Customer
    touched = exists().where(i.customer_id == c.id, *_interactions(rule, since))  # type: ignore[arg-type]
    return select(c.id).where(c.merged_into_id.is_(None), c.erased_at.is_(None), c.created_at < since, ~touched)


def _reason(rule: InsightsTagRule) -> str:
    what = " ".join(p for p in (rule.direction, rule.channel, rule.interaction_kind) if p) or "any"
    if rule.kind == "at_least":
        return f"rule {rule.key}: {rule.min_count}+ {what} interactions in {rule.window_days} days"
    if rule.kind == "none_for":
        return f"rule {rule.key}: no {what} interaction for {rule.window_days} days"
    return f"rule {rule.key}: keywords {', '.join(rule.keywords)}"[:300]


async def _give(tx: Tx, customer_id: uuid.UUID, rule: InsightsTagRule, reason: str) -> bool:
    """The rule's tag for the customer, with the rule as its reason; false if the rule gave it already."""
    session = tx.session
    if await session.get(InsightsRuleTag, (tx.tenant_id, customer_id, rule.id)) is not None:
        return False
    session.add(InsightsRuleTag(customer_id=customer_id, rule_id=rule.id, tag=rule.tag, reason=reason, since=utcnow()))
    await change_tags(tx, customer_id, add=[rule.tag])
    return True


async def _take(tx: Tx, customer_id: uuid.UUID, rule: InsightsTagRule) -> bool:
    """Drop the rule's reason; the tag goes when no other rule holds it for the customer and
    nobody set it by hand (a tag with no rule reason was set by someone)."""
    session = tx.session
    row = await session.get(InsightsRuleTag, (tx.tenant_id, customer_id, rule.id))
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    others = (
        await session.execute(
            select(InsightsRuleTag.rule_id).where(InsightsRuleTag.customer_id == customer_id, InsightsRuleTag.tag == row.tag)
        )
    ).first()
    if others is None:
        await change_tags(tx, customer_id, remove=[row.tag])
    return True


async def evaluate(runtime: Runtime, tenant_id: uuid.UUID, now: dt.datetime | None = None) -> RunResult:
    """Give and take every enabled rule's tag as the rule holds at ``now``; changes are applied in
    transactions of at most 500 customers."""
    now = now or utcnow()
    result = RunResult()
    ctx = RequestContext(tenant_id=tenant_id, actor=RULE_ACTOR)
    async with runtime.session(tenant_id) as session:
        rules = (
            await session.scalars(select(InsightsTagRule).where(InsightsTagRule.enabled.is_(True)).order_by(InsightsTagRule.key))
        ).all()
    for rule in rules:
        held = holders(rule, now).subquery()
        r = InsightsRuleTag
        alive = select(Customer.id).where(Customer.merged_into_id.is_(None), Customer.erased_at.is_(None))
        new = select(held.c[0]).where(held.c[0].in_(alive), ~exists().where(r.customer_id == held.c[0], r.rule_id == rule.id))
        gone = select(r.customer_id).where(r.rule_id == rule.id, r.customer_id.not_in(select(held.c[0])))
        async with runtime.session(tenant_id) as session:
            to_give = list((await session.execute(new)).scalars())
            to_take = list((await session.execute(gone)).scalars()) if rule.remove_when_false else []
        reason = _reason(rule)
        for start in range(0, len(to_give), BATCH):
            async with runtime.transaction(ctx) as tx:
                for cid in to_give[start : start + BATCH]:
                    result.added += await _give(tx, cid, rule, reason)
        for start in range(0, len(to_take), BATCH):
            async with runtime.transaction(ctx) as tx:
                for cid in to_take[start : start + BATCH]:
                    result.removed += await _take(tx, cid, rule)
    return result
