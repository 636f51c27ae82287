"""OAuth and tokens (issue 18 item 3): the authorization URL and callback, refresh before
expiry, renewal of the refresh token within its limit, the shared client token, typed errors
for the three envelope styles, and a tenant's own app next to the deployment app."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.domain.models import utcnow
from guanxi.core.services.pipelines import create_tenant
from guanxi.plugins.douyin import tokens
from guanxi.plugins.douyin.client import (
    DouyinApiError,
    DouyinClient,
    DouyinRefreshExpiredError,
    DouyinRefreshLimitError,
    DouyinTokenExpiredError,
    envelope_error,
    number,
)
from guanxi.plugins.douyin.models import DouyinAuthorization
from guanxi.testing.plugin import api_key
from tests.plugins.douyin.conftest import REDIRECT, connect, deliver, envelope, im_content, settle
from tests.plugins.douyin.fake_douyin import CLIENT_KEY, CLIENT_SECRET, FakeDouyin

pytestmark = pytest.mark.plugins("douyin")

CONNECT = "mutation($app: String) { connectDouyinAccount(app: $app) { authorizeUrl state errors { code field message } } }"


async def test_connecting_an_account_through_the_authorize_url_and_the_callback(
    graphql: Any, anonymous_client: httpx.AsyncClient, fake_douyin: FakeDouyin
) -> None:
    started = (await graphql(CONNECT))["data"]["connectDouyinAccount"]
    assert started["errors"] == []
    url = urlsplit(started["authorizeUrl"])
    assert (url.scheme + "://" + url.netloc, url.path) == (fake_douyin.url, "/platform/oauth/connect/")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query == {
        "client_key": CLIENT_KEY,
        "response_type": "code",
        "scope": "user_info,im.direct_message,item.comment,user.intention,data.external.user",
        "redirect_uri": REDIRECT,
        "state": started["state"],
    }
    open_id = f"biz-{secrets.token_hex(5)}"
    response = await anonymous_client.get("/douyin/oauth/callback", params={"code": f"CODE-{open_id}", "state": started["state"]})
    assert response.status_code == 200, response.text
    assert response.json()["account"] == {"open_id": open_id, "nickname": f"Biz {open_id}", "status": "connected"}
    again = await anonymous_client.get("/douyin/oauth/callback", params={"code": f"CODE-{open_id}", "state": started["state"]})
    assert again.status_code == 400  # the state is single use
    listed = (await graphql("{ douyinAccounts { openId nickname status app scopes } }"))["data"]["douyinAccounts"]
    assert listed == [
        {
            "openId": open_id,
            "nickname": f"Biz {open_id}",
            "status": "CONNECTED",
            "app": None,
            "scopes": ["user_info", "im.direct_message", "item.comment"],
        }
    ]
    secret_free = str(fake_douyin.calls)
    assert CLIENT_SECRET not in secret_free and "act." not in secret_free


async def test_a_bad_code_or_state_is_refused_with_a_reason(graphql: Any, anonymous_client: httpx.AsyncClient) -> None:
    assert (await anonymous_client.get("/douyin/oauth/callback", params={"code": "x", "state": "nope"})).status_code == 400
    assert (await anonymous_client.get("/douyin/oauth/callback")).status_code == 400
    state = (await graphql(CONNECT))["data"]["connectDouyinAccount"]["state"]
    response = await anonymous_client.get("/douyin/oauth/callback", params={"code": "WRONG", "state": state})
    assert response.status_code == 502 and "DOUYIN_10007" in response.text


async def test_an_unknown_app_key_is_a_not_found_error(graphql: Any) -> None:
    payload = (await graphql(CONNECT, {"app": "no-such-app"}))["data"]["connectDouyinAccount"]
    assert payload["errors"][0]["code"] == "NOT_FOUND" and payload["authorizeUrl"] is None


async def _row(runtime: Runtime, tenant_id: uuid.UUID, open_id: str) -> DouyinAuthorization:
    async with runtime.session(tenant_id) as s:
        row = await s.get(DouyinAuthorization, (tenant_id, open_id))
    assert row is not None
    return row


async def _set(runtime: Runtime, tenant_id: uuid.UUID, open_id: str, **values: Any) -> None:
    async with runtime.write_session(tenant_id) as s:
        row = await s.get(DouyinAuthorization, (tenant_id, open_id))
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


async def test_tokens_are_sealed_and_a_token_close_to_expiry_is_refreshed_first(
    runtime: Runtime, tenant_id: uuid.UUID, business: str, fake_douyin: FakeDouyin
) -> None:
    row = await _row(runtime, tenant_id, business)
    assert "act." not in row.tokens and "rft." not in row.tokens  # sealed at rest
    _, first = await tokens.access_token(runtime, tenant_id, business)
    assert fake_douyin.called("/oauth/refresh_token/") == []
    await _set(runtime, tenant_id, business, access_expires_at=utcnow() + dt.timedelta(minutes=5))
    _, second = await tokens.access_token(runtime, tenant_id, business)
    assert second != first and len(fake_douyin.called("/oauth/refresh_token/")) == 1
    assert (await _row(runtime, tenant_id, business)).access_expires_at > utcnow() + dt.timedelta(days=14)  # type: ignore[operator]


async def test_concurrent_callers_refresh_an_expired_token_once(
    runtime: Runtime, tenant_id: uuid.UUID, business: str, fake_douyin: FakeDouyin
) -> None:
    await _set(runtime, tenant_id, business, access_expires_at=utcnow() - dt.timedelta(seconds=1))
    got = await asyncio.gather(*(tokens.access_token(runtime, tenant_id, business) for _ in range(5)))
    assert len({t for _, t in got}) == 1
    assert len(fake_douyin.called("/oauth/refresh_token/")) == 1


async def test_the_refresh_token_is_renewed_near_its_expiry_until_the_renewal_limit(
    runtime: Runtime, tenant_id: uuid.UUID, business: str, fake_douyin: FakeDouyin
) -> None:
    soon = utcnow() + dt.timedelta(days=1)
    await _set(runtime, tenant_id, business, access_expires_at=utcnow(), refresh_expires_at=soon)
    await tokens.access_token(runtime, tenant_id, business)
    row = await _row(runtime, tenant_id, business)
    assert row.renewals == 1 and row.refresh_expires_at > utcnow() + dt.timedelta(days=29)  # type: ignore[operator]
    assert len(fake_douyin.called("/oauth/renew_refresh_token/")) == 1
    # Douyin's own count is used up (10020): the account is disconnected with a clear reason
    fake_douyin.renewals[business] = fake_douyin.max_renewals
    await _set(runtime, tenant_id, business, access_expires_at=utcnow(), refresh_expires_at=soon)
    with pytest.raises(tokens.DouyinDisconnectedError):
        await tokens.access_token(runtime, tenant_id, business)
    row = await _row(runtime, tenant_id, business)
    assert row.status == "disconnected" and "Douyin's limit" in (row.reason or "") and row.tokens == ""


async def test_no_renewal_is_asked_past_the_configured_limit(
    runtime: Runtime, tenant_id: uuid.UUID, business: str, fake_douyin: FakeDouyin
) -> None:
    await _set(runtime, tenant_id, business, access_expires_at=utcnow(), refresh_expires_at=utcnow() + dt.timedelta(days=1), renewals=5)
    await tokens.access_token(runtime, tenant_id, business)  # the refresh token still works: refresh, no renewal
    assert fake_douyin.called("/oauth/renew_refresh_token/") == []
    await _set(runtime, tenant_id, business, access_expires_at=utcnow(), refresh_expires_at=utcnow() - dt.timedelta(seconds=1))
    with pytest.raises(tokens.DouyinDisconnectedError, match="expired"):
        await tokens.access_token(runtime, tenant_id, business)
    assert len(fake_douyin.called("/oauth/refresh_token/")) == 1  # an expired refresh token is not even tried


async def test_the_client_token_is_shared_by_concurrent_callers(fake_douyin: FakeDouyin) -> None:
    async with httpx.AsyncClient() as http:
        client = DouyinClient(CLIENT_KEY, CLIENT_SECRET, base_url=fake_douyin.url, http=http)
        got = await asyncio.gather(*(client.client_token() for _ in range(10)))
        assert set(got) == {"clt.1"} and fake_douyin.client_tokens == 1 == client.client_token_fetches
        bad = DouyinClient(CLIENT_KEY, "wrong", base_url=fake_douyin.url, http=http)
        with pytest.raises(DouyinApiError) as raised:
            await bad.client_token()
        assert raised.value.code == "DOUYIN_10013" and "wrong" not in str(raised.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"error_code": "0", "description": ""}, "extra": {"error_code": 0}}, None),
        ({"data": {"access_token": "act.1", "error_code": 0}, "message": "success"}, None),
        ({"err_no": "0", "err_msg": "", "log_id": "1", "data": {}}, None),
        ({"data": {"error_code": "2190008", "description": "expired"}, "extra": {"error_code": "2190008"}}, 2190008),
        ({"data": {"error_code": 10010, "description": "x"}, "message": "error"}, 10010),
        ({"err_no": 28001008, "err_msg": "token expired", "data": {}}, 28001008),
        ({"data": {"error_code": 0}, "extra": {"error_code": 0, "sub_error_code": 0}, "err_no": "40012"}, 40012),
    ],
)
def test_every_envelope_style_and_string_numbers_are_read(body: dict[str, Any], expected: int | None) -> None:
    found = envelope_error(body)
    assert (found[0] if found else None) == expected


def test_error_codes_become_typed_errors() -> None:
    from guanxi.plugins.douyin.client import _error

    assert isinstance(_error("/x", 2190008, ""), DouyinTokenExpiredError)
    assert isinstance(_error("/x", 28001003, ""), DouyinTokenExpiredError)
    assert isinstance(_error("/x", 10010, ""), DouyinRefreshExpiredError)
    assert isinstance(_error("/x", 10020, ""), DouyinRefreshLimitError)
    assert _error("/x", 10004, "no permission").code == "DOUYIN_10004"
    assert (number("12"), number(" 7 "), number(3.0), number("x"), number(True)) == (12, 7, 3, None, None)


async def test_a_tenants_own_app_takes_webhooks_signed_with_its_secret_for_its_tenant_only(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, fake_douyin: FakeDouyin
) -> None:
    """Tenant B connects its own app (a channel account, secrets sealed) and a business account
    through it; webhooks naming B's client_key are checked with B's secret and land in B."""
    own_key, own_secret = f"aw{secrets.token_hex(6)}", f"own-{secrets.token_hex(8)}"
    fake_douyin.apps[own_key] = own_secret
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{secrets.token_hex(4)}", "Beta")
    key_b = await api_key(runtime, beta, "admin")
    save = "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { account { key } errors { code field } } }"
    account = {"channel": "douyin", "key": "own-app", "settings": {"client_key": own_key}, "secrets": {"client_secret": own_secret}}
    response = await anonymous_client.post(
        "/graphql", json={"query": save, "variables": {"i": account}}, headers={"Authorization": f"Bearer {key_b}"}
    )
    assert response.json()["data"]["saveChannelAccount"]["errors"] == []
    taken = {**account, "key": "steal", "settings": {"client_key": CLIENT_KEY}}
    response = await anonymous_client.post(
        "/graphql", json={"query": save, "variables": {"i": taken}}, headers={"Authorization": f"Bearer {key_b}"}
    )
    assert response.json()["data"]["saveChannelAccount"]["errors"] == [{"code": "VALIDATION", "field": "settings.client_key"}]
    biz = f"biz-{secrets.token_hex(5)}"
    await connect(runtime, beta, biz, app="own-app")
    body = envelope("im_receive_msg", im_content("hi", "cust-b"), from_user="cust-b", to_user=biz, client_key=own_key)
    assert (await deliver(anonymous_client, body)).status_code == 401  # signed with the deployment app's secret
    assert (await deliver(anonymous_client, body, secret=own_secret)).status_code == 200
    await settle(runtime, beta)
    from guanxi.core.domain.models import Identity

    async with runtime.session(beta) as s:
        assert (await s.execute(select(Identity.external_id).where(Identity.channel == "douyin"))).scalars().all() == ["cust-b"]
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(Identity.external_id).where(Identity.channel == "douyin"))).scalars().all() == []
    async with runtime.session(beta) as s:
        row = await s.get(DouyinAuthorization, (beta, biz))
    assert row is not None and (row.app_key, row.client_key) == ("own-app", own_key)
