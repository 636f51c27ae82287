"""The server API client against the fake WeCom server: token caching with a single flight,
an expired token mid-run (42001), rate limiting (45009), busy (-1), typed permanent errors,
cursor paging, and no secret in any log or error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from guanxi.plugins.wecom.client import WecomApiError, WecomBusyError, WecomClient, WecomRateLimitedError, WecomTokenError
from tests.plugins.wecom.fake_wecom import CORP_ID, SECRET, FakeWecom


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as h:
        yield h


def make(fake: FakeWecom, http: httpx.AsyncClient, *, secret: str = SECRET, max_retries: int = 2) -> WecomClient:
    return WecomClient(CORP_ID, secret, base_url=fake.url, http=http, backoff_s=0.01, max_retries=max_retries)


async def test_one_token_is_fetched_for_many_concurrent_calls(fake_wecom: FakeWecom, http: httpx.AsyncClient) -> None:
    client = make(fake_wecom, http)
    await asyncio.gather(*(client.follow_users() for _ in range(20)))
    assert client.token_fetches == 1 and fake_wecom.tokens == ["ACCESS-TOKEN-1"]


async def test_an_expired_token_mid_run_is_refetched_once_and_the_call_retried(fake_wecom: FakeWecom, http: httpx.AsyncClient) -> None:
    client = make(fake_wecom, http)
    await client.follow_users()
    fake_wecom.expire_tokens()  # WeCom invalidated the token early: 42001
    results = await asyncio.gather(*(client.follow_users() for _ in range(5)))
    assert results == [[]] * 5
    assert fake_wecom.tokens == ["ACCESS-TOKEN-1", "ACCESS-TOKEN-2"]  # one refetch for all five callers


async def test_a_token_refused_twice_in_a_row_is_not_refetched_forever(fake_wecom: FakeWecom, http: httpx.AsyncClient) -> None:
    client = make(fake_wecom, http)
    fake_wecom.fail("/externalcontact/get_follow_user_list", 40014, times=2)
    with pytest.raises(WecomApiError) as raised:
        await client.follow_users()
    assert raised.value.errcode == 40014 and not raised.value.transient
    assert len(fake_wecom.tokens) == 2


async def test_45009_backs_off_and_retries_then_gives_up_as_transient(fake_wecom: FakeWecom, http: httpx.AsyncClient) -> None:
    client = make(fake_wecom, http, max_retries=2)
    fake_wecom.fail("/externalcontact/get_follow_user_list", 45009, times=2)
    assert await client.follow_users() == []
    assert len(fake_wecom.called("/externalcontact/get_follow_user_list")) == 3
    fake_wecom.fail("/externalcontact/get_follow_user_list", 45009, times=3)
    with pytest.raises(WecomRateLimitedError) as raised:
        await client.follow_users()
    assert raised.value.transient and raised.value.errcode == 45009 and raised.value.retry_after_s


async def test_busy_minus_one_is_retried(fake_wecom: FakeWecom, http: httpx.AsyncClient) -> None:
    client = make(fake_wecom, http, max_retries=1)
    fake_wecom.fail("/externalcontact/list_contact_way", -1)
    assert await client.list_contact_ways() == []
    fake_wecom.fail("/externalcontact/list_contact_way", -1, times=2)
    with pytest.raises(WecomBusyError):
        await client.list_contact_ways()


@pytest.mark.parametrize("errcode", [40096, 48002, 60011, 84061, 41050])
async def test_other_errcodes_are_permanent_typed_errors_without_retry(
    fake_wecom: FakeWecom, http: httpx.AsyncClient, errcode: int
) -> None:
    client = make(fake_wecom, http)
    fake_wecom.fail("/externalcontact/send_welcome_msg", errcode)
    with pytest.raises(WecomApiError) as raised:
        await client.send_welcome_msg("code", "hi")
    assert raised.value.errcode == errcode and not raised.value.transient
    assert len(fake_wecom.called("/externalcontact/send_welcome_msg")) == 1


async def test_a_wrong_secret_fails_without_showing_it_in_errors_or_logs(
    fake_wecom: FakeWecom, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make(fake_wecom, http, secret="WRONG-SECRET-123")
    with pytest.raises(WecomTokenError) as raised:
        await client.follow_users()
    assert raised.value.errcode == 40001
    good = make(fake_wecom, http)
    fake_wecom.fail("/externalcontact/get_follow_user_list", 45009)
    await good.follow_users()
    fake_wecom.expire_tokens()
    await good.follow_users()
    text = caplog.text + str(raised.value) + repr(good)
    for secret in ("WRONG-SECRET-123", SECRET, *fake_wecom.tokens):
        assert secret not in text


async def test_batch_get_by_user_follows_the_cursor_and_get_joins_follower_pages(fake_wecom: FakeWecom, http: httpx.AsyncClient) -> None:
    def batch(query: dict[str, str], body: Any) -> dict[str, Any]:
        page = {"": ("c1", ["wm1", "wm2"]), "c1": ("", ["wm3"])}[body["cursor"]]
        items = [{"external_contact": {"external_userid": e, "name": e}, "follow_info": {"userid": "zhangsan"}} for e in page[1]]
        return {"errcode": 0, "errmsg": "ok", "external_contact_list": items, "next_cursor": page[0]}

    def detail(query: dict[str, str], body: Any) -> dict[str, Any]:
        cursor = query.get("cursor", "")
        return {
            "errcode": 0,
            "external_contact": {"external_userid": "wm1"},
            "follow_user": [{"userid": f"u{cursor or 0}"}],
            "next_cursor": "" if cursor else "n1",
        }

    fake_wecom.responses["/externalcontact/batch/get_by_user"] = batch
    fake_wecom.responses["/externalcontact/get"] = detail
    client = make(fake_wecom, http)
    pages = [[i["external_contact"]["external_userid"] for i in page] async for page in client.batch_get_by_user(["zhangsan"])]
    assert pages == [["wm1", "wm2"], ["wm3"]]
    assert [b["userid_list"] for b in fake_wecom.called("/externalcontact/batch/get_by_user")] == [["zhangsan"], ["zhangsan"]]
    assert [f["userid"] for f in (await client.get_external_contact("wm1"))["follow_user"]] == ["u0", "un1"]


async def test_contact_way_get_list_delete_and_mass_send_result_use_the_documented_bodies(
    fake_wecom: FakeWecom, http: httpx.AsyncClient
) -> None:
    fake_wecom.responses["/externalcontact/get_contact_way"] = {"errcode": 0, "contact_way": {"config_id": "cfg-9", "state": "s9"}}
    fake_wecom.responses["/externalcontact/list_contact_way"] = lambda query, body: {
        "errcode": 0,
        "contact_way": [{"config_id": f"cfg-{body['cursor'] or 'a'}"}],
        "next_cursor": "" if body["cursor"] else "b",
    }
    fake_wecom.responses["/externalcontact/get_group_msg_result"] = {"errcode": 0, "detail_list": [{"external_userid": "wm1", "status": 1}]}
    client = make(fake_wecom, http)
    assert (await client.get_contact_way("cfg-9"))["state"] == "s9"
    assert await client.list_contact_ways(limit=1) == ["cfg-a", "cfg-b"]
    await client.del_contact_way("cfg-9")
    assert (await client.group_msg_result("msg-1"))["detail_list"][0]["status"] == 1
    assert fake_wecom.called("/externalcontact/del_contact_way") == [{"config_id": "cfg-9"}]
    assert fake_wecom.called("/externalcontact/list_contact_way") == [{"cursor": "", "limit": 1}, {"cursor": "b", "limit": 1}]
