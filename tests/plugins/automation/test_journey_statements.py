"""N+1 guards: a batch of runs at waits and branches costs the same number of SQL statements
whatever its size, and so does a journey's report (grouped statements, whatever the runs)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from guanxi.core.runtime import Runtime
from guanxi.models import utcnow
from guanxi.plugins.automation.journeys import engine, report, service
from guanxi.testing.sql import count_statements
from tests.plugins.automation.journey_kit import JChatPlugin, activate, definition, drain, enter, make_customers

pytestmark = pytest.mark.plugins("automation", "jchat")
STEPS = [
    {"id": "pause", "type": "wait", "seconds": 60},
    {"id": "check", "type": "branch", "condition": {"tags_any": ["vip"], "channels": ["jchat"]}, "then": "later", "otherwise": "later"},
    {"id": "later", "type": "wait", "seconds": 60},
]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"jchat": JChatPlugin()}


async def _advance_counting(runtime: Runtime, tenant_id: uuid.UUID, n: int, key: str) -> tuple[int, int]:
    ids = await make_customers(runtime, tenant_id, n, prefix=key)
    await activate(runtime, tenant_id, definition(STEPS, key=key))
    await enter(runtime, tenant_id, key, ids)
    now = utcnow() + dt.timedelta(seconds=1)
    await drain(runtime, tenant_id, at=now)  # everyone arrives at "pause"
    with count_statements(runtime.engine) as seen:
        claimed = await engine.advance(runtime, tenant_id=tenant_id, limit=1000, now=now + dt.timedelta(seconds=61))
    assert claimed == n
    async with runtime.session(tenant_id) as s:
        journey = await service.get_journey(s, key)
        with count_statements(runtime.engine) as reported:
            figures = await report.journey_report(s, journey.id, {"pause": "wait", "check": "branch", "later": "wait"})
    assert figures.entered == n and sum(figures.steps[1].outcomes.values()) == n
    # the run rows' UPDATEs are one executemany per set of changed columns, whatever n
    return len(seen), len(reported)


async def test_waits_and_branches_cost_the_same_statements_for_3_or_30_runs(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    small = await _advance_counting(runtime, tenant_id, 3, "small")
    large = await _advance_counting(runtime, tenant_id, 30, "large")
    assert small == large, (small, large)
    assert small[1] == 6  # the report: six grouped statements
