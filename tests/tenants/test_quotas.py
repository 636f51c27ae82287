"""Quotas: customers, API requests per second and outbound messages per day per channel,
enforced where the work happens, counted in the database so that a limit holds across the
processes of a deployment (a second runtime on the same database stands for another process),
refused with QUOTA_EXCEEDED naming the limit, and visible in GraphQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import QuotaExceededError
from guanxi.core.runtime import Runtime
from guanxi.core.services import quotas, tenants
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, api_key
from tests.access.test_audit import ChatPlugin

pytestmark = pytest.mark.plugins("chat")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chat": ChatPlugin()}


@pytest.fixture
async def slug(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    for t in await tenants.list_tenants(runtime):
        if t.id == tenant_id:
            return t.slug
    raise AssertionError("no tenant")


@pytest.fixture
async def other(runtime: Runtime, database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """Another process of the deployment: a runtime of its own on the same database."""
    config = tmp_path / "other.toml"
    config.write_text("", encoding="utf-8")
    environ = {"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "chat", "GUANXI__AUTH__SECRET": TEST_SECRET}
    rt = Runtime.from_config(config, environ=environ, extra_plugins={"chat": ChatPlugin()})
    try:
        yield rt
    finally:
        await rt.stop()


USAGE = "{ quotaUsage { name limit used window } }"
CREATE = "mutation($n: String!) { createCustomer(input: {displayName: $n}) { customer { id } errors { field code message } } }"


async def test_the_customers_limit_holds_across_processes_and_names_itself(
    runtime: Runtime, other: Runtime, tenant_id: uuid.UUID, slug: str, graphql: Any
) -> None:
    await tenants.set_quotas(runtime, slug, {"customers": 2})
    assert (await graphql(CREATE, {"n": "one"}))["data"]["createCustomer"]["errors"] == []
    async with other.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # the other process creates the second
        await create_customer(tx, CustomerInput(display_name="two"))
    [error] = (await graphql(CREATE, {"n": "three"}))["data"]["createCustomer"]["errors"]
    assert error["code"] == "QUOTA_EXCEEDED" and "customers = 2" in error["message"]
    with pytest.raises(QuotaExceededError, match="customers = 2"):
        async with other.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await create_customer(tx, CustomerInput(display_name="three"))
    usage = (await graphql(USAGE))["data"]["quotaUsage"]
    assert {"name": "customers", "limit": 2, "used": 2, "window": "all time"} in usage
    await tenants.set_quotas(runtime, slug, {"customers": None})  # back to the deployment's: no limit
    assert (await graphql(CREATE, {"n": "three"}))["data"]["createCustomer"]["errors"] == []


async def test_messages_per_day_per_channel_hold_across_processes(
    runtime: Runtime, other: Runtime, tenant_id: uuid.UUID, slug: str, graphql: Any
) -> None:
    from guanxi.core.queues import outbox
    from guanxi.core.services.identities import IdentityInput, attach_identity

    await tenants.set_quotas(runtime, slug, {"messages_per_day": {"chat": 2}})
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        cid = (await create_customer(tx, CustomerInput(display_name="Li"))).id
        await attach_identity(tx, cid, IdentityInput(channel="chat", external_id="c-1"))
    send = (
        'mutation($id: ID!, $k: String!) { sendMessage(customerId: $id, channel: "chat", idempotencyKey: $k, text: "hi")'
        " { errors { code message } } }"
    )
    gid = to_global_id("Customer", cid)
    assert (await graphql(send, {"id": gid, "k": "m1"}))["data"]["sendMessage"]["errors"] == []
    async with other.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # the other process sends the second
        await outbox.send_message(tx, outbox.SendRequest(customer_id=cid, channel="chat", text="hi", idempotency_key="m2"))
    [error] = (await graphql(send, {"id": gid, "k": "m3"}))["data"]["sendMessage"]["errors"]
    assert error["code"] == "QUOTA_EXCEEDED" and "messages_per_day[chat] = 2" in error["message"]
    usage = {u["name"]: u for u in (await graphql(USAGE))["data"]["quotaUsage"]}
    assert (usage["messages_per_day[chat]"]["limit"], usage["messages_per_day[chat]"]["used"]) == (2, 2)


async def test_requests_per_second_hold_across_processes(
    runtime: Runtime, other: Runtime, tenant_id: uuid.UUID, slug: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quotas.time, "time", lambda: 1_800_000_000.25)  # every request in one second
    await tenants.set_quotas(runtime, slug, {"requests_per_s": 3})
    key = await api_key(runtime, tenant_id, "admin")
    headers = {"Authorization": f"Bearer {key}"}
    answers = []
    for rt in (runtime, other, runtime, other):  # two processes of the deployment, two requests each
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, create_app(rt))), base_url=BASE_URL, headers=headers) as c:
            answers.append(await c.post("/graphql", json={"query": "{ enabledPlugins }"}))
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[3].json()["errors"][0]["extensions"]["code"] == "QUOTA_EXCEEDED"
    assert "requests_per_s = 3" in answers[3].json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("quotas_in", "field"),
    [
        ({"customers": -1}, "quotas.customers"),
        ({"storage": 5}, "quotas.storage"),
        ({"messages_per_day": {"chat": "x"}}, "quotas.messages_per_day"),
    ],
)
async def test_bad_quotas_are_refused_naming_the_key(runtime: Runtime, slug: str, quotas_in: dict[str, Any], field: str) -> None:
    from guanxi.core.base.errors import ValidationError

    with pytest.raises(ValidationError) as raised:
        await tenants.set_quotas(runtime, slug, quotas_in)
    assert raised.value.field == field


async def test_no_limit_costs_no_counter_row(runtime: Runtime, tenant_id: uuid.UUID, graphql: Any) -> None:
    from sqlalchemy import func, select

    from guanxi.core.domain.models import TenantUsage

    for n in range(3):
        assert (await graphql(CREATE, {"n": f"c{n}"}))["data"]["createCustomer"]["errors"] == []
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(TenantUsage))).scalar_one() == 0
