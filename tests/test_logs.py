"""Log lines name their request and tenant; ``server.log_format = "json"`` writes JSON lines."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest

from guanxi.core.base.logs import JsonFormatter, configure_logging, log_context, new_request_id


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Guanxi's handler in JSON mode, writing into a buffer (restored to text afterwards)."""
    root = logging.getLogger("guanxi")
    level, propagate = root.level, root.propagate
    configure_logging("debug", log_format="json")
    (handler,) = [h for h in root.handlers if getattr(h, "guanxi", False)]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(old)
        configure_logging(logging.getLevelName(level).lower() if level else "info")
        root.setLevel(level)
        root.propagate = propagate


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_a_json_line_carries_time_level_logger_message_tenant_request_id_and_the_traceback(json_lines: io.StringIO) -> None:
    tenant = uuid.uuid4()
    with log_context(tenant=tenant, request_id="inbox:42"):
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("guanxi.inbox").exception("batch failed: %s", "王")
    logging.getLogger("guanxi.app").warning("outside")
    first, second = lines(json_lines)
    assert first["level"] == "ERROR" and first["logger"] == "guanxi.inbox" and first["message"] == "batch failed: 王"
    assert (first["tenant"], first["request_id"]) == (str(tenant), "inbox:42")
    assert "ValueError: boom" in str(first["exc"]) and str(first["ts"]).endswith("+00:00")
    assert (second["tenant"], second["request_id"]) == ("-", "-")


def test_a_client_request_id_is_kept_only_when_short_and_plain() -> None:
    assert new_request_id("abc-123.x:y") == "abc-123.x:y"
    for bad in ("", "a" * 65, "has space", 'quote"', "换行\n"):
        generated = new_request_id(bad)
        assert generated != bad and len(generated) == 32


async def test_every_line_of_a_graphql_request_names_its_request_id_and_the_callers_tenant(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, json_lines: io.StringIO
) -> None:
    """The X-Request-ID a client sends comes back and is on the request's log lines, with the
    tenant of the caller's API key; without one, the server makes one."""
    response = await client.post("/graphql", json={"query": "{ customers { nope } }"}, headers={"X-Request-ID": "req-77"})
    assert response.headers["x-request-id"] == "req-77"
    logged = [line for line in lines(json_lines) if line["request_id"] == "req-77"]
    assert logged and all(line["tenant"] == str(tenant_id) for line in logged)
    assert any("GraphQL error" in str(line["message"]) for line in logged)
    other = await client.post("/graphql", json={"query": "{ customers { totalCount } }"})
    assert len(other.headers["x-request-id"]) == 32


def test_the_json_formatter_stands_alone() -> None:
    record = logging.LogRecord("guanxi.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "hello you"
