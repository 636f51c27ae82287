"""SQLite with another writer (issue 12, items 9 and 10): reads never wait on or fail for
bookkeeping, a write that cannot get the lock is a clear, retryable ``BUSY``, queue workers back
off with one warning line, and a bulk CSV import runs beside a live server on one file.

Each test runs on its own SQLite file, with a second connection (or a second process) holding the
write lock with ``BEGIN IMMEDIATE`` while the API serves requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from guanxi.core.domain.models import ApiKey, Customer, InboxEvent
from guanxi.core.runtime import Runtime
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, api_key

pytestmark = pytest.mark.skipif(bool(os.environ.get("GUANXI_TEST_DATABASE_URL")), reason="SQLite's write lock")


def _environ(path: Path, busy_ms: int) -> dict[str, str]:
    return {
        "GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{path}",
        "GUANXI__TENANT": "acme",
        "GUANXI__AUTH__SECRET": TEST_SECRET,
        "GUANXI__DATABASE__BUSY_TIMEOUT_MS": str(busy_ms),
    }


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on its own SQLite file with a short busy timeout, tenant ``acme`` created."""
    from guanxi.core.migrate import upgrade
    from guanxi.core.services.pipelines import create_tenant

    (tmp_path / "guanxi.toml").write_text("", encoding="utf-8")
    runtime = Runtime.from_config(tmp_path / "guanxi.toml", environ=_environ(tmp_path / "guanxi.db", 300))
    await upgrade(runtime)
    await runtime.start()
    async with runtime.write_session(None) as session:
        await create_tenant(session, "acme", "ACME")
    try:
        yield runtime
    finally:
        await runtime.stop()


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds SQLite's write lock (what a bulk import does) until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def _client(runtime: Runtime, key: str) -> httpx.AsyncClient:
    from guanxi.app import create_app

    app: Any = create_app(runtime)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers={"Authorization": f"Bearer {key}"})


async def _post(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_read_with_a_fresh_key_succeeds_while_another_process_holds_the_write_lock(rt: Runtime, tmp_path: Path) -> None:
    """The key's last_used_at write used to sit on the request path: HTTP 500 after the busy
    timeout. It is now written beside the request, and again once the database is free."""
    tenant_id = await rt.tenant_id()
    key = await api_key(rt, tenant_id, "admin")
    other = await api_key(rt, tenant_id, "admin")
    async with await _client(rt, key) as client:
        with write_lock(tmp_path / "guanxi.db"):
            for _ in range(3):
                body = await _post(client, "{ customers { totalCount } pipelines { key } users { id } }")
                assert "errors" not in body and body["data"]["customers"]["totalCount"] == 0
            await rt.drain()  # the bookkeeping met the lock and kept its value for later
        async with rt.session(tenant_id) as s:
            assert (await s.scalar(select(ApiKey.last_used_at).where(ApiKey.key_id == key.split("_")[1]))) is None
        async with await _client(rt, other) as second:  # the next use of a key writes what was kept
            assert "errors" not in await _post(second, "{ users { id } }")
        await rt.drain()
    async with rt.session(tenant_id) as s:
        used = {k: at for k, at in (await s.execute(select(ApiKey.key_id, ApiKey.last_used_at))).all()}
    assert used[key.split("_")[1]] is not None and used[other.split("_")[1]] is not None


async def test_a_write_that_meets_the_lock_gets_a_retryable_busy_error_never_internal(rt: Runtime, tmp_path: Path) -> None:
    tenant_id = await rt.tenant_id()
    key = await api_key(rt, tenant_id, "admin")
    create = 'mutation { createCustomer(input: {displayName: "Ada"}) { customer { id } errors { code message } } }'
    async with await _client(rt, key) as client:
        await _post(client, "{ users { id } }")
        await rt.drain()
        with write_lock(tmp_path / "guanxi.db"):
            body = await _post(client, create)
            (error,) = body["data"]["createCustomer"]["errors"]
            assert error["code"] == "BUSY"
            assert "retry" in error["message"] and "nothing was changed" in error["message"]
            # a write outside a payload (a plain GraphQL error) carries the code too
            body = await _post(client, 'mutation { createTag(label: "vip") { errors { code } } }')
            assert "INTERNAL" not in str(body)
        body = await _post(client, create)  # the lock is gone: the same write succeeds
        assert body["data"]["createCustomer"]["errors"] == []
    async with rt.session(tenant_id) as s:
        assert await s.scalar(select(func.count()).select_from(Customer)) == 1


async def test_a_write_waits_its_turn_when_the_lock_is_released_within_the_busy_timeout(tmp_path: Path) -> None:
    from guanxi.core.migrate import upgrade
    from guanxi.core.services.pipelines import create_tenant

    (tmp_path / "guanxi.toml").write_text("", encoding="utf-8")
    runtime = Runtime.from_config(tmp_path / "guanxi.toml", environ=_environ(tmp_path / "guanxi.db", 30_000))
    await upgrade(runtime)
    try:
        async with runtime.write_session(None) as session:
            await create_tenant(session, "acme", "ACME")
        key = await api_key(runtime, await runtime.tenant_id(), "admin")
        async with await _client(runtime, key) as client:
            with write_lock(tmp_path / "guanxi.db") as held:
                pending = asyncio.ensure_future(
                    _post(client, 'mutation { createCustomer(input: {displayName: "Ada"}) { errors { code } } }')
                )
                await asyncio.sleep(0.2)
                assert not pending.done()  # waiting for the lock, not failed
                held.execute("ROLLBACK")
                held.execute("BEGIN")  # the context manager's ROLLBACK ends this one
            body = await pending
        assert body["data"]["createCustomer"]["errors"] == []
    finally:
        await runtime.stop()


async def test_webhook_ingest_that_meets_the_lock_answers_503_with_retry_after(rt: Runtime, tmp_path: Path) -> None:
    """A route that meets a busy database answers 503 (the provider retries), not a 500."""
    from litestar import Litestar, post
    from litestar.testing import AsyncTestClient

    from guanxi.app import create_app
    from guanxi.core.base.errors import BusyError

    @post("/busy-probe")
    async def probe() -> None:
        raise BusyError()

    app = create_app(rt)
    bare = Litestar(route_handlers=[probe], exception_handlers=app.exception_handlers)
    async with AsyncTestClient(app=bare) as client:
        response = await client.post("/busy-probe")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["errors"][0]["extensions"]["code"] == "BUSY"


async def test_queue_workers_that_meet_the_lock_back_off_with_one_warning_and_no_traceback(
    rt: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from guanxi.core.queues.inbox import InboxWorker
    from guanxi.core.queues.outbox import Deliverer, OutboxWorker

    workers = [InboxWorker(rt, poll_s=0.01), OutboxWorker(rt, Deliverer(rt), poll_s=0.01)]
    with caplog.at_level(logging.INFO), write_lock(tmp_path / "guanxi.db"):
        for worker in workers:
            worker.start()
        for _ in range(600):  # until each worker met the lock a few times (short busy timeout)
            await asyncio.sleep(0.05)
            warned = [r for r in caplog.records if r.name == "guanxi.queue" and r.levelno == logging.WARNING]
            if len(warned) >= 2 and all(w.busy_batches >= 3 for w in workers):
                break
    for worker in workers:
        await worker.stop()
    assert all(w.busy_batches >= 3 for w in workers)
    warned = [r for r in caplog.records if r.name == "guanxi.queue" and r.levelno == logging.WARNING]
    assert sorted(r.getMessage().split(" ")[0] for r in warned) == ["inbox", "outbox"]
    assert all("busy" in r.getMessage() for r in warned)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_bulk_csv_import_runs_beside_a_live_server_on_one_sqlite_file(rt: Runtime, tmp_path: Path) -> None:
    """`guanxi import customers` in another process while the API serves reads and writes: every
    read answers with data, every write succeeds or says BUSY, and the import completes."""
    tenant_id = await rt.tenant_id()
    key = await api_key(rt, tenant_id, "admin")
    rows = 10_000
    csv = tmp_path / "big.csv"
    lines = ["display_name,company,phones,emails,stage,tags,source"]
    lines += [f"Customer {n},Co {n % 50},+86 138 {n:04d} {n % 9000 + 1000},c{n}@example.com,lead,big,import" for n in range(rows)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {
        **_environ(tmp_path / "guanxi.db", 300),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GUANXI_CONFIG": str(tmp_path / "guanxi.toml"),
    }
    out_file, err_file = tmp_path / "import.out", tmp_path / "import.err"
    with out_file.open("wb") as stdout, err_file.open("wb") as stderr:
        importer = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "guanxi", "import", "customers", str(csv), "--tenant", "acme"],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    reads = writes = busy = 0
    async with await _client(rt, key) as client:
        while importer.returncode is None or reads < 5:
            body = await _post(client, "{ customers(first: 5) { totalCount edges { node { displayName } } } }")
            assert "errors" not in body, body
            reads += 1
            body = await _post(client, f'mutation {{ createCustomer(input: {{displayName: "Live {writes}"}}) {{ errors {{ code }} }} }}')
            codes = [e["code"] for e in body["data"]["createCustomer"]["errors"]]
            assert codes in ([], ["BUSY"]), body
            writes += 1
            busy += codes == ["BUSY"]
            await asyncio.sleep(0.02)
    await asyncio.wait_for(importer.wait(), 120)
    out, err = out_file.read_text(encoding="utf-8"), err_file.read_text(encoding="utf-8")
    assert importer.returncode == 0, err
    assert f"created {rows}" in out
    assert "Traceback" not in err
    async with rt.session(tenant_id) as s:
        total = await s.scalar(select(func.count()).select_from(Customer))
    assert total == rows + (writes - busy)
    assert reads >= 5


async def test_inbox_rows_claimed_while_busy_are_not_marked_failed(rt: Runtime, tmp_path: Path) -> None:
    import datetime as dt

    from guanxi.core.domain.channels import InboundEvent, ProfileInput
    from guanxi.core.queues import inbox

    tenant_id = await rt.tenant_id()
    event = InboundEvent(
        channel="wecom",
        provider_event_id="evt-1",
        occurred_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        identity=ProfileInput(external_id="wm-1"),
        kind="message_in",
        text="hi",
    )
    await inbox.ingest(rt, tenant_id, event)
    with write_lock(tmp_path / "guanxi.db"), pytest.raises(Exception) as raised:
        await inbox.run_once(rt, tenant_id=tenant_id)
    assert type(raised.value).__name__ == "BusyError"
    assert await inbox.run_once(rt, tenant_id=tenant_id) == 1
    async with rt.session(tenant_id) as s:
        assert (await s.execute(select(InboxEvent.status))).scalar_one() == "done"


async def test_a_write_that_waits_past_the_busy_timeout_for_the_process_slot_is_busy_and_names_the_holder(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The in-process write slot waits as long as ``database.busy_timeout_ms`` (300 ms here), not
    a fixed time; the warning names the task that held it."""
    from guanxi.core.base.errors import BusyError

    tenant_id = await rt.tenant_id()
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with rt.write_session(tenant_id):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold(), name="slow-writer")
    await holding.wait()
    with caplog.at_level(logging.WARNING, logger="guanxi.core.storage.db"), pytest.raises(BusyError):
        async with rt.write_session(tenant_id):
            pass
    release.set()
    await holder
    assert "no SQLite write slot within 0.3 s: task 'slow-writer' has held it for" in caplog.text
    async with rt.write_session(tenant_id):  # the slot is free again
        pass
