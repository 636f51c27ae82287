"""Guanxi's kit for testing plugins: pytest fixtures and the channel contract suite.

Installing Guanxi registers the pytest plugin :mod:`guanxi.testing.plugin` (entry point
``pytest11``: ``guanxi``), so a plugin's test suite gets these fixtures without a conftest:

* ``database_url`` (session): an empty database for the run, SQLite in a temporary folder, or a
  fresh ``guanxi_test_<random>`` database on the PostgreSQL server named by
  ``GUANXI_TEST_DATABASE_URL`` (dropped at the end). ``GUANXI_TEST_REQUIRE_POSTGRES=1`` fails the
  run when that variable is missing instead of falling back to SQLite.
* ``own_database_url``: an empty database of the test alone, of the same kind (for a test of
  what workers do across every tenant, where other tests' rows would be in the way).
* ``runtime``: a started :class:`~guanxi.core.runtime.Runtime` on that database, migrated for the
  enabled plugins. Enable plugins with ``@pytest.mark.plugins("name", ...)``, give them settings
  by overriding ``plugin_config`` (``{"name": {"key": value}}``), register uninstalled plugin
  objects by overriding ``extra_plugins``.
* ``tenant_id``: a fresh tenant for the test alone; ``ctx``: a ``RequestContext`` for it.
* ``app``: the HTTP application (``guanxi.app.create_app``) acting in the test's tenant;
  ``client``: an ``httpx.AsyncClient`` on it (``http://testserver.local``); ``graphql``:
  ``await graphql(query, variables=None, ok=True)`` returns the decoded body.

The fixtures are ``async``: install ``pytest-asyncio`` and set ``asyncio_mode = "auto"`` in your
pytest configuration (the kit also declares them through ``pytest_asyncio.fixture``, so strict
mode works for the fixtures, but your own tests then need ``@pytest.mark.asyncio``). ``client``
and ``graphql`` need ``httpx``. Nothing in the kit is autouse: a project that does not request
its fixtures is not affected by it.

``process_inbox(runtime, tenant_id=…)`` and ``deliver_outbox(runtime, tenant_id=…)`` run one batch
of the durable inbox and outbox in the test (the app fixtures start no background workers).

The channel contract suite, :class:`guanxi.testing.contract.ChannelContract`, is a base class a
channel plugin subclasses in its own tests (see ``docs/plugins/guide.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guanxi.core.queues.inbox import run_once as process_inbox
    from guanxi.core.queues.outbox import run_once as deliver_outbox
    from guanxi.testing.contract import ChannelContract, WebhookRequest
    from guanxi.testing.plugin import GraphQL, use_tenant

__all__ = ["ChannelContract", "GraphQL", "WebhookRequest", "deliver_outbox", "process_inbox", "use_tenant"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so loading the pytest plugin stays cheap.
    if name in ("ChannelContract", "WebhookRequest"):
        from guanxi.testing import contract

        return getattr(contract, name)
    if name in ("GraphQL", "use_tenant"):
        from guanxi.testing import plugin

        return getattr(plugin, name)
    if name == "process_inbox":
        from guanxi.core.queues import inbox

        return inbox.run_once
    if name == "deliver_outbox":
        from guanxi.core.queues import outbox

        return outbox.run_once
    raise AttributeError(f"module 'guanxi.testing' has no attribute {name!r}")
