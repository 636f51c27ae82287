"""Logging set-up for Guanxi's own loggers (``guanxi.*``)."""

from __future__ import annotations

import logging


def configure_logging(level: str, *, trace: bool = False) -> None:
    """Send Guanxi's own log records to stderr at the configured level (``server.log_level``);
    ``plugins.trace`` lowers ``guanxi.plugins`` to debug so hook calls are visible."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("guanxi")
    if not root.handlers:
        root.addHandler(handler)
    root.propagate = False  # the web framework's root handler would print every record again
    root.setLevel(level.upper())
    if trace:
        logging.getLogger("guanxi.plugins").setLevel(logging.DEBUG)
