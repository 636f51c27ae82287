"""Logging set-up for Guanxi's own loggers (``guanxi.*``), in text or JSON lines.

Every record carries the **request id** and the **tenant** of the work it belongs to, taken from
context variables: the HTTP layer sets the request id (a client's ``X-Request-ID``, or a new
one) and the tenant once the caller is authenticated; the inbox sets the tenant while it stores
or applies an event of it. ``-`` when there is none (start-up, a batch before its tenant is known).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

#: the request id of the work in progress (HTTP request, or a worker's event)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("guanxi_request_id", default=None)
#: the tenant (id, as a string) of the work in progress
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("guanxi_tenant", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id(given: str | None = None) -> str:
    """A client's request id when it is short and plain (letters, digits, ``._:-``, at most 64
    characters), else a new random one: a client cannot put arbitrary text into the logs."""
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


@contextlib.contextmanager
def log_context(*, tenant: object, request_id: str | None = None) -> Iterator[None]:
    """Log lines inside the block name this tenant (and request id, when given)."""
    tenant_token = tenant_var.set(str(tenant))
    rid_token = request_id_var.set(request_id) if request_id is not None else None
    try:
        yield
    finally:
        if rid_token is not None:
            request_id_var.reset(rid_token)
        tenant_var.reset(tenant_token)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant`` to every record (``-`` when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        record.tenant = tenant_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request id,
    tenant, and the traceback as ``exc`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get() or "-",
            "tenant": getattr(record, "tenant", None) or tenant_var.get() or "-",
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            line["trace_id"] = trace_id
        return json.dumps(line, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(tenant)s]: %(message)s"


def configure_logging(level: str, *, trace: bool = False, log_format: str = "text") -> None:
    """Send Guanxi's own log records to stderr at the configured level (``server.log_level``),
    as text or JSON lines (``server.log_format``); ``plugins.trace`` lowers ``guanxi.plugins``
    to debug so hook calls are visible."""
    root = logging.getLogger("guanxi")
    handler = next((h for h in root.handlers if getattr(h, "guanxi", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.guanxi = True  # type: ignore[attr-defined]
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.propagate = False  # the web framework's root handler would print every record again
    root.setLevel(level.upper())
    if trace:
        logging.getLogger("guanxi.plugins").setLevel(logging.DEBUG)
