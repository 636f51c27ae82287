"""Process metrics: the Prometheus counters and histograms that core, the API and plugins update.

Metrics live in ``prometheus_client``'s default registry, created once per process by
:func:`counter` and :func:`histogram` (asking again for the same name returns the same metric,
so a module may be imported or a plugin loaded twice). Under ``guanxi serve --workers N`` the
processes write their values to ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any process adds
them up (see ``guanxi/metrics.py``).

Label values must come from a bounded set: channels, outcomes, error codes. Values a client
chooses (GraphQL operation names) go through :class:`BoundedLabel`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram

_LOCK = threading.Lock()
_METRICS: dict[str, Any] = {}

#: seconds: from a cached read (1 ms) to a slow page or a provider call (10 s)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _get_or_create(kind: type[Any], name: str, documentation: str, labelnames: Sequence[str], **kwargs: Any) -> Any:
    with _LOCK:
        metric = _METRICS.get(name)
        if metric is None:
            metric = kind(name, documentation, labelnames=tuple(labelnames), registry=REGISTRY, **kwargs)
            _METRICS[name] = metric
        elif not isinstance(metric, kind) or tuple(metric._labelnames) != tuple(labelnames):
            raise ValueError(f"metric {name!r} already exists with other labels or another type")
        return metric


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    """The process's counter ``name`` (created on first use). Prometheus shows it as ``name_total``."""
    metric: Counter = _get_or_create(Counter, name, documentation, labelnames)
    return metric


def histogram(name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
    """The process's histogram ``name`` (created on first use)."""
    metric: Histogram = _get_or_create(Histogram, name, documentation, labelnames, buckets=tuple(buckets))
    return metric


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class BoundedLabel:
    """Label values chosen by clients, capped: the first ``limit`` distinct values are kept as
    they are, later ones count as ``other``; a missing value is ``anonymous`` and one that is
    not a GraphQL name (or longer than 64 characters) is ``invalid``. Thread-safe."""

    OTHER = "other"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return "anonymous"
        if not _NAME.match(value):
            return "invalid"
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return self.OTHER


# -- core's own metrics -------------------------------------------------------------------------

inbox_events = counter(
    "guanxi_inbox_events",
    "Inbound events a worker finished: done, retry (failed, will be tried again) or failed (for good)",
    ["outcome"],
)
outbox_attempts = counter(
    "guanxi_outbox_attempts",
    "Delivery attempts of outbound messages by channel and outcome: sent, retry or failed (dead letter)",
    ["channel", "outcome"],
)
outbox_send_seconds = histogram("guanxi_outbox_send_seconds", "Time a channel adapter took to send one message", ["channel"])
