"""GraphQL subscriptions over a real WebSocket (graphql-transport-ws) on a loopback server."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, interactions
from guanxi.graphql.ids import to_global_id
from tests.graphql.conftest import use_tenant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(runtime: Runtime, tenant_id: uuid.UUID) -> AsyncIterator[str]:
    """The app on a real loopback HTTP server in this event loop; yields its ws:// URL."""
    await use_tenant(runtime, tenant_id)
    port = free_port()
    config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(1000):  # up to 10 s
        if srv.started:
            break
        await asyncio.sleep(0.01)
    assert srv.started, "the server did not start"
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


async def subscribe(url: str, query: str, variables: dict[str, Any] | None = None, *, key: str) -> Any:
    """Connect as a browser does: credentials in the connection_init payload, not a header."""
    ws = await websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}))
    await asyncio.sleep(0.2)  # let the server register the subscription
    return ws


async def next_data(ws: Any) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "next", message
    return message["payload"]["data"]  # type: ignore[no-any-return]


async def record(runtime: Runtime, tenant_id: uuid.UUID, customer_id: uuid.UUID, text: str) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await interactions.record_interaction(
            tx, interactions.InteractionInput(customer_id=customer_id, channel="wecom", kind="message_in", text=text)
        )


async def test_interaction_recorded_reaches_a_subscriber_filtered_by_customer(
    runtime: Runtime, tenant_id: uuid.UUID, server: str, admin_key: str
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        watched = await customers.create_customer(tx, customers.CustomerInput(display_name="Watched"))
        other = await customers.create_customer(tx, customers.CustomerInput(display_name="Other"))
    query = "subscription($c: ID) { interactionRecorded(customerId: $c) { kind text customer { displayName } } }"
    ws = await subscribe(server, query, {"c": to_global_id("Customer", watched.id)}, key=admin_key)
    try:
        await record(runtime, tenant_id, other.id, "not for you")
        await record(runtime, tenant_id, watched.id, "你好")
        data = await next_data(ws)
        assert data == {"interactionRecorded": {"kind": "message_in", "text": "你好", "customer": {"displayName": "Watched"}}}
    finally:
        await ws.close()


async def test_a_subscriber_never_sees_another_tenants_events(runtime: Runtime, tenant_id: uuid.UUID, server: str, admin_key: str) -> None:
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.session(None) as s, s.begin():
        other_tenant = await create_tenant(s, f"o-{uuid.uuid4().hex[:8]}", "Other")
    async with runtime.transaction(RequestContext(tenant_id=other_tenant)) as tx:
        stranger = await customers.create_customer(tx, customers.CustomerInput(display_name="Stranger"))
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        mine = await customers.create_customer(tx, customers.CustomerInput(display_name="Mine"))
    ws = await subscribe(server, "subscription { interactionRecorded { text } }", key=admin_key)
    try:
        await record(runtime, other_tenant, stranger.id, "secret of another tenant")
        await record(runtime, tenant_id, mine.id, "mine")
        assert await next_data(ws) == {"interactionRecorded": {"text": "mine"}}
    finally:
        await ws.close()


async def test_events_fan_out_to_every_app_process_through_postgresql(runtime: Runtime, tenant_id: uuid.UUID, database_url: str) -> None:
    """Two runtimes stand for two app processes: an event committed by one reaches a subscriber
    of the other through LISTEN/NOTIFY."""
    if not database_url.startswith("postgresql"):
        pytest.skip("cross-process fan-out uses PostgreSQL LISTEN/NOTIFY; with SQLite events stay in one process")
    from guanxi.core.realtime.publisher import broker_of

    other = Runtime.from_config(environ={"GUANXI_DATABASE_URL": database_url})
    await other.start()
    try:
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            c = await customers.create_customer(tx, customers.CustomerInput(display_name="Fan-out"))
        async with broker_of(other).subscribe("interaction_recorded") as queue:
            await record(runtime, tenant_id, c.id, "from process A")
            envelope = await asyncio.wait_for(queue.get(), 5)
        assert (envelope.tenant_id, envelope.data["text"]) == (tenant_id, "from process A")
    finally:
        await other.stop()


async def test_a_dropped_listen_connection_is_reopened(runtime: Runtime, tenant_id: uuid.UUID, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    from sqlalchemy import text

    from guanxi.core.realtime.publisher import broker_of

    broker = broker_of(runtime)
    pid = broker._pg.get_server_pid()
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    for _ in range(100):
        if broker.listening and broker._pg.get_server_pid() != pid:
            break
        await asyncio.sleep(0.05)
    assert broker.listening
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="After reconnect"))
    async with broker.subscribe("interaction_recorded") as queue:
        await record(runtime, tenant_id, c.id, "still delivered")
        envelope = await asyncio.wait_for(queue.get(), 5)
    assert envelope.data["text"] == "still delivered"


async def test_a_websocket_without_credentials_is_refused(server: str) -> None:
    ws = await websockets.connect(server, subprotocols=[websockets.Subprotocol("graphql-transport-ws")])
    await ws.send(json.dumps({"type": "connection_init"}))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_websocket_may_authenticate_with_a_header(runtime: Runtime, tenant_id: uuid.UUID, server: str, admin_key: str) -> None:
    """Non-browser clients send the Authorization header on the upgrade request instead."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        mine = await customers.create_customer(tx, customers.CustomerInput(display_name="Mine"))
    ws = await websockets.connect(
        server, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], additional_headers={"Authorization": f"Bearer {admin_key}"}
    )
    try:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription { interactionRecorded { text } }"}}))
        await asyncio.sleep(0.2)
        await record(runtime, tenant_id, mine.id, "hello")
        assert await next_data(ws) == {"interactionRecorded": {"text": "hello"}}
    finally:
        await ws.close()


async def test_a_websocket_with_a_bad_key_is_refused_before_the_upgrade(server: str) -> None:
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            server, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], additional_headers={"Authorization": "Bearer gx_bad_key"}
        )
