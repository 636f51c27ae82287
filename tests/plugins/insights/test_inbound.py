"""Every inbound text is scored after its interaction commits; negative texts and complaint
keywords raise an alert: a task for the owner (or the service team) and a notification quoting
the message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from guanxi import hookimpl
from guanxi.core.domain.models import Customer, Notification, Task
from guanxi.core.runtime import Runtime
from tests.plugins.insights.conftest import Inbox

pytestmark = pytest.mark.plugins("insights")


async def rows(runtime: Runtime, tenant_id: uuid.UUID, model: Any) -> list[Any]:
    async with runtime.session(tenant_id) as s:
        return list((await s.execute(select(model))).scalars())


async def test_each_inbound_text_gets_one_score_and_outbound_or_empty_ones_none(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    box = Inbox(runtime, tenant_id)
    await box.say("非常满意，五星好评👍")
    await box.say("Please send me the invoice.")
    await box.say("好的，我们明天发货", direction="out")
    await box.say(None)
    scores = await box.scores()
    assert [(s.label, s.language, s.model) for s in scores] == [("pos", "zh", "lexicon-1"), ("neu", "en", "lexicon-1")]
    assert scores[0].score > 0.2 and scores[0].alert is None


async def test_a_complaint_from_an_owned_customer_makes_a_task_and_a_notification_for_the_owner(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    box = Inbox(runtime, tenant_id)
    owner = await box.user("sales", "wang@example.com")
    await box.say("你好")
    async with runtime.session(tenant_id) as s, s.begin():
        await s.execute(update(Customer).values(owner_id=owner))
    await box.say("东西坏了，我要投诉，申请退款")
    [score] = [s for s in await box.scores() if s.alert]
    assert score.alert == "keyword 投诉" and score.label == "neg"
    [task] = await rows(runtime, tenant_id, Task)
    assert task.assignee_id == owner and task.customer_id == score.customer_id
    assert "「东西坏了，我要投诉，申请退款」" in (task.notes or "")
    [note] = await rows(runtime, tenant_id, Notification)
    assert note.user_id == owner and note.kind == "insights.alert" and note.link_id == task.id
    assert "东西坏了，我要投诉，申请退款" in (note.body or "")


async def test_an_unowned_customers_negative_message_goes_to_the_least_loaded_service_user(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    box = Inbox(runtime, tenant_id)
    await box.user("sales", "sales@example.com")
    first = await box.user("service", "a@example.com")
    second = await box.user("service", "b@example.com")
    await box.say("Worst purchase ever, so frustrating 😡", who="a")
    await box.say("Terrible support, rude staff 😡", who="b")
    tasks = await rows(runtime, tenant_id, Task)
    assert sorted(t.assignee_id for t in tasks) == sorted([first, second])  # one each: the team queue
    assert all(s.alert and s.alert.startswith("sentiment") for s in await box.scores())


async def test_a_neutral_or_happy_message_raises_no_alert(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    box = Inbox(runtime, tenant_id)
    await box.user("service", "a@example.com")
    await box.say("请问什么时候发货？")
    await box.say("Love it, works perfectly!")
    assert await rows(runtime, tenant_id, Task) == []


class BetterModel:
    """Another plugin's sentiment model, through ``guanxi_insights_sentiment``."""

    @hookimpl(optionalhook=True)
    async def guanxi_insights_sentiment(self, text: str, language: str) -> tuple[float, str] | None:
        return None if "skip" in text else (-0.9, f"better-{language}")


class TestAnotherPluginsModel:
    @pytest.fixture
    def extra_plugins(self) -> dict[str, object]:
        return {"better": BetterModel()}

    @pytest.mark.plugins("insights", "better")
    async def test_its_answer_is_used_and_none_falls_back_to_the_lexicon(self, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        box = Inbox(runtime, tenant_id)
        await box.say("Love it!")
        await box.say("skip: love it!")
        first, second = await box.scores()
        assert (first.score, first.model, first.label) == (-0.9, "better-en", "neg")
        assert second.model == "lexicon-1" and second.label == "pos"


@pytest.mark.plugins("insights", "scoring")
async def test_with_scoring_an_unhappy_customer_gets_a_negative_sentiment_component(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """An inbound text recorded through the API (not a channel's inbox) is scored too, and the
    component is there right after it (insights scores before scoring rescores)."""
    from guanxi.core.base.context import RequestContext
    from guanxi.core.services.customers import CustomerInput, create_customer
    from guanxi.core.services.interactions import InteractionInput, record_interaction
    from guanxi.plugins.scoring.models import ScoringScore
    from guanxi.plugins.scoring.parts import decode

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        customer = await create_customer(tx, CustomerInput(display_name="Li Lei"))
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await record_interaction(tx, InteractionInput(customer_id=customer.id, channel="email", kind="message_in", text="太差了，烂透了😡"))
    [score] = await rows(runtime, tenant_id, ScoringScore)
    [part] = [p for p in decode(score.parts) if p.component == "insights.sentiment"]
    assert part.value < -5
    assert part.reasons and part.reasons[0].startswith("1 texts in 30 days, mean sentiment -")


async def test_a_tenants_own_alert_keywords_raise_alerts_for_that_tenant(runtime: Runtime, tenant_id: uuid.UUID, graphql: Any) -> None:
    """Alert keywords are tenant data too: setPluginSettings overrides the deployment's list."""
    body = await graphql(
        'mutation { setPluginSettings(plugin: "insights", settings: {alert_keywords: ["漏发"]}) { errors { field message } } }'
    )
    assert body["data"]["setPluginSettings"]["errors"] == []
    box = Inbox(runtime, tenant_id)
    await box.say("订单漏发了一件")
    await box.say("我要投诉")  # the deployment's keyword, no longer this tenant's (a negative text still alerts by score)
    alerts = [s.alert for s in await box.scores()]
    assert alerts[0] == "keyword 漏发" and (alerts[1] is None or not alerts[1].startswith("keyword"))
