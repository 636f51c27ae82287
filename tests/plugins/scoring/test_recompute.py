"""Incremental and batch recompute: the same numbers, set-based SQL, a bounded statement count."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select

from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import ScoreComponent
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.plugins.scoring.models import ScoringHistory, ScoringScore
from guanxi.plugins.scoring.parts import decode
from guanxi.plugins.scoring.recompute import recompute_tenant
from guanxi.testing.sql import count_statements
from tests.plugins.scoring.conftest import NOW, Shop

pytestmark = pytest.mark.plugins("scoring", "nightowl")
DAY = dt.timedelta(days=1)


class NightOwl:
    """A fixture plugin that adds a component to the score through guanxi_score_components."""

    def __init__(self) -> None:
        self.calls: list[list[uuid.UUID]] = []
        self.value = 2.5

    @hookimpl
    def guanxi_score_components(self, customer_ids: list[uuid.UUID], as_of: dt.datetime) -> list[ScoreComponent]:
        self.calls.append(list(customer_ids))
        return [
            ScoreComponent(customer_id=c, name="nightowl.late", value=self.value, reasons=["1 night visit x 2.5"]) for c in customer_ids
        ]


@pytest.fixture
def owl() -> NightOwl:
    return NightOwl()


@pytest.fixture
def extra_plugins(owl: NightOwl) -> dict[str, object]:
    return {"nightowl": owl}


async def _populate(shop: Shop) -> list[uuid.UUID]:
    ids = []
    for n in range(5):
        cid = await shop.customer(f"Customer {n}", company="ACME" if n % 2 else None, emails=[f"c{n}@x.cn"] if n % 3 else [])
        for k in range(n * 3):
            await shop.interact(
                cid, ("message_in", "click", "visit", "purchase")[k % 4], at=NOW - k * DAY - dt.timedelta(hours=n), amount=10.0 * k
            )
        if n == 4:
            await shop.identity(cid, "douyin", 12_345, engagement_rate=0.2)
            await shop.interact(cid, "complaint", at=NOW - 3 * DAY)
        ids.append(cid)
    return ids


async def _snapshot(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[dict[uuid.UUID, float], dict[tuple[Any, ...], tuple[Any, ...]]]:
    async with runtime.session(tenant_id) as s:
        totals = {r.customer_id: round(r.total, 9) for r in (await s.execute(select(ScoringScore))).scalars()}
        parts = {
            (score.customer_id, p.component, p.item): (p.count, p.skipped, round(p.value, 9), p.measure, p.reasons)
            for score in (await s.execute(select(ScoringScore))).scalars()
            for p in decode(score.parts)
        }
    return totals, parts


async def test_plugin_components_are_added_to_the_score_with_their_reasons(shop: Shop, owl: NightOwl) -> None:
    cid = await shop.customer()
    await shop.interact(cid, "message_in")
    assert owl.calls[-1] == [cid]
    part = (await shop.parts(cid))[("nightowl.late", "")]
    assert part.value == 2.5 and part.reasons == ["1 night visit x 2.5"]
    assert await shop.total(cid) == pytest.approx(5 + 2.5)


async def test_referral_progress_and_new_contacts_rescore_for_other_plugins_components(shop: Shop, owl: NightOwl) -> None:
    """Another plugin's component changes without an interaction (a referral qualified): the
    scoring plugin recomputes on guanxi_referral_progress and guanxi_contact_arrived."""
    from guanxi.core.domain.events import ContactArrived, ReferralProgress
    from guanxi.core.hooks.manager import fire

    cid = await shop.customer()
    assert await shop.total(cid) == 2.5
    owl.value = 7.5
    common = {"tenant_id": shop.ctx.tenant_id, "actor": shop.ctx.actor}
    progress = ReferralProgress(
        **common,
        campaign_id=uuid.uuid4(),
        campaign_name="Invite 3",
        inviter_customer_id=cid,
        inviter_user_id=None,
        qualified=1,
        goal=3,
        rewarded=False,
    )
    await fire(shop.runtime.pm.hook.guanxi_referral_progress, runtime=shop.runtime, event=progress)
    assert await shop.total(cid) == 7.5
    owl.value = 1.0
    arrived = ContactArrived(
        **common,
        customer_id=cid,
        identity_id=uuid.uuid4(),
        channel="wecom",
        external_id="wm1",
        state="tok",
        staff_user_id=None,
        new_customer=False,
        occurred_at=NOW,
    )
    await fire(shop.runtime.pm.hook.guanxi_contact_arrived, runtime=shop.runtime, event=arrived)
    assert await shop.total(cid) == 1.0


async def test_batch_recompute_gives_the_same_numbers_as_the_incremental_updates(
    shop: Shop, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    ids = await _populate(shop)
    incremental = await _snapshot(runtime, tenant_id)
    assert len(incremental[0]) == 5 and len(incremental[1]) > 15
    async with runtime.write_session(tenant_id) as s:
        await s.execute(delete(ScoringScore))
    report = await recompute_tenant(runtime, tenant_id, as_of=NOW, batch_size=2)
    assert (report.customers, report.batches) == (5, 3)
    assert await _snapshot(runtime, tenant_id) == incremental
    assert set(incremental[0]) == set(ids)


async def test_recompute_records_history_only_for_totals_that_changed(shop: Shop, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    cid = await shop.customer()
    await shop.interact(cid, "message_in")
    await shop.interact(cid, "visit")
    report = await recompute_tenant(runtime, tenant_id, as_of=NOW)
    assert report.changed == 0
    async with runtime.session(tenant_id) as s:
        rows = (await s.execute(select(ScoringHistory).order_by(ScoringHistory.at))).scalars().all()
    assert [(r.previous, round(r.total, 6), r.cause) for r in rows] == [
        (None, 2.5, "created"),  # the night owl's component
        (2.5, 7.5, "interaction:message_in@wecom"),
        (7.5, 17.5, "interaction:visit@wecom"),
    ]


async def test_one_interaction_updates_the_score_in_a_fixed_number_of_statements(shop: Shop, runtime: Runtime, ctx: RequestContext) -> None:
    """Three statements: on SQLite the history insert and the upsert of the total with its parts
    (each computing every component), then the stage rules' check; on PostgreSQL the lock of the
    customer, one statement computing the components once and writing history and score, then
    the check. No statement per interaction, per part or per component, however long the
    timeline (it was nine: a delete and an insert per component)."""
    cid = await shop.customer()
    for k in range(30):
        await shop.interact(cid, "message_in", at=NOW - k * DAY)
    from guanxi.plugins.scoring.recompute import rescore

    with count_statements(runtime.engine) as seen:
        await rescore(runtime, ctx.tenant_id, cid, "test")
    assert len(seen) == 3, "\n".join(s[:70] for s in seen)


def test_cli_recompute_scores_every_customer_with_a_progress_bar(tmp_path: Path) -> None:
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "GUANXI_PLUGINS": "scoring"})

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(build_cli(rt), list(args), obj=rt)
        assert result.exit_code == 0, result.output
        return result.output

    invoke("db", "upgrade")
    invoke("demo", "--customers", "12")
    out = invoke("scoring", "recompute", "--tenant", "demo", "--batch-size", "5")
    assert "12 customers scored in 3 batches" in out


async def test_recompute_records_drift_once_it_adds_up_to_the_minimum_change(shop: Shop, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Decay moves every score a little each day; recompute writes history only once the total
    moved more than history_min_change (1 point) from the last recorded total."""
    cid = await shop.customer()
    await shop.interact(cid, "visit")  # 10 points + the night owl's 2.5
    for day in range(1, 6):  # 10 × (1 - 0.5^(d/30)): 0.23, 0.45, 0.67, 0.88, 1.09
        await recompute_tenant(runtime, tenant_id, as_of=NOW + day * DAY)
    async with runtime.session(tenant_id) as s:
        rows = (await s.execute(select(ScoringHistory).order_by(ScoringHistory.at))).scalars().all()
    assert [r.cause for r in rows] == ["created", "interaction:visit@wecom", "recompute"]
    assert rows[-1].previous == pytest.approx(12.5) and rows[-1].total == pytest.approx(2.5 + 10 * 0.5 ** (5 / 30))
    assert await shop.total(cid) == pytest.approx(2.5 + 10 * 0.5 ** (5 / 30))


async def test_scoring_throughput_is_counted_by_path(runtime: Runtime, ctx: RequestContext, shop: Shop) -> None:
    """guanxi_scoring_customers_scored_total counts the customers scored after an event
    (incremental) and by a batch recompute (recompute)."""
    from prometheus_client import REGISTRY

    def scored(path: str) -> float:
        return REGISTRY.get_sample_value("guanxi_scoring_customers_scored_total", {"path": path}) or 0.0

    incremental, batch = scored("incremental"), scored("recompute")
    first = await shop.customer("A")
    await shop.customer("B")
    await shop.interact(first, "message_in", at=NOW - DAY)
    assert scored("incremental") > incremental
    await recompute_tenant(runtime, ctx.tenant_id)
    assert scored("recompute") - batch == 2
