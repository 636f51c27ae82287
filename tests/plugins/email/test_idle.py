"""Receiving by IMAP IDLE against the real dovecot: new mail becomes an inbound interaction as soon
as the server announces it (no poll interval waited for), a server restart in the middle of IDLE
reconnects and resumes by UID (nothing lost, nothing doubled), only one worker process holds a
mailbox's IDLE at a time, a server without IDLE is left to the minute's poll, and stopping the
worker ends the connections and gives the mailbox up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib
import httpx
import pytest

from guanxi import Runtime
from guanxi.core.queues import inbox
from guanxi.plugins.email import idle, imap
from guanxi.plugins.email.models import EmailMailboxState
from tests.plugins.email.conftest import FakeSmtp, ImapServer, connect_mailbox, email_config, inbox_rows, mail
from tests.plugins.email.test_inbound import received

pytestmark = pytest.mark.plugins("email")

MAILBOXES = "{ emailMailboxes { key receiving status lastError lastUid } }"


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, *, within_s: float = 30.0) -> None:
    """Wait (generously) until ``check`` holds; the test asserts what happened, not how fast."""
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def switch_on(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """What ``pollEmailMailbox`` does after its first poll: receiving is on for the mailbox."""
    await imap.schedule(runtime, tenant_id, "main")


def supervisor(runtime: Runtime, tenant_id: uuid.UUID, holder: str = "worker-a", **options: float) -> idle.IdleSupervisor:
    settings: dict[str, Any] = {"scan_s": 0.05, "lease_s": 3.0, "retry_cap_s": 0.5} | options
    return idle.IdleSupervisor(runtime, holder=holder, tenant_id=tenant_id, **settings)


async def state(runtime: Runtime, tenant_id: uuid.UUID) -> EmailMailboxState | None:
    async with runtime.session(tenant_id) as s:
        return await s.get(EmailMailboxState, (tenant_id, "main"), populate_existing=True)


async def in_idle(runtime: Runtime, tenant_id: uuid.UUID) -> bool:
    row = await state(runtime, tenant_id)
    return row is not None and row.receiving == "idle"


async def stored(runtime: Runtime, tenant_id: uuid.UUID, n: int) -> bool:
    return await inbox_rows(runtime, tenant_id) >= n


async def test_mail_appended_during_idle_becomes_an_inbound_interaction_without_a_poll(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer, client: httpx.AsyncClient
) -> None:
    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    imap_server.deliver(folder, mail(1))  # waiting before the worker starts: read on connecting
    await switch_on(runtime, tenant_id)
    worker = supervisor(runtime, tenant_id)
    worker.start()
    try:
        await eventually(lambda: in_idle(runtime, tenant_id), "the mailbox to be in IDLE")
        await eventually(lambda: stored(runtime, tenant_id, 1), "the mail waiting before IDLE")
        assert await idle.held(runtime, tenant_id, "main")  # the minute's poll job skips the mailbox
        body = (await client.post("/graphql", json={"query": MAILBOXES})).json()
        assert body["data"]["emailMailboxes"] == [{"key": "main", "receiving": "IDLE", "status": "OK", "lastError": None, "lastUid": 1}]
        imap_server.deliver(folder, mail(2))
        await eventually(lambda: stored(runtime, tenant_id, 2), "the mail announced during IDLE")
        (watcher, _), *_ = worker.watchers.values()
        assert watcher.sessions == 1  # read by the IDLE connection's doorbell, not a reconnection
    finally:
        await worker.stop()
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert [i.text for i in await received(runtime, tenant_id)] == ["Question 1", "Question 2"]
    row = await state(runtime, tenant_id)
    assert row is not None and (row.idle_holder, row.receiving) == (None, "polling")  # stopped: the lease is given up
    assert not await idle.held(runtime, tenant_id, "main")


async def test_a_server_restart_mid_idle_reconnects_and_resumes_by_uid(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    await switch_on(runtime, tenant_id)
    worker = supervisor(runtime, tenant_id)
    worker.start()
    try:
        await eventually(lambda: in_idle(runtime, tenant_id), "the mailbox to be in IDLE")
        imap_server.deliver(folder, mail(1))
        await eventually(lambda: stored(runtime, tenant_id, 1), "the first mail")
        imap_server.restart()  # the IDLE connection is cut
        imap_server.deliver(folder, mail(2), mail(3))  # arrives while the worker reconnects
        await eventually(lambda: stored(runtime, tenant_id, 3), "the mail that arrived during the restart")
        (watcher, _), *_ = worker.watchers.values()
        await eventually(lambda: asyncio.sleep(0, watcher.sessions >= 2), "a second IDLE session")
        imap_server.deliver(folder, mail(4))
        await eventually(lambda: stored(runtime, tenant_id, 4), "mail after the reconnection")
    finally:
        await worker.stop()
    await inbox.run_once(runtime, tenant_id=tenant_id)
    assert sorted(i.text or "" for i in await received(runtime, tenant_id)) == [f"Question {n}" for n in range(1, 5)]
    assert await inbox_rows(runtime, tenant_id) == 4  # nothing read twice
    assert (await imap.poll(runtime, tenant_id, "main")).last_uid == 4


async def test_only_one_worker_process_holds_a_mailboxs_idle_and_another_takes_over_when_it_stops(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    await switch_on(runtime, tenant_id)
    first, second = supervisor(runtime, tenant_id, "worker-a"), supervisor(runtime, tenant_id, "worker-b")
    first.start()
    try:
        await eventually(lambda: in_idle(runtime, tenant_id), "the first worker's IDLE")
        second.start()
        for _ in range(5):  # the second worker scans again and again and finds the mailbox held
            await second.scan()
        assert (first.watching(), second.watching()) == ([(tenant_id, "main")], [])
        row = await state(runtime, tenant_id)
        assert row is not None and row.idle_holder == "worker-a"
        await first.stop()
        await eventually(lambda: asyncio.sleep(0, second.watching() == [(tenant_id, "main")]), "the second worker to take over")
        await eventually(lambda: in_idle(runtime, tenant_id), "the second worker's IDLE")
        imap_server.deliver(folder, mail(1))
        await eventually(lambda: stored(runtime, tenant_id, 1), "mail read by the second worker")
        row = await state(runtime, tenant_id)
        assert row is not None and row.idle_holder == "worker-b"
    finally:
        await first.stop()
        await second.stop()


async def test_a_lease_left_by_a_dead_process_runs_out_and_is_taken_over(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    assert await idle.claim(runtime, tenant_id, "main", "dead-process", lease_s=0.5)
    assert not await idle.claim(runtime, tenant_id, "main", "worker-a", lease_s=3.0)  # held
    await eventually(lambda: idle.claim(runtime, tenant_id, "main", "worker-a", lease_s=3.0), "the dead lease to run out")
    assert not await idle.claim(runtime, tenant_id, "main", "dead-process", lease_s=0.5)


async def test_a_server_without_idle_is_left_to_the_minutes_poll(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    await switch_on(runtime, tenant_id)
    real = aioimaplib.IMAP4.has_capability
    monkeypatch.setattr(aioimaplib.IMAP4, "has_capability", lambda self, name: name != "IDLE" and real(self, name))
    worker = supervisor(runtime, tenant_id)
    worker.start()
    try:
        await eventually(lambda: asyncio.sleep(0, bool(worker._unsupported)), "the worker to find no IDLE")
        for _ in range(3):
            await worker.scan()
        assert worker.watching() == []  # not retried before RECHECK_S
    finally:
        await worker.stop()
    row = await state(runtime, tenant_id)
    assert row is not None and (row.receiving, row.idle_holder, row.idle_error) == ("polling", None, None)
    assert not await idle.held(runtime, tenant_id, "main")  # so the poll job reads it


async def test_a_wrong_imap_password_is_a_clear_error_on_the_mailbox_and_never_shows_the_password(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    smtp: FakeSmtp,
    imap_server: ImapServer,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = 'Wr0ng"pass\\word-7d1e'  # a quote and a backslash: sent escaped, still never shown
    caplog.set_level("DEBUG")
    await connect_mailbox(runtime, tenant_id, smtp, imap_server, password=wrong)
    poll = 'mutation { pollEmailMailbox(mailbox: "main") { stored errors { code message } } }'
    answer = (await client.post("/graphql", json={"query": poll})).json()
    (error,) = answer["data"]["pollEmailMailbox"]["errors"]
    assert error["code"] == "DELIVERY_FAILED"
    assert "refused the login" in error["message"] and "imap_password" in error["message"]
    await switch_on(runtime, tenant_id)  # receiving on all the same: the IDLE worker keeps trying
    worker = supervisor(runtime, tenant_id)
    worker.start()
    try:

        async def failed() -> bool:
            row = await state(runtime, tenant_id)
            return row is not None and row.idle_error is not None

        await eventually(failed, "the IDLE login to fail")
    finally:
        await worker.stop()
    body = (await client.post("/graphql", json={"query": MAILBOXES})).json()
    (shown,) = body["data"]["emailMailboxes"]
    assert (shown["status"], shown["receiving"]) == ("FAILING", "POLLING")
    assert "refused the login" in shown["lastError"]
    for text in (str(answer), str(body), caplog.text):
        assert "Wr0ng" not in text and "word-7d1e" not in text


async def test_the_worker_hook_starts_the_idle_supervisor_unless_switched_off(runtime: Runtime) -> None:
    from guanxi.plugins.email import plugin

    (worker,) = plugin.guanxi_workers(runtime)
    assert isinstance(worker, idle.IdleSupervisor)
    contributed = [w for ws in runtime.pm.hook.guanxi_workers(runtime=runtime) for w in ws or []]
    assert any(isinstance(w, idle.IdleSupervisor) for w in contributed)  # start_workers() starts it with core's


async def test_the_minutes_poll_job_skips_a_mailbox_a_live_idle_connection_watches(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    from guanxi import JobRun
    from guanxi.core.domain.models import utcnow

    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    imap_server.deliver(folder, mail(1))
    job = JobRun(
        runtime=runtime,
        tenant_id=tenant_id,
        job_id=uuid.uuid4(),
        kind=imap.POLL_JOB,
        key=f"{imap.POLL_JOB}:main",
        payload={"mailbox": "main"},
        slot_at=utcnow(),
        attempt=1,
        idempotency_key="x",
    )
    assert await idle.claim(runtime, tenant_id, "main", "worker-a", lease_s=30.0)
    await idle.mark(runtime, tenant_id, "main", "worker-a", receiving="idle")
    await idle.run_poll_job(job)
    assert await inbox_rows(runtime, tenant_id) == 0  # the IDLE connection reads it, not the poll
    await idle.mark(runtime, tenant_id, "main", "worker-a", receiving="polling", release=True)
    await idle.run_poll_job(job)
    assert await inbox_rows(runtime, tenant_id) == 1
