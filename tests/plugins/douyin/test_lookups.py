"""The webhook's per-request lookups (issue 18 follow-up 3): the app a client_key names and the
tenant an event is addressed to are cached per process, so a delivery costs one statement (the
inbox row); a revocation, a connection or a failed signature of a tenant's app drops them."""

from __future__ import annotations

import secrets
import uuid

import httpx
import pytest

from guanxi import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.testing.plugin import api_key
from guanxi.testing.sql import count_statements
from tests.plugins.douyin.conftest import connect, deliver, envelope, im_content
from tests.plugins.douyin.fake_douyin import FakeDouyin

pytestmark = pytest.mark.plugins("douyin")


async def statements_of(runtime: Runtime, client: httpx.AsyncClient, body: bytes, *, secret: str | None = None, status: int = 200) -> int:
    with count_statements(runtime.engine) as seen:
        response = await deliver(client, body, secret=secret) if secret else await deliver(client, body)
    assert response.status_code == status, response.text
    return len(seen)


def message(n: int, business: str, client_key: str | None = None) -> bytes:
    extra = {"client_key": client_key} if client_key else {}
    return envelope("im_receive_msg", im_content(f"hi {n}", "cust-l", message_id=f"m-{n}"), from_user="cust-l", to_user=business, **extra)


async def test_a_webhook_of_the_deployment_app_costs_one_statement_once_its_account_is_known_and_unauthorize_forgets_it(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, business: str
) -> None:
    first = await statements_of(runtime, anonymous_client, message(0, business))
    assert first == 2  # the authorization addressed, the inbox row
    assert [await statements_of(runtime, anonymous_client, message(n, business)) for n in (1, 2, 3)] == [1, 1, 1]
    other = envelope("im_receive_msg", im_content("hello", "cust-new", message_id="m-x"), from_user="cust-new", to_user=business)
    assert await statements_of(runtime, anonymous_client, other) == 1  # a customer never seen: the account is known
    revoke = envelope("unauthorize", {"scopes": []}, from_user=business, to_user=business)
    assert (await deliver(anonymous_client, revoke)).status_code == 200
    assert await statements_of(runtime, anonymous_client, message(4, business)) == 2  # looked up again
    assert await statements_of(runtime, anonymous_client, message(5, business)) == 1


async def test_a_tenants_own_app_is_cached_too_and_a_rotated_secret_is_read_afresh_after_one_refusal(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, fake_douyin: FakeDouyin
) -> None:
    app_key, own_key = f"own-{secrets.token_hex(4)}", f"aw{secrets.token_hex(6)}"
    old_secret, new_secret = f"old-{secrets.token_hex(8)}", f"new-{secrets.token_hex(8)}"
    fake_douyin.apps[own_key] = old_secret
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{secrets.token_hex(4)}", "Beta")
    auth = {"Authorization": f"Bearer {await api_key(runtime, beta, 'admin')}"}
    save = "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { errors { code field } } }"

    async def save_app(secret: str) -> None:
        account = {"channel": "douyin", "key": app_key, "settings": {"client_key": own_key}, "secrets": {"client_secret": secret}}
        response = await anonymous_client.post("/graphql", json={"query": save, "variables": {"i": account}}, headers=auth)
        assert response.json()["data"]["saveChannelAccount"]["errors"] == []

    await save_app(old_secret)
    biz = f"biz-{secrets.token_hex(5)}"
    await connect(runtime, beta, biz, app=app_key)
    assert await statements_of(runtime, anonymous_client, message(0, biz, own_key), secret=old_secret) > 2  # the app, then the account
    assert await statements_of(runtime, anonymous_client, message(1, biz, own_key), secret=old_secret) == 1
    await save_app(new_secret)
    rotated = message(2, biz, own_key)
    await statements_of(runtime, anonymous_client, rotated, secret=new_secret, status=401)  # this process still had the old one
    await statements_of(runtime, anonymous_client, rotated, secret=new_secret)  # Douyin's retry: read afresh
    assert await statements_of(runtime, anonymous_client, message(3, biz, own_key), secret=new_secret) == 1
    await statements_of(runtime, anonymous_client, message(4, biz, own_key), secret=old_secret, status=401)
