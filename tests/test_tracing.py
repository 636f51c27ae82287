"""Traces: off by default; on, one trace follows a webhook from its route through the inbox row,
the worker, the hooks and the outbox send it causes (the context is carried on the rows)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from guanxi_pigeon.channel import PigeonChannel
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from guanxi import hookimpl, sign
from guanxi.app import create_app
from guanxi.core.base import tracing
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.channels import DeliveryResult, OutboundMessage
from guanxi.core.domain.events import InteractionRecorded
from guanxi.core.domain.models import InboxEvent, OutboxMessage
from guanxi.core.queues import inbox, outbox
from guanxi.core.runtime import Runtime
from guanxi.testing.plugin import BASE_URL, api_key, use_tenant

pytestmark = pytest.mark.plugins("pigeon", "echo")
SECRET = "pigeon-tracing-secret"


class Echo:
    """Answers every inbound Pigeon message through the outbox (an event hook, after commit)."""

    @hookimpl
    async def guanxi_interaction_recorded(self, runtime: Runtime, event: InteractionRecorded) -> None:
        if event.channel != "pigeon" or event.direction != "in":
            return
        async with runtime.transaction(RequestContext(tenant_id=event.tenant_id)) as tx:
            request = outbox.SendRequest(customer_id=event.customer_id, channel="pigeon", idempotency_key=f"echo-{event.interaction_id}")
            request.text = "收到"
            await outbox.send_message(tx, request)


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"echo": Echo()}


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    return {"pigeon": {"webhook_secret": SECRET}}


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """Spans kept in memory: this process's SDK provider (made once) gets an in-memory exporter."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def provider_sends(monkeypatch: pytest.MonkeyPatch) -> list[OutboundMessage]:
    """Pigeon's HTTP API stands in as a list: the adapter's send records the message."""
    sent: list[OutboundMessage] = []

    async def send(self: PigeonChannel, message: OutboundMessage) -> DeliveryResult:
        sent.append(message)
        return DeliveryResult(provider_message_id=f"pm-{len(sent)}")

    monkeypatch.setattr(PigeonChannel, "send", send)
    return sent


@pytest.fixture
def traced(runtime: Runtime, exporter: InMemorySpanExporter) -> Iterator[Runtime]:
    """The runtime with ``tracing.enabled``, switched on as Runtime.start does; off afterwards."""
    runtime.settings = msgspec.structs.replace(runtime.settings, tracing=msgspec.structs.replace(runtime.settings.tracing, enabled=True))
    tracing.configure(runtime.settings.tracing, runtime.engine)
    exporter.clear()
    try:
        yield runtime
    finally:
        tracing._state["enabled"] = False


def webhook(event_id: str, text: str) -> tuple[bytes, dict[str, str]]:
    body = msgspec.json.encode(
        {"event_id": event_id, "type": "message", "sent_at": dt.datetime.now(dt.UTC).isoformat(), "from": {"id": "u-trace"}, "text": text}
    )
    timestamp = str(int(time.time()))
    return body, {"X-Pigeon-Timestamp": timestamp, "X-Pigeon-Signature": sign(SECRET, body, timestamp=timestamp, prefix="sha256=")}


def names(spans: list[ReadableSpan]) -> list[str]:
    return [s.name for s in spans]


async def test_one_trace_follows_a_webhook_through_the_inbox_worker_hooks_and_the_outbox_send(
    traced: Runtime, tenant_id: uuid.UUID, exporter: InMemorySpanExporter, provider_sends: list[OutboundMessage]
) -> None:
    runtime = traced
    await use_tenant(runtime, tenant_id)
    app: Any = create_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        body, headers = webhook("trace-1", "你好")
        assert (await client.post("/webhooks/pigeon/main", content=body, headers=headers)).status_code == 200
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 1
    assert await outbox.run_once(runtime, outbox.Deliverer(runtime), tenant_id=tenant_id) == 1
    assert [m.text for m in provider_sends] == ["收到"]

    spans = list(exporter.get_finished_spans())
    (route,) = [s for s in spans if s.kind == trace.SpanKind.SERVER and "/webhooks/pigeon/main" in s.name]
    trace_id = route.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    def ancestors(span: ReadableSpan) -> list[ReadableSpan]:
        chain = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            chain.append(span)
        return chain

    (apply,) = [s for s in in_trace if s.name == "guanxi.inbox.apply"]
    (deliver,) = [s for s in in_trace if s.name == "guanxi.outbox.deliver"]
    up_from_send = ancestors(deliver)
    # webhook route -> inbox apply -> the echo plugin's hook (which queued the answer) -> the send
    assert [s.name for s in up_from_send if s.name.startswith(("guanxi.", "POST"))][:3] == [
        "guanxi.hook guanxi_interaction_recorded",
        "guanxi.inbox.apply",
        route.name,
    ]
    assert up_from_send[0].attributes is not None and up_from_send[0].attributes["plugin"] == "echo"
    assert route in ancestors(apply)
    assert deliver.attributes["channel"] == "pigeon"
    assert any(s.attributes and "db.statement" in s.attributes for s in in_trace), names(in_trace)  # SQLAlchemy's spans
    async with runtime.session(tenant_id) as s:
        (stored,) = (await s.execute(select(InboxEvent.trace_context))).scalars()
        (queued,) = (await s.execute(select(OutboxMessage.trace_context))).scalars()
    assert stored is not None and stored.split("-")[1] == format(trace_id, "032x")
    assert queued is not None and queued.split("-")[1] == format(trace_id, "032x")


async def test_graphql_operations_get_strawberrys_spans_while_tracing_is_on(
    traced: Runtime, tenant_id: uuid.UUID, exporter: InMemorySpanExporter
) -> None:
    await use_tenant(traced, tenant_id)
    key = await api_key(traced, tenant_id, "admin")
    app: Any = create_app(traced)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers) as client:
        response = await client.post("/graphql", json={"query": "query Traced { customers { totalCount } }"})
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}
    spans = names(list(exporter.get_finished_spans()))
    assert any("GraphQL" in name for name in spans), spans


async def test_tracing_is_off_by_default_and_rows_carry_no_context(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    assert runtime.settings.tracing.enabled is False and not tracing.enabled()
    await use_tenant(runtime, tenant_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as client:
        body, headers = webhook("untraced-1", "hi")
        assert (await client.post("/webhooks/pigeon/main", content=body, headers=headers)).status_code == 200
    async with runtime.session(tenant_id) as s:
        assert list((await s.execute(select(InboxEvent.trace_context))).scalars()) == [None]
