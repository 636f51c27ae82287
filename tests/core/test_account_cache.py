"""A webhook's account lookup (``accounts.account_by_key``, asked on every delivery) is kept per
process for ``plugins.tenant_cache_s``; a change made in this process applies at once."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import accounts
from guanxi.testing.sql import count_statements
from tests.plugins.wecom.conftest import CORP_KEY, corp_config

pytestmark = pytest.mark.plugins("wecom")


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    return {"wecom": {"api_base_url": "http://127.0.0.1:9/cgi-bin", "max_retries": 0, "corps": [corp_config()]}}


async def test_an_account_is_read_once_and_kept_until_its_time_runs_out(
    runtime: Runtime, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries in a row: the second finds the account without a statement; once
    ``plugins.tenant_cache_s`` has passed (the bound for changes made in another process) it is
    read again."""
    accounts.forget_accounts(runtime)
    with count_statements(runtime.engine) as seen:
        first = await accounts.account_by_key(runtime, "wecom", CORP_KEY)
        reads = len(seen)
        again = await accounts.account_by_key(runtime, "wecom", CORP_KEY)
    assert first is not None and first.tenant_id == tenant_id and again == first
    assert reads == 2 and len(seen) == 2
    later = time.monotonic() + runtime.settings.plugins.tenant_cache_s + 1
    monkeypatch.setattr(accounts.time, "monotonic", lambda: later)
    with count_statements(runtime.engine) as seen:
        assert await accounts.account_by_key(runtime, "wecom", CORP_KEY) == first
    assert len(seen) == 2


async def test_a_secret_saved_or_an_account_deleted_in_this_process_applies_to_the_next_delivery(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """The kept copy goes with the change: a new token is what the next callback is checked
    with, and a deleted account's webhook finds nothing (404)."""
    found = await accounts.account_by_key(runtime, "wecom", CORP_KEY)
    assert found is not None and found.secrets is not None
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await accounts.save_account(tx, "wecom", CORP_KEY, secrets={"token": "a-new-callback-token"})
    changed = await accounts.account_by_key(runtime, "wecom", CORP_KEY)
    assert changed is not None and changed.secrets is not None
    assert changed.secrets.token == "a-new-callback-token"
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await accounts.delete_account(tx, "wecom", CORP_KEY)
    assert await accounts.account_by_key(runtime, "wecom", CORP_KEY) is None
