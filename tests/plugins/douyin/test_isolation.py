"""Tenant isolation of the Douyin plugin: tenant A's business account, comment and app are
invisible to tenant B. An admin key and a sales key of B call every Douyin root field with A's
ids: each answers as if they did not exist (or refuses the role), and the fake Douyin API
receives no call on A's account."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.domain.models import Interaction
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.douyin.graphql import DouyinMutation, DouyinQuery
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.douyin.conftest import deliver, envelope, settle
from tests.plugins.douyin.fake_douyin import FakeDouyin

pytestmark = pytest.mark.plugins("douyin")

#: (root field, operation); ``$open`` is A's business account, ``$id`` A's comment interaction
ATTACKS: list[tuple[str, str]] = [
    ("douyinAccounts", "{ douyinAccounts { openId } }"),
    ("connectDouyinAccount", 'mutation { connectDouyinAccount(app: "own-app") { authorizeUrl errors { code } } }'),
    ("replyDouyinComment", 'mutation($id: ID!) { replyDouyinComment(interactionId: $id, text: "hi") { commentId errors { code } } }'),
    ("refreshDouyinFans", "mutation($open: String!) { refreshDouyinFans(openId: $open) { account { openId } errors { code } } }"),
]


@pytest.fixture
async def other_tenant_keys(runtime: Runtime) -> dict[str, str]:
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    sales = await make_user(runtime, beta, "sales@beta.example", "sales")
    return {"admin": await api_key(runtime, beta, "admin"), "sales": await api_key(runtime, beta, "sales", user_id=sales)}


@pytest.fixture
async def a_comment(anonymous_client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, business: str) -> str:
    content = {"comment_id": "cm-A", "comment_user_id": "cust-A", "content": "A's", "reply_to_item_id": "item-A"}
    assert (
        await deliver(anonymous_client, envelope("item_comment_reply", content, from_user="cust-A", to_user=business))
    ).status_code == 200
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        row = (await s.execute(select(Interaction.id).where(Interaction.kind == "comment"))).scalar_one()
    return to_global_id("Interaction", row)


def test_every_douyin_root_field_is_attacked() -> None:
    """A new Douyin root field cannot skip this suite."""
    fields = {f.python_name for t in (DouyinQuery, DouyinMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel == {name for name, _ in ATTACKS}


@pytest.mark.parametrize("role", ["admin", "sales"])
@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenant_cannot_see_or_use_an_account_it_does_not_own(
    anonymous_client: httpx.AsyncClient,
    other_tenant_keys: dict[str, str],
    fake_douyin: FakeDouyin,
    business: str,
    a_comment: str,
    role: str,
    field: str,
    operation: str,
) -> None:
    before = len(fake_douyin.calls)
    response = await anonymous_client.post(
        "/graphql",
        json={"query": operation, "variables": {k: v for k, v in (("open", business), ("id", a_comment)) if f"${k}:" in operation}},
        headers={"Authorization": f"Bearer {other_tenant_keys[role]}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    payload = (body.get("data") or {}).get(field)
    if field == "douyinAccounts" and not body.get("errors"):
        assert payload == []  # B lists its own accounts: none
    else:
        codes = [e["extensions"]["code"] for e in body.get("errors") or []] + [e["code"] for e in (payload or {}).get("errors") or []]
        assert codes and set(codes) <= {"NOT_FOUND", "FORBIDDEN"}, body
    assert business not in response.text and "cust-A" not in response.text
    assert len(fake_douyin.calls) == before  # nothing reached Douyin on A's account


async def test_the_owning_tenant_still_uses_its_account(graphql: Any, business: str, a_comment: str, fake_douyin: FakeDouyin) -> None:
    listed = (await graphql("{ douyinAccounts { openId } }"))["data"]["douyinAccounts"]
    assert listed == [{"openId": business}]
    reply = 'mutation($id: ID!) { replyDouyinComment(interactionId: $id, text: "hi") { commentId errors { code } } }'
    assert (await graphql(reply, {"id": a_comment}))["data"]["replyDouyinComment"]["errors"] == []
    assert fake_douyin.called("/item/comment/reply/")
