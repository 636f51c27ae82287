"""The deployment of docs/operations.md "Running on several processes", for real: two API
processes (``guanxi serve``, HTTP only) and two worker processes (``guanxi worker``) on one
PostgreSQL database. Webhooks go to both API processes; one worker is killed with SIGKILL while
it holds an uncommitted batch; every event is processed exactly once and every interaction
reaches a GraphQL subscriber of each API process (LISTEN/NOTIFY).

PostgreSQL only (several processes on SQLite take turns at one write lock, and LISTEN/NOTIFY is
PostgreSQL's): it runs in CI's PostgreSQL leg and skips on SQLite. Bounded: 40 events, every
wait has a deadline, and every process is stopped at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import websockets
from sqlalchemy import func, select

from guanxi import sign
from guanxi.core.domain.models import InboxEvent, Interaction
from guanxi.core.runtime import Runtime
from guanxi.core.services.accounts import import_config_accounts
from guanxi.core.services.pipelines import create_tenant
from guanxi.testing.plugin import PG_ENV, TEST_SECRET, api_key

pytestmark = [
    pytest.mark.plugins("pigeon", "loyalty"),
    pytest.mark.many_processes,
    pytest.mark.skipif(
        not os.environ.get(PG_ENV), reason=f"several processes on one database: PostgreSQL only ({PG_ENV}, or make test-pg)"
    ),
]

GUANXI = str(Path(sys.executable).with_name("guanxi"))
N = 40
BATCH = 5
DELAY_S = 0.2  # per event, inside the worker's transaction: a batch holds its rows for 1 s
LEASE_S = 3.0
WEBHOOK_SECRET = "pigeon-many-processes-secret"
SUBSCRIPTION = "subscription { interactionRecorded { text } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Child processes of the test, each with its output in a file; all stopped at the end."""

    def __init__(self, folder: Path, environ: dict[str, str]) -> None:
        self.folder, self.environ = folder, environ
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen([GUANXI, *args], stdout=log, stderr=subprocess.STDOUT, env={**self.environ, **extra}, cwd=self.folder)
        self.procs[name] = proc
        return proc

    def output(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
async def own_database(own_database_url: str, plugin_names: list[str]) -> str:
    """A database of this test alone (workers claim the rows of every tenant, so rows other
    tests left in the session database must not be there), migrated for pigeon and loyalty."""
    from guanxi.core.migrate import upgrade

    environ = {"GUANXI_DATABASE_URL": own_database_url, "GUANXI_PLUGINS": ",".join(plugin_names), "GUANXI__AUTH__SECRET": TEST_SECRET}
    rt = Runtime.from_config(environ=environ)
    await upgrade(rt)
    await rt.engine.dispose()
    return own_database_url


@pytest.fixture
async def own_runtime(own_database: str, plugin_names: list[str]) -> AsyncIterator[Runtime]:
    rt = Runtime.from_config(
        environ={
            "GUANXI_DATABASE_URL": own_database,
            "GUANXI_PLUGINS": ",".join(plugin_names),
            "GUANXI__AUTH__SECRET": TEST_SECRET,
            "GUANXI__PLUGINS__PIGEON__WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


@pytest.fixture
def processes(tmp_path: Path, own_database: str) -> Iterator[Processes]:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GUANXI")},
        "GUANXI_DATABASE_URL": own_database,
        "GUANXI_PLUGINS": "pigeon,loyalty",
        "GUANXI__AUTH__SECRET": TEST_SECRET,
        "GUANXI__PLUGINS__PIGEON__WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GUANXI__QUEUES__BATCH": str(BATCH),
        "GUANXI__QUEUES__POLL_S": "0.2",
        "GUANXI__QUEUES__LEASE_S": str(LEASE_S),
        "GUANXI__DATABASE__POOL_SIZE": "3",
    }
    procs = Processes(tmp_path, environ)
    try:
        yield procs
    finally:
        procs.stop_all()


async def wait_healthy(client: httpx.AsyncClient, url: str, procs: Processes, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert procs.procs[name].poll() is None, f"{name} exited:\n{procs.output(name)}"
        try:
            if (await client.get(f"{url}/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} did not become healthy:\n{procs.output(name)}")


async def subscriber(url: str, key: str) -> Any:
    ws = await websockets.connect(
        url.replace("http://", "ws://") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        additional_headers={"Authorization": f"Bearer {key}"},
    )
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
    return ws


async def collect(ws: Any, texts: set[str], deadline: float) -> None:
    """Read interactionRecorded texts until ``deadline`` (monotonic) or N distinct ones."""
    while len(texts) < N and time.monotonic() < deadline:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        assert message["type"] == "next", message
        text = message["payload"]["data"]["interactionRecorded"]["text"]
        assert text not in texts, f"{text!r} delivered twice"
        texts.add(text)


def webhook(i: int) -> tuple[bytes, dict[str, str]]:
    sent = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
    body = msgspec.json.encode(
        {"event_id": f"mp-{i}", "type": "message", "sent_at": sent.isoformat(), "from": {"id": f"sender-{i % 8}"}, "text": f"event {i}"}
    )
    timestamp = str(int(time.time()))
    return body, {"X-Pigeon-Timestamp": timestamp, "X-Pigeon-Signature": sign(WEBHOOK_SECRET, body, timestamp=timestamp, prefix="sha256=")}


async def count(runtime: Runtime, tenant_id: uuid.UUID, model: Any, *where: Any) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


@pytest.fixture
async def websockets_closed() -> AsyncIterator[list[Any]]:
    sockets: list[Any] = []
    yield sockets
    for ws in sockets:
        await ws.close()


async def test_two_api_and_two_worker_processes_process_every_webhook_once_through_a_worker_crash(
    own_runtime: Runtime, processes: Processes, tmp_path: Path, websockets_closed: list[Any]
) -> None:
    runtime = own_runtime
    async with runtime.write_session(None) as s:
        tenant_id = await create_tenant(s, "many-processes", "Many processes")
    await import_config_accounts(runtime, tenant_id=tenant_id)  # Pigeon's account "main"
    key = await api_key(runtime, tenant_id, "admin")
    tenant = {"GUANXI__TENANT": "many-processes"}
    ports = [free_port(), free_port()]
    api = [f"http://127.0.0.1:{port}" for port in ports]
    for n, port in enumerate(ports):
        processes.start(f"api{n}", "serve", "--port", str(port), **tenant, GUANXI__QUEUES__RUN_WORKERS="false")
    async with httpx.AsyncClient(timeout=10) as client:
        for n, url in enumerate(api):
            await wait_healthy(client, url, processes, f"api{n}")
        sockets = [await subscriber(url, key) for url in api]
        websockets_closed.extend(sockets)
        await asyncio.sleep(0.3)  # the subscriptions are registered
        for i in range(N):  # webhooks to both API processes, alternately
            body, headers = webhook(i)
            response = await client.post(f"{api[i % 2]}/webhooks/pigeon/main", content=body, headers=headers)
            assert response.status_code == 200 and response.json() == {"ok": True, "stored": 1, "duplicates": 0}, response.text
    assert await count(runtime, tenant_id, InboxEvent, InboxEvent.status == "pending") == N  # stored, not processed: no worker yet

    markers = [tmp_path / "worker0.marks", tmp_path / "worker1.marks"]
    for n in (0, 1):
        processes.start(
            f"worker{n}",
            "worker",
            **tenant,
            GUANXI__PLUGINS__LOYALTY__INBOUND_DELAY_S=str(DELAY_S),
            GUANXI__PLUGINS__LOYALTY__INBOUND_MARKER_FILE=str(markers[n]),
        )
    # kill worker 0 in its second batch, while it sleeps inside the transaction of the batch's
    # second event: its first batch is committed, the second is not
    deadline = time.monotonic() + 90
    while not (markers[0].exists() and len(markers[0].read_text().split()) >= BATCH + 2):
        assert time.monotonic() < deadline, f"worker0 did not get to its second batch:\n{processes.output('worker0')}"
        assert processes.procs["worker0"].poll() is None, processes.output("worker0")
        await asyncio.sleep(0.01)
    processes.procs["worker0"].send_signal(signal.SIGKILL)
    processes.procs["worker0"].wait(10)
    done_at_kill = await count(runtime, tenant_id, InboxEvent, InboxEvent.status == "done")
    assert 0 < done_at_kill < N, f"the kill should land mid-way ({done_at_kill} of {N} done)"

    deadline = time.monotonic() + 120
    while await count(runtime, tenant_id, InboxEvent, InboxEvent.status == "done") < N:
        assert time.monotonic() < deadline, f"not every event was processed:\n{processes.output('worker1')}"
        assert processes.procs["worker1"].poll() is None, processes.output("worker1")
        await asyncio.sleep(0.2)

    # exactly once: one interaction per event; the killed worker's claimed rows were claimed again
    async with runtime.session(tenant_id) as s:
        texts = sorted((await s.execute(select(Interaction.text).where(Interaction.channel == "pigeon"))).scalars())
        attempts = list((await s.execute(select(InboxEvent.attempts))).scalars())
    expected = sorted(f"event {i}" for i in range(N))
    assert texts == expected
    assert attempts.count(2) >= BATCH, f"the killed worker's batch should have been claimed again: {attempts}"
    worked = {line for marker in markers for line in marker.read_text().split()}
    assert worked == {f"mp-{i}" for i in range(N)}

    # every interaction reached the subscriber of each API process, once
    received: list[set[str]] = [set(), set()]
    deadline = time.monotonic() + 30
    await asyncio.gather(*(collect(ws, got, deadline) for ws, got in zip(sockets, received, strict=True)))
    assert [sorted(got) for got in received] == [expected, expected]
