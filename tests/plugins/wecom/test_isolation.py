"""Tenant isolation of the WeCom plugin's own resources: a corp configured for one tenant is
invisible to every other tenant. An admin key and a sales key of tenant B call every WeCom root
field with tenant A's corp key (and with no key): each answers as if the corp did not exist, and
the fake WeCom server receives no call at all (so nothing is read from or sent on A's corp)."""

from __future__ import annotations

import uuid
from typing import Any, cast

import httpx
import pytest

from guanxi import Runtime
from guanxi.core.services.pipelines import create_tenant
from guanxi.plugins.wecom.graphql import WecomMutation, WecomQuery
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.wecom.conftest import CORP_KEY
from tests.plugins.wecom.fake_wecom import FakeWecom

pytestmark = pytest.mark.plugins("wecom")

#: (root field, operation); ``$corp`` is tenant A's corp key or null
ATTACKS: list[tuple[str, str]] = [
    ("wecomMassSendResult", 'query($corp: String) { wecomMassSendResult(msgid: "msgA", corp: $corp) { externalUserid } }'),
    (
        "createWecomContactWay",
        'mutation($corp: String) { createWecomContactWay(userid: "zhangsan", corp: $corp) { contactWay { qrCode } errors { code } } }',
    ),
    ("syncWecomTags", "mutation($corp: String) { syncWecomTags(corp: $corp) { sync { pulled } errors { code } } }"),
    (
        "wecomMassSend",
        'mutation($corp: String) { wecomMassSend(text: "hi", tag: "vip/x", corp: $corp) { massSend { msgid } errors { code } } }',
    ),
]


@pytest.fixture
async def other_tenant_keys(runtime: Runtime) -> dict[str, str]:
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    sales = await make_user(runtime, beta, "sales@beta.example", "sales")
    return {"admin": await api_key(runtime, beta, "admin"), "sales": await api_key(runtime, beta, "sales", user_id=sales)}


def test_every_wecom_root_field_is_attacked() -> None:
    """A new WeCom root field cannot skip this suite."""
    fields = {f.python_name for t in (WecomQuery, WecomMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    attacked = {name for name, _ in ATTACKS}
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel - attacked == set()


@pytest.mark.parametrize("role", ["admin", "sales"])
@pytest.mark.parametrize("corp", [CORP_KEY, None])
@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenant_cannot_use_a_corp_it_does_not_own(
    anonymous_client: httpx.AsyncClient,
    other_tenant_keys: dict[str, str],
    fake_wecom: FakeWecom,
    role: str,
    corp: str | None,
    field: str,
    operation: str,
) -> None:
    response = await anonymous_client.post(
        "/graphql",
        json={"query": operation, "variables": {"corp": corp}},
        headers={"Authorization": f"Bearer {other_tenant_keys[role]}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    payload = (body.get("data") or {}).get(field)
    codes = [e["extensions"]["code"] for e in body.get("errors") or []] + [e["code"] for e in (payload or {}).get("errors") or []]
    assert codes and set(codes) <= {"NOT_FOUND", "FORBIDDEN"}, body
    assert "acme" not in str(body).replace(f"{CORP_KEY!r}", "") or corp == CORP_KEY  # A's corp is not listed to B
    assert fake_wecom.calls == []  # nothing reached WeCom on A's corp


async def test_the_owning_tenant_still_uses_its_corp(graphql: Any, fake_wecom: FakeWecom) -> None:
    body = await graphql('mutation { createWecomContactWay(userid: "zhangsan", corp: "acme") { contactWay { qrCode } errors { code } } }')
    assert body["data"]["createWecomContactWay"]["errors"] == []
    assert any("add_contact_way" in path for path, _, _ in fake_wecom.calls)


async def test_corps_are_channel_account_rows_found_through_the_tenant_chokepoint(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, other_tenant_keys: dict[str, str], fake_wecom: FakeWecom
) -> None:
    """Tenant B connects its own corp through GraphQL: A's corp (imported from the config file)
    and B's are rows of their tenants; each tenant's corp lookup sees only its own; B's attacks
    on A's account row (list, overwrite, take its corp id, delete) change nothing."""
    from guanxi.core.services import accounts
    from guanxi.plugins.wecom.service import tenant_corps

    headers = {"Authorization": f"Bearer {other_tenant_keys['admin']}"}

    async def as_b(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await anonymous_client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        assert response.status_code == 200, response.text
        return cast(dict[str, Any], response.json())

    save = "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { account { key } errors { code field } } }"
    own = {"channel": "wecom", "key": f"b-{uuid.uuid4().hex[:8]}", "settings": {"corp_id": f"wwB{uuid.uuid4().hex[:8]}"}}
    assert (await as_b(save, {"i": own}))["data"]["saveChannelAccount"]["errors"] == []
    [a_before] = await accounts.tenant_accounts(runtime, tenant_id, "wecom")
    listed = (await as_b('{ channelAccounts(channel: "wecom") { key providerId } }'))["data"]["channelAccounts"]
    assert listed == [{"key": own["key"], "providerId": own["settings"]["corp_id"]}]
    overwrite = await as_b(save, {"i": {"channel": "wecom", "key": CORP_KEY, "settings": {"corp_id": "wwSTOLEN"}}})
    assert overwrite["data"]["saveChannelAccount"]["errors"] == [{"code": "CONFLICT", "field": "key"}]
    take = await as_b(save, {"i": {**own, "settings": {"corp_id": a_before.provider_id}}})
    assert take["data"]["saveChannelAccount"]["errors"] == [{"code": "CONFLICT", "field": "settings.corp_id"}]
    gone = await as_b(f'mutation {{ deleteChannelAccount(channel: "wecom", key: "{CORP_KEY}") {{ errors {{ code }} }} }}')
    assert gone["data"]["deleteChannelAccount"]["errors"] == [{"code": "NOT_FOUND"}]
    [a_after] = await accounts.tenant_accounts(runtime, tenant_id, "wecom")
    assert a_after == a_before
    assert [c.key for c in await tenant_corps(runtime, tenant_id)] == [CORP_KEY]
    assert fake_wecom.calls == []
