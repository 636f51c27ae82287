"""The Prometheus endpoint: HTTP and GraphQL figures, queue figures from the database, access."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from guanxi.app import create_app
from guanxi.core.base.metrics import BoundedLabel
from guanxi.core.domain.channels import InboundEvent, ProfileInput
from guanxi.core.domain.models import InboxEvent
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.testing.plugin import BASE_URL, api_key, use_tenant


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_graphql_operations_count_by_name_with_latency_and_errors_by_code(client: httpx.AsyncClient) -> None:
    """A named query, an anonymous one and a failing one move the request counters of their
    operation names, the latency histogram and the error counter of the error's code; the HTTP
    middleware counts the route by its template."""
    before = await scrape(client)
    for _ in range(2):
        assert (await client.post("/graphql", json={"query": "query MetricsList { customers { totalCount } }"})).status_code == 200
    await client.post("/graphql", json={"query": "{ customers { totalCount } }"})
    bad = await client.post("/graphql", json={"query": 'query MetricsBad { customer(id: "nope") { id } }'})
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_ID"
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("guanxi_graphql_requests_total", operation="MetricsList", outcome="ok") == 2
    assert delta("guanxi_graphql_requests_total", operation="anonymous", outcome="ok") == 1
    assert delta("guanxi_graphql_requests_total", operation="MetricsBad", outcome="error") == 1
    assert delta("guanxi_graphql_request_duration_seconds_count", operation="MetricsList") == 2
    assert delta("guanxi_graphql_errors_total", code="BAD_ID") == 1
    http = delta("guanxi_requests_total", method="POST", path="/graphql", status_code="200", app_name="guanxi")
    assert http == 4
    pool = {dict(labels)["state"]: v for (name, labels), v in after.items() if name == "guanxi_db_pool_connections"}
    assert pool["size"] >= 1 and pool["checked_out"] >= 0


async def test_operation_names_beyond_the_cap_count_as_other(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Clients choose operation names: with ``metrics.max_operation_names = 2`` a third name is
    counted as ``other``, so the label set stays bounded."""
    await use_tenant(runtime, tenant_id)
    runtime.settings = msgspec.structs.replace(
        runtime.settings, metrics=msgspec.structs.replace(runtime.settings.metrics, max_operation_names=2)
    )
    key = await api_key(runtime, tenant_id, "admin")
    names = [f"Op{secrets.token_hex(4)}" for _ in range(3)]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL, headers=headers) as c:
        before = await scrape(c)
        for name in names:
            await c.post("/graphql", json={"query": f"query {name} {{ customers {{ totalCount }} }}"})
        after = await scrape(c)
    assert value(after, "guanxi_graphql_requests_total", operation=names[0], outcome="ok") == 1
    assert value(after, "guanxi_graphql_requests_total", operation=names[1], outcome="ok") == 1
    assert (names[2], "ok") not in {(dict(labels).get("operation"), dict(labels).get("outcome")) for _, labels in after}
    other = ("guanxi_graphql_requests_total", (("operation", "other"), ("outcome", "ok")))
    assert after[other] - before.get(other, 0.0) == 1


def test_a_bounded_label_keeps_the_first_names_and_maps_bad_ones() -> None:
    label = BoundedLabel(2)
    assert [label(n) for n in ("A", "B", "C", "A", None, "", "x y", "a" * 65)] == [
        "A",
        "B",
        "other",
        "A",
        "anonymous",
        "anonymous",
        "invalid",
        "invalid",
    ]


async def test_queue_depth_oldest_age_lag_and_dead_letters_come_from_the_database(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    """Three stored webhooks of a channel show as three waiting inbox rows with an age and a lag;
    one that failed for good is a dead letter; after the worker ran none waits and the done
    counter moved by two."""
    channel = f"m{secrets.token_hex(6)}"
    occurred = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)
    for n in range(3):
        event = InboundEvent(
            channel=channel,
            provider_event_id=f"{channel}-{n}",
            occurred_at=occurred,
            identity=ProfileInput(external_id=f"{channel}-u"),
            kind="message_in",
            text="hi",
        )
        await inbox.ingest(runtime, tenant_id, event)
    first = await scrape(client)
    assert value(first, "guanxi_queue_depth", queue="inbox", channel=channel, state="waiting") == 3
    assert value(first, "guanxi_queue_oldest_age_seconds", queue="inbox", channel=channel) >= 0
    assert ("guanxi_queue_lag_seconds", (("channel", channel), ("queue", "inbox"))) in first
    async with runtime.write_session(tenant_id) as session:
        await session.execute(
            update(InboxEvent).where(InboxEvent.provider_event_id == f"{channel}-0").values(status="failed", last_error="boom")
        )
    done_before = value(first, "guanxi_inbox_events_total", outcome="done")
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 2
    second = await scrape(client)
    assert value(second, "guanxi_queue_depth", queue="inbox", channel=channel, state="waiting") == 0
    assert value(second, "guanxi_queue_dead_letters", queue="inbox", channel=channel) == 1
    assert value(second, "guanxi_inbox_events_total", outcome="done") - done_before == 2


@pytest.mark.parametrize("token", ["", "s3cret-metrics-token"])
async def test_the_endpoint_answers_loopback_scrapers_or_the_token_only(runtime: Runtime, tenant_id: uuid.UUID, token: str) -> None:
    """Without ``metrics.token`` only loopback clients may scrape (403 otherwise); with it, a
    scraper anywhere needs ``Authorization: Bearer <token>`` (401 otherwise, the token never in
    the answer)."""
    await use_tenant(runtime, tenant_id)
    runtime.settings = msgspec.structs.replace(runtime.settings, metrics=msgspec.structs.replace(runtime.settings.metrics, token=token))
    app: Any = create_app(runtime)
    remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    local = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=remote, base_url=BASE_URL) as far, httpx.AsyncClient(transport=local, base_url=BASE_URL) as near:
        if not token:
            assert (await near.get("/metrics")).status_code == 200
            refused = await far.get("/metrics")
            assert refused.status_code == 403 and "loopback" in refused.text
        else:
            for c in (near, far):
                refused = await c.get("/metrics", headers={"Authorization": "Bearer wrong"})
                assert refused.status_code == 401 and token not in refused.text
            assert (await far.get("/metrics", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_metrics_off_means_no_endpoint(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await use_tenant(runtime, tenant_id)
    runtime.settings = msgspec.structs.replace(runtime.settings, metrics=msgspec.structs.replace(runtime.settings.metrics, enabled=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as c:
        assert (await c.get("/metrics")).status_code == 404
