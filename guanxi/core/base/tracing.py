"""Traces: OpenTelemetry, off by default (``[tracing] enabled``).

While tracing is off every helper here is a no-op that costs one flag check. On, one trace
follows a webhook from its HTTP route through the inbox row (the route's W3C ``traceparent`` is
stored on the row), the worker that applies it, the hooks it fires, and any message it queues
(stored on the outbox row) to the channel's send. The SDK and the OTLP exporter come from the
``otel`` extra and are imported only when tracing is switched on.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from guanxi.core.base.errors import ConfigError

if TYPE_CHECKING:
    from guanxi.core.base.config import TracingSettings

log = logging.getLogger("guanxi.tracing")

#: follows the global tracer provider, also one set after this module was imported
TRACER = trace.get_tracer("guanxi")
_state = {"enabled": False}
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def enabled() -> bool:
    return _state["enabled"]


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store on a queue row (None when off)."""
    if not _state["enabled"]:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def continued(traceparent: str | None, name: str, **attributes: Any) -> Iterator[None]:
    """A span continuing the trace stored on a queue row (a new trace when the row has none)."""
    if not _state["enabled"]:
        yield
        return
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    with TRACER.start_as_current_span(name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes):
        yield


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of the current one."""
    if not _state["enabled"]:
        yield
        return
    with TRACER.start_as_current_span(name, attributes=attributes):
        yield


def capture() -> Any:
    """The current context, to re-enter later with :func:`attached` (None when off)."""
    return otel_context.get_current() if _state["enabled"] else None


@contextlib.contextmanager
def attached(saved: Any) -> Iterator[None]:
    if saved is None:
        yield
        return
    token = otel_context.attach(saved)
    try:
        yield
    finally:
        otel_context.detach(token)


def configure(settings: TracingSettings, engine: Any = None) -> None:
    """Switch tracing on for this process: a tracer provider exporting OTLP over HTTP (unless the
    process already has an SDK provider, e.g. a test's), and SQLAlchemy's instrumentation of
    ``engine``."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        raise ConfigError(
            "tracing.enabled needs the OpenTelemetry SDK: install Guanxi with the otel extra (pip install 'guanxi[otel]')"
        ) from None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint) if settings.otlp_endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        log.info("tracing on: OTLP to %s", settings.otlp_endpoint or "the OTEL_EXPORTER_OTLP_* endpoint")
    if engine is not None and engine.sync_engine not in _instrumented:
        instrumentor = SQLAlchemyInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:  # an earlier runtime's engine (tests)
            instrumentor.uninstrument()
        # its version check stops at SQLAlchemy 2.0; the engine events it uses are unchanged in 2.1
        instrumentor.instrument(engine=engine.sync_engine, enable_commenter=False, skip_dep_check=True)
        _instrumented.add(engine.sync_engine)
    _state["enabled"] = True
