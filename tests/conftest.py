"""Shared fixtures come from Guanxi's own testing kit, :mod:`guanxi.testing.plugin`, which pytest
loads through its ``pytest11`` entry point (the same fixtures a plugin's test suite gets):
``database_url`` (SQLite, or PostgreSQL when ``GUANXI_TEST_DATABASE_URL`` names a server;
``GUANXI_TEST_REQUIRE_POSTGRES=1`` forbids the fallback), ``plugin_names`` (the ``plugins``
marker), ``extra_plugins``, ``plugin_config``, ``runtime``, ``tenant_id``, ``ctx``, ``app``,
``client`` and ``graphql``.

Tests isolate from each other by tenant: every test gets its own tenant in a database shared by
the session, which also exercises tenant scoping on every query.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("guanxi"):
        # entry points not loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD, or an environment not synced)
        config.pluginmanager.import_plugin("guanxi.testing.plugin")
