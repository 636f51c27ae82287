"""The Prometheus endpoint (``metrics.path``, ``/metrics``): what a server process exposes.

Three kinds of figures, in Prometheus' text format:

* **process figures** from ``prometheus_client``'s registry: HTTP requests by method, route
  template and status (Litestar's Prometheus middleware, ``guanxi_requests_*``), GraphQL
  operations by operation name, their latency and errors by code (recorded by the schema's
  ``execute``, :mod:`guanxi.graphql.metrics`), inbox outcomes and outbox attempts per channel
  (the workers, :mod:`guanxi.core.base.metrics`), plugins' own (scoring's throughput). Under
  ``guanxi serve --workers N`` every process writes them to ``PROMETHEUS_MULTIPROC_DIR`` and a
  scrape of any process answers for all of them;
* **queue figures** read from the database at each scrape (so every process answers the same,
  and worker processes need no endpoint): depth, oldest age, worker lag and dead letters of the
  inbox and the outbox, per channel;
* **the database pool** of the process that answers.

Access: with ``metrics.token`` set, a scraper sends ``Authorization: Bearer <token>``; without it
only clients on the loopback interface may scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable, Iterator
from typing import Any

from litestar import Request, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Column, and_, func, select

from guanxi.core.base.config import MetricsSettings
from guanxi.core.domain.models import InboxEvent, OutboxMessage, utcnow
from guanxi.core.runtime import Runtime

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: (queue name, table, waiting status, working status, the column a row's age counts from)
QUEUES: tuple[tuple[str, Any, str, str, str], ...] = (
    ("inbox", InboxEvent, "pending", "processing", "received_at"),
    ("outbox", OutboxMessage, "queued", "sending", "created_at"),
)


def http_metrics_middleware(settings: MetricsSettings) -> Any:
    """Litestar's Prometheus middleware: requests, latency and requests in progress by method,
    route template (bounded: never the raw path) and status; the metrics route not counted."""
    config = PrometheusConfig(
        app_name="guanxi",
        prefix="guanxi",
        group_path=True,
        exclude=[settings.path],
        exclude_unhandled_paths=True,
    )
    return config.middleware


def process_metrics() -> bytes:
    """This process's registry, or every server process's under ``PROMETHEUS_MULTIPROC_DIR``."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def queue_families(runtime: Runtime) -> list[Metric]:
    """Depth, oldest age, worker lag and dead letters of both queues, per channel, all tenants."""
    depth = GaugeMetricFamily(
        "guanxi_queue_depth", "Rows waiting (due or retrying) or being worked on", labels=["queue", "channel", "state"]
    )
    oldest = GaugeMetricFamily(
        "guanxi_queue_oldest_age_seconds", "Age of the oldest row waiting or being worked on", labels=["queue", "channel"]
    )
    lag = GaugeMetricFamily(
        "guanxi_queue_lag_seconds", "Worker lag: how long the longest-due row has been due and unclaimed", labels=["queue", "channel"]
    )
    dead = GaugeMetricFamily("guanxi_queue_dead_letters", "Rows that failed for good (status failed)", labels=["queue", "channel"])
    now = utcnow()
    async with runtime.engine.connect() as conn:
        for name, model, waiting, working, since in QUEUES:
            t = model.__table__
            since_col: Column[Any] = t.c[since]
            rows = await conn.execute(
                select(t.c.channel, t.c.status, func.count(), func.min(since_col))
                .where(t.c.status.in_((waiting, working, "failed")))
                .group_by(t.c.channel, t.c.status)
            )
            ages: dict[str, Any] = {}
            for channel, status, count, first in rows:
                if status == "failed":
                    dead.add_metric([name, channel], int(count))
                    continue
                depth.add_metric([name, channel, "waiting" if status == waiting else "working"], int(count))
                if first is not None and (channel not in ages or first < ages[channel]):
                    ages[channel] = first
            for channel, first in ages.items():
                oldest.add_metric([name, channel], max(0.0, (now - first).total_seconds()))
            due = await conn.execute(
                select(t.c.channel, func.min(t.c.next_attempt_at))
                .where(and_(t.c.status == waiting, t.c.next_attempt_at <= now))
                .group_by(t.c.channel)
            )
            for channel, first_due in due:
                lag.add_metric([name, channel], max(0.0, (now - first_due).total_seconds()))
    return [depth, oldest, lag, dead]


def pool_families(runtime: Runtime) -> list[Metric]:
    """The connection pool of this process (pools without counters, like SQLite's in-memory
    one, report nothing)."""
    pool = runtime.engine.sync_engine.pool
    family = GaugeMetricFamily(
        "guanxi_db_pool_connections", "Database connections of this process's pool, by state", labels=["state", "pid"]
    )
    pid = str(os.getpid())
    for state, method in (("checked_out", "checkedout"), ("idle", "checkedin"), ("overflow", "overflow"), ("size", "size")):
        read = getattr(pool, method, None)
        if callable(read):
            family.add_metric([state, pid], float(max(0, read())))  # SQLAlchemy's overflow is negative until the pool is full
    return [family]


async def database_metrics(runtime: Runtime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*await queue_families(runtime), *pool_families(runtime)]))
    return generate_latest(registry)


def _allowed(request: Request[Any, Any, Any], settings: MetricsSettings) -> tuple[int, str] | None:
    """None when the scraper may read the figures, else the status and reason."""
    if settings.token:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), settings.token.encode()):
            return 401, "metrics need Authorization: Bearer <metrics.token>"
        return None
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return 403, "metrics answer only loopback clients unless metrics.token is set"
    return None


def metrics_route(runtime: Runtime) -> Any:
    """The route handler of ``metrics.path``."""
    settings = runtime.settings.metrics

    @get(settings.path, include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        refused = _allowed(request, settings)
        if refused is not None:
            status, reason = refused
            headers = {"www-authenticate": 'Bearer realm="guanxi-metrics"'} if status == 401 else {}
            return Response(reason.encode() + b"\n", status_code=status, media_type="text/plain", headers=headers)
        body = process_metrics() + await database_metrics(runtime)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
