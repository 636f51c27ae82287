"""GraphQL, CLI and social value (issue 18 items 5–6): ``Customer.douyin`` in a fixed number of
queries, replying to a comment through core's outbound check, the account's fan figures as the
API gives them, ``guanxi douyin accounts``, and one customer across WeCom and Douyin by union_id."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from guanxi import Runtime
from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Identity, Interaction
from guanxi.core.services import consent
from guanxi.graphql.ids import to_global_id
from guanxi.testing.sql import count_statements
from tests.plugins.douyin.conftest import deliver, envelope, im_content, settle, use_tenant_slug
from tests.plugins.douyin.fake_douyin import FakeDouyin

pytestmark = pytest.mark.plugins("douyin")

QUERY = """{ customers(first: 20) { edges { node { displayName douyin {
  openId nickname avatarUrl unionId lastComment { interactionId text itemId commentId at } leadAnswers { label value } } } } } }"""


async def comment(client: httpx.AsyncClient, business: str, customer: str, text: str, n: int) -> None:
    content = {
        "comment_id": f"cm-{n}",
        "comment_user_id": customer,
        "content": text,
        "create_time": 1765000000 + n,
        "reply_to_item_id": "item-1",
    }
    assert (await deliver(client, envelope("item_comment_reply", content, from_user=customer, to_user=business))).status_code == 200


async def test_customer_douyin_shows_the_account_last_comment_and_lead_answers_in_a_fixed_number_of_queries(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, graphql: Any
) -> None:
    await comment(anonymous_client, business, "cust-a", "first", 1)
    await comment(anonymous_client, business, "cust-a", "second", 2)
    lead = {"姓名": "A", "city": "杭州"}
    await deliver(anonymous_client, envelope("website_contact", lead, from_user="cust-a", to_user=business))
    await deliver(anonymous_client, envelope("im_receive_msg", im_content("hi", "cust-b"), from_user="cust-b", to_user=business))
    await settle(runtime, tenant_id)
    await graphql("{ __typename }")
    await runtime.drain()
    with count_statements(runtime.engine) as two:
        body = await graphql(QUERY)
    nodes = {e["node"]["douyin"]["openId"]: e["node"]["douyin"] for e in body["data"]["customers"]["edges"]}
    a, b = nodes["cust-a"], nodes["cust-b"]
    assert a["lastComment"]["text"] == "second" and a["lastComment"]["commentId"] == "cm-2" and a["lastComment"]["itemId"] == "item-1"
    assert a["leadAnswers"] == [{"label": "姓名", "value": "A"}, {"label": "city", "value": "杭州"}]
    assert (b["nickname"], b["lastComment"], b["leadAnswers"]) == ("小王", None, [])
    for n in range(3, 9):
        await deliver(anonymous_client, envelope("im_receive_msg", im_content("hi", f"cust-{n}"), from_user=f"cust-{n}", to_user=business))
    await settle(runtime, tenant_id)
    with count_statements(runtime.engine) as eight:
        body = await graphql(QUERY)
    assert len(body["data"]["customers"]["edges"]) == 8
    assert len(eight) == len(two)


async def test_a_customer_without_douyin_has_null(graphql: Any) -> None:
    await graphql('mutation { createCustomer(input: {displayName: "Offline"}) { errors { message } } }')
    (edge,) = (await graphql(QUERY))["data"]["customers"]["edges"]
    assert edge["node"]["douyin"] is None


REPLY = "mutation($id: ID!, $text: String!) { replyDouyinComment(interactionId: $id, text: $text) { commentId errors { code message } } }"


async def test_replying_to_a_comment_goes_through_the_outbound_check_and_lands_on_the_timeline(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str, graphql: Any, fake_douyin: FakeDouyin
) -> None:
    await comment(anonymous_client, business, "cust-r", "价格?", 1)
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(Interaction).where(Interaction.kind == "comment"))).scalar_one()
    gid = to_global_id("Interaction", row.id)
    payload = (await graphql(REPLY, {"id": gid, "text": "私信您了"}))["data"]["replyDouyinComment"]
    assert payload["errors"] == [] and payload["commentId"]
    assert fake_douyin.called("/item/comment/reply/") == [{"item_id": "item-1", "comment_id": "cm-1", "content": "私信您了"}]
    async with runtime.session(tenant_id) as s:
        out = (await s.execute(select(Interaction).where(Interaction.kind == "comment_reply"))).scalar_one()
    assert (out.direction, out.text, out.customer_id) == ("out", "私信您了", row.customer_id)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await consent.set_consent(tx, row.customer_id, "douyin", "opted_out", source="test")
    refused = (await graphql(REPLY, {"id": gid, "text": "again"}))["data"]["replyDouyinComment"]
    assert refused["errors"][0]["code"] == "NO_CONSENT" and len(fake_douyin.called("/item/comment/reply/")) == 1
    missing = (await graphql(REPLY, {"id": to_global_id("Interaction", uuid.uuid4()), "text": "x"}))["data"]["replyDouyinComment"]
    assert missing["errors"][0]["code"] == "NOT_FOUND"


FANS = "mutation($o: String!) { refreshDouyinFans(openId: $o) { account { totalFans newFans fansDate } errors { code } } }"


async def test_fan_figures_are_what_the_api_gives_for_the_authorized_account(
    runtime: Runtime, business: str, graphql: Any, fake_douyin: FakeDouyin
) -> None:
    before = (await graphql("{ douyinAccounts { totalFans newFans fansDate } }"))["data"]["douyinAccounts"]
    assert before == [{"totalFans": None, "newFans": None, "fansDate": None}]  # unknown until fetched, never made up
    got = (await graphql(FANS, {"o": business}))["data"]["refreshDouyinFans"]
    assert got == {"account": {"totalFans": 3420, "newFans": 20, "fansDate": "2026-12-06"}, "errors": []}
    (query,) = fake_douyin.called("/data/external/user/fans/")
    assert query == {"open_id": business, "date_type": "7"}
    fake_douyin.fans = []
    again = (await graphql(FANS, {"o": business}))["data"]["refreshDouyinFans"]["account"]
    assert again == {"totalFans": 3420, "newFans": 20, "fansDate": "2026-12-06"}  # an empty answer erases nothing
    assert (await graphql(FANS, {"o": "biz-other"}))["data"]["refreshDouyinFans"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_the_accounts_command_lists_accounts_with_their_state(runtime: Runtime, tenant_id: uuid.UUID, business: str) -> None:
    await use_tenant_slug(runtime, tenant_id)
    cli_runtime = Runtime(runtime.settings, runtime.pm, {"douyin": runtime.plugin_settings("douyin")})
    result = await asyncio.to_thread(CliRunner().invoke, build_cli(cli_runtime), ["douyin", "accounts"], obj=cli_runtime)
    assert result.exit_code == 0, result.output
    assert f"{business}  Biz {business}  connected  deployment app  fans unknown" in result.output


@pytest.mark.plugins("douyin", "wecom")
async def test_a_person_met_on_wecom_then_on_douyin_with_the_same_union_id_is_one_customer(
    anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str
) -> None:
    from guanxi.plugins.wecom.events import apply_profile
    from guanxi.plugins.wecom.settings import CorpSettings

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        wecom_customer, _ = await apply_profile(
            tx, CorpSettings(key="acme", corp_id="wwACME"), {"external_userid": "wmUNION1", "name": "周先生", "unionid": "U-42"}, []
        )
    content = im_content("在吗", "cust-u", user_infos=[{"open_id": "cust-u", "nick_name": "周", "union_id": "U-42"}])
    assert (await deliver(anonymous_client, envelope("im_receive_msg", content, from_user="cust-u", to_user=business))).status_code == 200
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        idents = {i.channel: i.customer_id for i in (await s.execute(select(Identity))).scalars()}
    assert idents == {"wecom": wecom_customer, "douyin": wecom_customer}


def test_struct_round_trip_of_settings() -> None:
    from guanxi.plugins.douyin.settings import DouyinSettings

    settings = DouyinSettings(client_key="aw1", client_secret="s")
    assert msgspec.convert(msgspec.to_builtins(settings), DouyinSettings) == settings
    assert DouyinSettings(client_key="aw1").problems() and not settings.problems()


async def test_a_disconnected_account_answers_a_clear_error_code(
    anonymous_client: httpx.AsyncClient, business: str, graphql: Any, fake_douyin: FakeDouyin
) -> None:
    await deliver(anonymous_client, envelope("unauthorize", {}, from_user=business))
    got = (await graphql(FANS, {"o": business}))["data"]["refreshDouyinFans"]
    assert got["account"] is None and got["errors"] == [{"code": "CHANNEL_ACCOUNT_DISCONNECTED"}]
    assert fake_douyin.called("/data/external/user/fans/") == []
