"""The durable inbox: ingest, processing, retries, crash recovery."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi import hookimpl
from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import Customer, InboxEvent, Interaction
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.graphql.messaging import InboxStatus

T0 = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)


def event(n: int = 1, external_id: str = "wm-1", **kw: object) -> InboundEvent:
    return InboundEvent(
        channel="wecom",
        provider_event_id=f"evt-{n}",
        occurred_at=T0 + dt.timedelta(minutes=n),
        identity=ProfileInput(external_id=external_id, nickname="小王", union_id="u-1"),
        kind="message_in",
        text=f"你好 {n}",
        **kw,  # type: ignore[arg-type]
    )


async def count(runtime: Runtime, tenant_id: uuid.UUID, model: type) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_three_deliveries_of_one_event_make_one_interaction(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    results = [await inbox.ingest(runtime, tenant_id, event(1)) for _ in range(3)]
    assert [r.duplicate for r in results] == [False, True, True]
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 1
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 0
    assert await count(runtime, tenant_id, Interaction) == 1
    async with runtime.session(tenant_id) as s:
        (c,) = (await s.execute(select(Customer))).scalars().all()
        assert c.display_name == "小王" and c.source == "wecom"
        row = (await s.execute(select(InboxEvent))).scalar_one()
        assert (row.status, row.customer_id, row.attempts) == ("done", c.id, 1)


async def test_events_from_one_account_land_on_one_customer(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    for n in range(5):
        await inbox.ingest(runtime, tenant_id, event(n))
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert await count(runtime, tenant_id, Customer) == 1
    assert await count(runtime, tenant_id, Interaction) == 5


async def test_same_provider_event_id_in_two_tenants_is_two_events(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.session(None) as s, s.begin():
        other = await create_tenant(s, f"other-{uuid.uuid4().hex[:6]}", "Other")
    assert not (await inbox.ingest(runtime, tenant_id, event(1))).duplicate
    assert not (await inbox.ingest(runtime, other, event(1))).duplicate


def test_an_event_without_a_time_zone_is_refused() -> None:
    import asyncio

    bad = event(1)
    bad.occurred_at = dt.datetime(2026, 1, 1)
    with pytest.raises(ValidationError, match="time zone"):
        asyncio.run(inbox.ingest(None, uuid.uuid4(), bad))  # type: ignore[arg-type]


async def test_a_crashed_worker_leaves_the_row_to_be_claimed_again_after_its_lease(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.queues.queue import claim

    await inbox.ingest(runtime, tenant_id, event(1))
    # A worker claims the row and dies before processing it.
    assert (
        len(
            await claim(
                runtime.engine, InboxEvent, due_status="pending", busy_status="processing", limit=10, lease_s=0.0, tenant_id=tenant_id
            )
        )
        == 1
    )
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 1  # the lease (0 s) has run out: claimed again
    assert await count(runtime, tenant_id, Interaction) == 1


async def test_a_row_whose_effect_committed_is_not_applied_twice(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Processing the same row again (e.g. replayed) finds the interaction's dedupe key."""
    ingested = await inbox.ingest(runtime, tenant_id, event(1))
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert ingested.inbox_id is not None
    assert await inbox.replay(runtime, tenant_id, ingested.inbox_id)
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert await count(runtime, tenant_id, Interaction) == 1


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures

    @hookimpl
    def guanxi_resolve_customer(self) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("CRM lookup timed out")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"flaky": Flaky(failures=10)}


@pytest.mark.plugins("flaky")
async def test_a_failing_event_is_retried_then_marked_failed_with_its_error_and_can_be_replayed(
    runtime: Runtime, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "backoff", lambda attempt: 0.0)
    ingested = await inbox.ingest(runtime, tenant_id, event(1))
    for _ in range(5):
        await inbox.run_once(runtime, max_attempts=3, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(InboxEvent))).scalar_one()
    assert (row.status, row.attempts) == ("failed", 3)
    assert "CRM lookup timed out" in (row.last_error or "")
    assert await count(runtime, tenant_id, Interaction) == 0
    runtime.pm.get_plugin("flaky").failures = 0  # type: ignore[union-attr]
    assert ingested.inbox_id is not None and await inbox.replay(runtime, tenant_id, ingested.inbox_id)
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert await count(runtime, tenant_id, Interaction) == 1


async def test_depth_reports_pending_rows_and_their_age(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await inbox.ingest(runtime, tenant_id, event(1))
    before = await inbox.depth(runtime, tenant_id)
    assert before["waiting"] == 1 and before["oldest_waiting_age_s"] is not None
    await inbox.run_once(runtime, limit=1000, tenant_id=tenant_id)
    after = await inbox.depth(runtime, tenant_id)
    assert (after["waiting"], after["finished"], after["oldest_waiting_age_s"]) == (0, 1, None)


async def test_the_worker_processes_an_ingested_event_without_polling_delay(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    import asyncio

    worker = inbox.InboxWorker(runtime, poll_s=30)
    runtime.state["inbox_worker"] = worker
    worker.start()
    try:
        await inbox.ingest(runtime, tenant_id, event(1))
        for _ in range(100):
            if await count(runtime, tenant_id, Interaction):
                break
            await asyncio.sleep(0.05)
        assert await count(runtime, tenant_id, Interaction) == 1
    finally:
        await worker.stop()
        runtime.state.pop("inbox_worker")


async def test_failed_inbox_events_are_listed_for_operations_over_graphql(
    runtime: Runtime, tenant_id: uuid.UUID, graphql: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    await inbox.ingest(runtime, tenant_id, event(1))
    body = await graphql("{ inboxEvents(status: PENDING) { providerEventId status event } done: inboxEvents(status: DONE) { id } }")
    (item,) = body["data"]["inboxEvents"]
    assert (item["providerEventId"], item["status"], item["event"]["text"]) == ("evt-1", "PENDING", "你好 1")
    assert body["data"]["done"] == []


async def test_inbox_status_is_an_enum_and_a_string_status_is_refused_by_validation(
    graphql: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    refused = await graphql('{ inboxEvents(status: "failed") { id } }', ok=False)
    assert "data" not in refused or refused["data"] is None
    assert "InboxStatus" in refused["errors"][0]["message"]
    unknown = await graphql("{ inboxEvents(status: RETRYING) { id } }", ok=False)
    assert "RETRYING" in unknown["errors"][0]["message"]


def test_inbox_status_enum_holds_exactly_the_statuses_the_inbox_writes() -> None:
    """InboxStatus must name every status the inbox and its claim query set, and nothing else."""
    source = Path(inbox.__file__).read_text(encoding="utf-8")
    written = set(re.findall(r'status\s*=\s*"([a-z]+)"', source)) | set(re.findall(r'(?:due|busy)_status="([a-z]+)"', source))
    written |= set(re.findall(r'"status": "([a-z]+)"', source))
    assert written == {"pending", "processing", "done", "failed"}
    assert {s.value for s in InboxStatus} == written
    assert all(m.name == m.value.upper() for m in InboxStatus)


async def test_replaying_an_erased_customers_event_fails_at_once_with_its_reason(
    runtime: Runtime, tenant_id: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    """Erasure blanks the stored event; replaying it can never succeed, so it is not retried."""
    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import privacy

    ingested = await inbox.ingest(runtime, tenant_id, event(1))
    await inbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        customer_id = (await s.execute(select(Customer.id))).scalar_one()
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await privacy.erase_customer(tx, customer_id)
    assert ingested.inbox_id is not None and await inbox.replay(runtime, tenant_id, ingested.inbox_id)
    with caplog.at_level("WARNING", logger="guanxi.inbox"):
        assert await inbox.run_once(runtime, tenant_id=tenant_id, max_attempts=8) == 1
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(InboxEvent))).scalar_one()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "ValidationError" in (row.last_error or "")
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 0  # nothing left to retry
    (line,) = [r for r in caplog.records if r.name == "guanxi.inbox"]
    assert "permanent" in line.getMessage() and line.exc_info is None


class Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookimpl
    def guanxi_resolve_customer(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "attempts"),
    [
        (ValidationError("the account is not ours", field="external_id"), "failed", 1),
        (type("Gone", (RuntimeError,), {"permanent": True})("the account was deleted"), "failed", 1),
        (RuntimeError("CRM lookup timed out"), "pending", 1),
    ],
    ids=["validation", "marked-permanent", "transient"],
)
async def test_a_permanent_error_fails_the_row_at_once_and_a_transient_one_keeps_the_backoff(
    runtime: Runtime, tenant_id: uuid.UUID, error: Exception, status: str, attempts: int
) -> None:
    runtime.pm.register(Refusing(error), name="refusing")
    try:
        await inbox.ingest(runtime, tenant_id, event(1))
        await inbox.run_once(runtime, tenant_id=tenant_id, max_attempts=8)
    finally:
        runtime.pm.unregister(name="refusing")
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(InboxEvent))).scalar_one()
    assert (row.status, row.attempts) == (status, attempts)
    assert str(error) in (row.last_error or "")
    if status == "pending":
        assert row.next_attempt_at is not None
