"""Pigeon against Guanxi's channel contract suite, plus Pigeon's own details.

The fake Pigeon API is a real HTTP server on 127.0.0.1 (a small Litestar app served by uvicorn
in a thread); each test scripts its next answers. The fixtures ``runtime``, ``tenant_id`` and
``client`` come from Guanxi's pytest plugin (``guanxi.testing``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar, Request, Response, post

from guanxi import (
    Channel,
    ContactArrived,
    ContactLeft,
    DeliveryResult,
    EntryPoint,
    EntryPointRequest,
    OutboundMessage,
    Runtime,
    TransientDeliveryError,
    ValidationError,
    collect,
    hookimpl,
    sign,
)
from guanxi.testing import ChannelContract, deliver_outbox, process_inbox

TOKEN = "test-token"
WEBHOOK_SECRET = "test-webhook-secret"


def pigeon_headers(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Pigeon signs a delivery with: HMAC-SHA256 over ``timestamp.body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Pigeon-Timestamp": ts, "X-Pigeon-Signature": sign(WEBHOOK_SECRET, body, timestamp=ts, prefix="sha256=")}


class FakePigeon:
    """Pigeon's ``POST /v1/messages``; answers with the next scripted outcome ("ok" if none)."""

    def __init__(self) -> None:
        self.outcomes: deque[str] = deque()  # ok | rate_limited | server_error | rejected | slow
        self.received: list[dict[str, Any]] = []
        self.url = ""

    def app(self) -> Litestar:
        @post("/v1/messages")
        async def messages(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return Response({"error": "bad_token"}, status_code=401)
            self.received.append({"json": await request.json(), "idempotency_key": request.headers.get("idempotency-key")})
            outcome = self.outcomes.popleft() if self.outcomes else "ok"
            if outcome == "rate_limited":
                return Response({"error": "rate_limited"}, status_code=429, headers={"Retry-After": "7"})
            if outcome == "server_error":
                return Response({"error": "unavailable"}, status_code=503)
            if outcome == "rejected":
                return Response({"error": "recipient_blocked"}, status_code=403)
            if outcome == "slow":
                await asyncio.sleep(1.5)
            return Response({"id": f"pm_{len(self.received)}"}, status_code=201)

        return Litestar([messages])


@pytest.fixture(scope="session")
def pigeon_server() -> Iterator[FakePigeon]:
    fake = FakePigeon()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # any free port
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(fake.app(), lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the fake Pigeon server did not start"
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def fake_pigeon(pigeon_server: FakePigeon) -> FakePigeon:
    """The fake Pigeon, with nothing left over from another test."""
    pigeon_server.outcomes.clear()
    pigeon_server.received.clear()
    return pigeon_server


class TestPigeonContract(ChannelContract):
    channel_name = "pigeon"
    plugins = ("pigeon",)
    webhook_path = "/webhooks/pigeon/main"

    @pytest.fixture
    def fake_provider(self, fake_pigeon: FakePigeon) -> FakePigeon:
        return fake_pigeon

    @pytest.fixture
    def plugin_config(self, fake_pigeon: FakePigeon) -> dict[str, dict[str, Any]]:
        return {"pigeon": {"api_base_url": fake_pigeon.url, "api_token": TOKEN, "webhook_secret": WEBHOOK_SECRET}}

    def arrange_success(self) -> None:
        self.provider.outcomes.append("ok")

    def arrange_transient_failure(self) -> None:
        self.provider.outcomes.append("rate_limited")

    def arrange_permanent_failure(self) -> None:
        self.provider.outcomes.append("rejected")

    def arrange_slow(self) -> None:
        self.provider.outcomes.append("slow")

    def check_delivered(self, message: OutboundMessage, result: DeliveryResult) -> None:
        (request,) = self.provider.received
        assert request == {"json": {"to": message.recipient, "text": message.text}, "idempotency_key": message.idempotency_key}

    def webhook_body(self, event_id: str, sender_id: str) -> bytes:
        event = {"event_id": event_id, "type": "message", "sent_at": "2026-05-01T08:00:00Z", "from": {"id": sender_id}, "text": "Hi"}
        return msgspec.json.encode(event)

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        return pigeon_headers(body, timestamp)

    def receipt_body(self, event_id: str, provider_message_id: str, status: str) -> bytes:
        report = {"event_id": event_id, "type": status, "sent_at": "2026-05-01T08:00:00Z", "message_id": provider_message_id}
        return msgspec.json.encode(report)

    # -- Pigeon's own details, beyond the contract --

    async def test_429_carries_retry_after_and_5xx_is_transient(self, channel: Channel) -> None:
        self.provider.outcomes.extend(["rate_limited", "server_error"])
        with pytest.raises(TransientDeliveryError) as limited:
            await channel.send(self.message())
        assert (limited.value.retry_after_s, limited.value.provider_code) == (7.0, "rate_limited")
        with pytest.raises(TransientDeliveryError):
            await channel.send(self.message())

    async def test_a_stale_timestamp_is_401(self, client: httpx.AsyncClient) -> None:
        body = self.webhook_body("evt-old", "u1")
        response = await client.post("/webhooks/pigeon/main", content=body, headers=self.sign(body, int(time.time()) - 301))
        assert response.status_code == 401

    async def test_a_malformed_body_names_the_problem(self, client: httpx.AsyncClient) -> None:
        event = {"event_id": "e1", "type": "poke", "sent_at": "2026-05-01T08:00:00Z", "from": {"id": "u1"}}
        body = msgspec.json.encode(event)
        response = await client.post("/webhooks/pigeon/main", content=body, headers=self.sign(body))
        assert response.status_code == 400
        assert "`$.type`" in response.json()["detail"]

    async def test_a_follow_becomes_a_follow_interaction(self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
        event = {"event_id": "f1", "type": "follow", "sent_at": "2026-05-01T08:00:00+08:00", "from": {"id": "u9", "name": "Mei"}}
        body = msgspec.json.encode(event)
        assert (await client.post("/webhooks/pigeon/main", content=body, headers=self.sign(body))).status_code == 200
        await process_inbox(runtime, tenant_id=tenant_id)
        (followed,) = await self.interactions(runtime, tenant_id)
        assert (followed.kind, followed.text) == ("follow", None)

    async def test_an_unknown_recipient_report_marks_the_account_unreachable(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        self.arrange_success()
        row = await self.queue(runtime, tenant_id)
        await deliver_outbox(runtime, tenant_id=tenant_id)
        pid = (await self.outbox_row(runtime, tenant_id, row.id)).provider_message_id
        report = {"event_id": "r1", "type": "failed", "sent_at": "2026-05-01T08:00:00Z", "message_id": pid, "error": "unknown_recipient"}
        body = msgspec.json.encode(report)
        assert (await client.post("/webhooks/pigeon/main", content=body, headers=pigeon_headers(body))).status_code == 200
        await process_inbox(runtime, tenant_id=tenant_id)
        failed = await self.outbox_row(runtime, tenant_id, row.id)
        assert (failed.status, failed.last_error) == ("failed", "unknown_recipient")
        with pytest.raises(ValidationError, match="unreachable"):
            await self.queue(runtime, tenant_id, customer_id=row.customer_id)

    async def test_a_report_without_message_id_is_400(self, client: httpx.AsyncClient) -> None:
        body = msgspec.json.encode({"event_id": "r2", "type": "read", "sent_at": "2026-05-01T08:00:00Z"})
        response = await client.post("/webhooks/pigeon/main", content=body, headers=pigeon_headers(body))
        assert response.status_code == 400
        assert "needs `message_id`" in response.json()["detail"]

    async def test_the_url_names_the_account_whose_tenant_and_secret_take_the_webhook(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
    ) -> None:
        """The account key in the URL picks the tenant and the secret (never a default tenant):
        another tenant's account gets its webhook in its own inbox, signed with its own secret;
        an unknown key is 404."""
        from guanxi import RequestContext
        from guanxi.core.services import accounts
        from guanxi.core.services.pipelines import create_tenant

        async with runtime.write_session(None) as session:
            east = await create_tenant(session, f"east-{uuid.uuid4().hex[:8]}", "East")
        async with runtime.transaction(RequestContext(tenant_id=east)) as tx:
            await accounts.save_account(tx, "pigeon", "east", settings={"account_id": "p-east"}, secrets={"webhook_secret": "east-secret"})
        body = self.webhook_body("evt-east", "u-east")
        ts = str(int(time.time()))
        east_headers = {"X-Pigeon-Timestamp": ts, "X-Pigeon-Signature": sign("east-secret", body, timestamp=ts, prefix="sha256=")}
        assert (await client.post("/webhooks/pigeon/east", content=body, headers=self.sign(body))).status_code == 401
        assert (await client.post("/webhooks/pigeon/nowhere", content=body, headers=east_headers)).status_code == 404
        assert (await client.post("/webhooks/pigeon/east", content=body, headers=east_headers)).status_code == 200
        await process_inbox(runtime, tenant_id=east)
        assert [i.text for i in await self.interactions(runtime, east)] == ["Hi"]
        assert await self.interactions(runtime, tenant_id) == []


class Recorder:
    """A stand-in for an attribution plugin: keeps the contact events Pigeon emits."""

    def __init__(self) -> None:
        self.arrived: list[ContactArrived] = []
        self.left: list[ContactLeft] = []

    @hookimpl
    def guanxi_contact_arrived(self, event: ContactArrived) -> None:
        self.arrived.append(event)

    @hookimpl
    def guanxi_contact_left(self, event: ContactLeft) -> None:
        self.left.append(event)


@pytest.mark.plugins("pigeon", "recorder")
class TestPigeonAttribution:
    """Pigeon takes part in attribution: its follow link carries a token as ``state``, and a
    follow that came with one is reported as a contact arrival."""

    @pytest.fixture
    def recorder(self) -> Recorder:
        return Recorder()

    @pytest.fixture
    def extra_plugins(self, recorder: Recorder) -> dict[str, object]:
        return {"recorder": recorder}

    @pytest.fixture
    def plugin_config(self) -> dict[str, dict[str, Any]]:
        return {"pigeon": {"webhook_secret": WEBHOOK_SECRET, "invite_url": "https://pigeon.example/follow"}}

    async def post(self, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, event: dict[str, Any]) -> None:
        body = msgspec.json.encode(event)
        assert (await client.post("/webhooks/pigeon/main", content=body, headers=pigeon_headers(body))).status_code == 200
        await process_inbox(runtime, tenant_id=tenant_id)

    async def test_a_follow_with_state_reports_a_new_contact_with_the_token(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, recorder: Recorder
    ) -> None:
        follow = {"event_id": "s1", "type": "follow", "sent_at": "2026-05-01T08:00:00Z", "from": {"id": "u7"}, "state": "tok_abc123"}
        await self.post(client, runtime, tenant_id, follow)
        (arrived,) = recorder.arrived
        assert (arrived.channel, arrived.external_id, arrived.state, arrived.new_customer) == ("pigeon", "u7", "tok_abc123", True)
        assert arrived.tenant_id == tenant_id
        await self.post(client, runtime, tenant_id, {**follow, "event_id": "s2", "state": None})
        assert [(a.state, a.new_customer) for a in recorder.arrived] == [("tok_abc123", True), (None, False)]

    async def test_a_follow_after_a_message_in_the_same_batch_is_not_a_new_customer(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, recorder: Recorder
    ) -> None:
        for event in (
            {"event_id": "b1", "type": "message", "sent_at": "2026-05-01T08:00:00Z", "from": {"id": "u6"}, "text": "hi"},
            {"event_id": "b2", "type": "follow", "sent_at": "2026-05-01T08:01:00Z", "from": {"id": "u6"}, "state": "tok_abc123"},
        ):
            body = msgspec.json.encode(event)
            assert (await client.post("/webhooks/pigeon/main", content=body, headers=pigeon_headers(body))).status_code == 200
        assert await process_inbox(runtime, tenant_id=tenant_id) == 2  # one batch
        assert [(a.state, a.new_customer) for a in recorder.arrived] == [("tok_abc123", False)]

    async def test_an_unfollow_reports_that_the_contact_left(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, recorder: Recorder
    ) -> None:
        await self.post(
            client, runtime, tenant_id, {"event_id": "l1", "type": "follow", "sent_at": "2026-05-01T08:00:00Z", "from": {"id": "u8"}}
        )
        await self.post(
            client, runtime, tenant_id, {"event_id": "l2", "type": "unfollow", "sent_at": "2026-05-02T08:00:00Z", "from": {"id": "u8"}}
        )
        (left,) = recorder.left
        assert (left.external_id, left.reason, left.customer_id) == ("u8", "unfollowed", recorder.arrived[0].customer_id)

    async def test_a_message_reports_no_arrival(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, recorder: Recorder
    ) -> None:
        message = {"event_id": "m1", "type": "message", "sent_at": "2026-05-01T08:00:00Z", "from": {"id": "u9"}, "text": "hi"}
        await self.post(client, runtime, tenant_id, message)
        assert (recorder.arrived, recorder.left) == ([], [])

    async def test_the_entry_point_is_a_follow_link_carrying_the_token(self, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        request = EntryPointRequest(token="tok_abc123", campaign_id=uuid.uuid4(), campaign_name="Spring")
        async with runtime.session(tenant_id) as session:
            answers = await collect(runtime.pm.hook.guanxi_entry_points, runtime=runtime, session=session, request=request)
        assert answers == [("pigeon", [EntryPoint(channel="pigeon", kind="link", url="https://pigeon.example/follow?state=tok_abc123")])]
