"""Radar links: a salesperson shares a material with a customer; the customer's opens are
views on their timeline with read time, the salesperson is notified, forwards stay theirs,
crawlers are previews, tampered tokens record nothing, and the score counts the views."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import Customer, Interaction
from guanxi.core.services.privacy import erase_customer, export_customer_data
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.materials import privacy, radar, scores, tokens
from guanxi.plugins.materials.models import MaterialView, MaterialVisitor
from guanxi.plugins.materials.settings import MaterialsSettings
from guanxi.testing import GraphQL
from tests.plugins.materials.conftest import BROWSER, CREATE, PUBLIC_URL, SHARE, Staff, customer

pytestmark = pytest.mark.plugins("materials")

TIMELINE = """
query($id: ID!) {
  customer(id: $id) { interactions(first: 10, kinds: ["material_view"]) { edges { node { kind channel text payload } } } }
}"""
NOTES = "query { myNotifications { unreadCount items { kind title body linkType } } }"


async def shared(marketing: Staff, sales: Staff, customer_id: uuid.UUID | None) -> dict[str, str]:
    m = (await marketing.gql(CREATE, {"input": {"kind": "article", "title": "Brochure", "body": "<p>Our offer</p>"}}))["data"][
        "createMaterial"
    ]
    variables = {"material": m["material"]["id"], "customer": to_global_id("Customer", customer_id) if customer_id else None}
    body = await sales.gql(SHARE, variables)
    share: dict[str, str] = body["data"]["shareMaterial"]["share"]
    return share


async def count(runtime: Runtime, tenant_id: uuid.UUID, model: type) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_customers_open_is_a_timeline_view_with_read_time_and_notifies_the_sharer(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    share = await shared(marketing, sales, zhao)
    assert share["url"] == f"{PUBLIC_URL}/m/{share['token']}"

    page = await anonymous_client.get(f"/m/{share['token']}", headers={"User-Agent": BROWSER})
    assert page.status_code == 200 and "<p>Our offer</p>" in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    async with runtime.session(tenant_id) as s:
        view = (await s.execute(select(MaterialView))).scalar_one()
    assert view.kind == "view" and view.customer_id == zhao and f'view:"{view.id}"' in page.text

    beacon = f"/m/{share['token']}/beacon"
    for ms, final in ((30_000, False), (95_000, True), (40_000, True), (95_000, True)):  # late and repeated beacons
        r = await anonymous_client.post(beacon, json={"view": str(view.id), "ms": ms, "final": final})
        assert r.status_code == 204, r.text
    timeline = (await sales.gql(TIMELINE, {"id": to_global_id("Customer", zhao)}))["data"]["customer"]["interactions"]["edges"]
    assert [(e["node"]["kind"], e["node"]["text"], e["node"]["payload"]["read_ms"]) for e in timeline] == [
        ("material_view", "Brochure", 95_000)
    ]
    notes = (await sales.gql(NOTES))["data"]["myNotifications"]
    assert notes["unreadCount"] == 1  # one per view, however many final beacons
    assert notes["items"][0]["title"] == "赵女士 read “Brochure” for 1 min 35 s" and notes["items"][0]["linkType"] == "customer"

    too_long = await anonymous_client.post(beacon, json={"view": str(view.id), "ms": 10**9})
    assert too_long.status_code == 204
    async with runtime.session(tenant_id) as s:
        assert (await s.get(MaterialView, (tenant_id, view.id))).read_ms == 600_000  # max_read_s
    bad = await anonymous_client.post(beacon, json={"view": str(view.id), "ms": -1})
    assert bad.status_code == 400 and "ms must not be negative" in bad.text
    garbled = await anonymous_client.post(beacon, content=b"{nope")
    assert garbled.status_code == 400
    unknown = await anonymous_client.post(beacon, json={"view": str(uuid.uuid4()), "ms": 1})
    assert unknown.status_code == 404


@pytest.mark.parametrize("change", ["last", "first", "short", "garbage"])
async def test_a_tampered_token_is_a_404_that_records_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient, change: str
) -> None:
    token = (await shared(marketing, sales, None))["token"]
    flip = {"A": "B"}.get
    tampered = {
        "last": token[:-1] + (flip(token[-1]) or "A"),
        "first": (flip(token[0]) or "A") + token[1:],
        "short": token[:-2],
        "garbage": "../../etc/passwd",
    }[change]
    for method, path in (("GET", f"/m/{tampered}"), ("POST", f"/m/{tampered}/forward"), ("GET", f"/m/{tampered}/file")):
        r = await anonymous_client.request(method, path, headers={"User-Agent": BROWSER})
        assert r.status_code == 404
    assert await count(runtime, tenant_id, MaterialView) == 0
    assert await count(runtime, tenant_id, MaterialVisitor) == 0


async def test_a_link_of_a_tenant_that_disabled_the_plugin_is_a_404_that_records_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    from guanxi.core.services.tenant_plugins import set_plugin_enabled

    token = (await shared(marketing, sales, None))["token"]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await set_plugin_enabled(tx, "materials", False)
    for method, path in (("GET", f"/m/{token}"), ("POST", f"/m/{token}/forward")):
        r = await anonymous_client.request(method, path, headers={"User-Agent": BROWSER})
        assert r.status_code == 404
    assert await count(runtime, tenant_id, MaterialView) == 0
    assert await count(runtime, tenant_id, MaterialVisitor) == 0


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (Linux) WXWork-LinkPreview/4.1",
        "WeChat-LinkPreview/8.0 MMSpider",
        "",
    ],
)
async def test_crawlers_and_link_previews_are_previews_not_views(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient, agent: str
) -> None:
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    token = (await shared(marketing, sales, zhao))["token"]
    page = await anonymous_client.get(f"/m/{token}", headers={"User-Agent": agent})
    assert page.status_code == 200 and "sendBeacon" not in page.text and "gx_mv" not in page.headers.get("set-cookie", "")
    async with runtime.session(tenant_id) as s:
        kinds = (await s.execute(select(MaterialView.kind, MaterialView.customer_id))).all()
        interactions = (await s.execute(select(func.count()).select_from(Interaction))).scalar_one()
    assert kinds == [("preview", None)] and interactions == 0


async def test_a_forward_is_a_child_link_of_the_sharer_and_its_viewer_stays_anonymous_until_identified(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    """The customer opens, forwards to a friend; the friend's view is the sharer's (an anonymous
    visitor, no customer created, nothing on the customer's timeline); once identified, the
    friend's views become theirs."""
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    token = (await shared(marketing, sales, zhao))["token"]
    assert (await anonymous_client.get(f"/m/{token}", headers={"User-Agent": BROWSER})).status_code == 200
    child = await anonymous_client.post(f"/m/{token}/forward")
    assert child.status_code == 201 and child.json()["token"] != token
    async with httpx.AsyncClient(transport=anonymous_client._transport, base_url=str(anonymous_client.base_url)) as friend:
        page = await friend.get(f"/m/{child.json()['token']}", headers={"User-Agent": BROWSER})
        assert page.status_code == 200
        visitor_id = uuid.UUID(page.cookies["gx_mv"])
        # the friend opens it again: the same visitor
        await friend.get(f"/m/{child.json()['token']}", headers={"User-Agent": BROWSER})
    async with runtime.session(tenant_id) as s:
        views = (await s.execute(select(MaterialView).order_by(MaterialView.opened_at))).scalars().all()
        assert (await s.execute(select(func.count()).select_from(Interaction))).scalar_one() == 1  # zhao's only
    assert [v.sharer_id for v in views] == [sales.user_id] * 3
    assert [v.customer_id for v in views] == [zhao, None, None] and views[1].visitor_id == views[2].visitor_id == visitor_id

    qian = await customer(runtime, tenant_id, "钱先生")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        assert await radar.identify(tx, visitor_id, qian, MaterialsSettings()) == 2
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(func.count()).where(MaterialView.customer_id == qian))).scalar_one() == 2


async def test_views_count_in_the_score_component_and_are_exported_and_erased(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    token = (await shared(marketing, sales, zhao))["token"]
    await anonymous_client.get(f"/m/{token}", headers={"User-Agent": BROWSER})
    async with runtime.session(tenant_id) as s:
        view_id = (await s.execute(select(MaterialView.id))).scalar_one()
    await anonymous_client.post(f"/m/{token}/beacon", json={"view": str(view_id), "ms": 150_000})
    async with runtime.session(tenant_id) as s:
        found = await scores.components(s, [zhao, uuid.uuid4()], MaterialsSettings())
    assert [(c.customer_id, c.value, c.reasons) for c in found] == [(zhao, 4.0, ["1 material views x 2", "2 minutes read x 1"])]
    # through core's export and erasure, which call the plugin's hooks
    async with runtime.session(tenant_id) as s:
        exported = (await export_customer_data(runtime, s, zhao))["plugins"]["materials"]
    assert exported["views"][0]["material"] == "Brochure" and exported["views"][0]["read_ms"] == 150_000
    assert exported["visitors"][0]["user_agent"] == BROWSER
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await erase_customer(tx, zhao)
    async with runtime.session(tenant_id) as s:
        assert await privacy.export(s, zhao) is None
        assert (await s.execute(select(func.count()).select_from(MaterialVisitor))).scalar_one() == 0


async def test_a_salesperson_cannot_share_with_a_customer_they_may_not_see(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff
) -> None:
    theirs = await customer(runtime, tenant_id, "孙先生")  # nobody's: not the salesperson's
    m = (await marketing.gql(CREATE, {"input": {"kind": "link", "title": "x", "url": "https://a.example"}}))["data"]["createMaterial"]
    body = await sales.gql(SHARE, {"material": m["material"]["id"], "customer": to_global_id("Customer", theirs)})
    assert body["data"]["shareMaterial"]["errors"][0]["code"] == "NOT_FOUND"
    bad = await sales.gql(SHARE, {"material": "nonsense"})
    assert bad["data"]["shareMaterial"]["errors"][0]["field"] == "materialId"


@pytest.mark.plugins("materials", "pigeon")
async def test_a_forwarded_friend_who_adds_with_the_pages_state_becomes_the_viewer_with_interest_tags(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    marketing: Staff,
    sales: Staff,
    anonymous_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    graphql: GraphQL,
) -> None:
    """The customer forwards the brochure; the friend reads it anonymously, then follows on the
    channel with the state the page carries: the friend's views become theirs, back-filled on
    their timeline at the time they were made, tagged with the brochure's interest tags, and no
    customer was made for the anonymous visit."""
    from tests.plugins.referral.conftest import Pigeon

    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    body = await marketing.gql(CREATE, {"input": {"kind": "article", "title": "Brochure", "body": "<p>x</p>", "tags": ["solar"]}})
    mid = body["data"]["createMaterial"]["material"]["id"]
    token = (await sales.gql(SHARE, {"material": mid, "customer": to_global_id("Customer", zhao)}))["data"]["shareMaterial"]["share"][
        "token"
    ]
    await anonymous_client.get(f"/m/{token}", headers={"User-Agent": BROWSER})
    child = (await anonymous_client.post(f"/m/{token}/forward")).json()["token"]
    async with httpx.AsyncClient(transport=anonymous_client._transport, base_url=str(anonymous_client.base_url)) as friend:
        page = await friend.get(f"/m/{child}", headers={"User-Agent": BROWSER})
    state = radar.visitor_state(uuid.UUID(page.cookies["gx_mv"]))
    assert f'<meta name="guanxi-visitor-state" content="{state}">' in page.text and len(state) <= 30
    async with runtime.session(tenant_id) as s:
        customers_before = (await s.execute(select(func.count()).select_from(Customer))).scalar_one()
    assert customers_before == 1

    await Pigeon(client, runtime, tenant_id).follow("friend-1", state, name="钱先生")
    async with runtime.session(tenant_id) as s:
        friend_id = (await s.execute(select(Customer.id).where(Customer.display_name == "钱先生"))).scalar_one()
        views = (await s.execute(select(MaterialView.customer_id, MaterialView.sharer_id).order_by(MaterialView.opened_at))).all()
    assert views == [(zhao, sales.user_id), (friend_id, sales.user_id)]
    tags = "query($id: ID!) { customer(id: $id) { tags { label } } }"
    for who in (zhao, friend_id):
        found = (await graphql(tags, {"id": to_global_id("Customer", who)}))["data"]["customer"]["tags"]
        assert found == [{"label": "interest/solar"}], found
    timeline = (await graphql(TIMELINE, {"id": to_global_id("Customer", friend_id)}))["data"]["customer"]["interactions"]["edges"]
    [viewed] = [e["node"] for e in timeline]
    assert (viewed["kind"], viewed["text"], viewed["payload"]["before_identified"]) == ("material_view", "Brochure", True)


@pytest.mark.plugins("materials", "pigeon", "referral")
async def test_a_friend_brought_by_a_forward_is_the_forwarders_referral_in_the_forward_campaign(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    marketing: Staff,
    sales: Staff,
    anonymous_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    graphql: GraphQL,
) -> None:
    """Through guanxi_customer_referred: 赵女士 forwards the brochure, 钱先生 opens the forward and
    follows with the page's state; the referral plugin (forward_campaign = "content") attributes
    钱先生 to 赵女士, whose social value counts him; the same arrival again changes nothing."""
    from tests.plugins.referral.conftest import Pigeon, create_campaign

    await create_campaign(graphql, key="content", name="Content forwards")
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    body = await marketing.gql(CREATE, {"input": {"kind": "article", "title": "Brochure", "body": "<p>x</p>"}})
    mid = body["data"]["createMaterial"]["material"]["id"]
    token = (await sales.gql(SHARE, {"material": mid, "customer": to_global_id("Customer", zhao)}))["data"]["shareMaterial"]["share"][
        "token"
    ]
    await anonymous_client.get(f"/m/{token}", headers={"User-Agent": BROWSER})
    child = (await anonymous_client.post(f"/m/{token}/forward")).json()["token"]
    async with httpx.AsyncClient(transport=anonymous_client._transport, base_url=str(anonymous_client.base_url)) as friend:
        page = await friend.get(f"/m/{child}", headers={"User-Agent": BROWSER})
    state = radar.visitor_state(uuid.UUID(page.cookies["gx_mv"]))
    pigeon = Pigeon(client, runtime, tenant_id)
    await pigeon.follow("friend-1", state, name="钱先生")
    await pigeon.follow("friend-1", state, name="钱先生", at="2026-05-03T08:00:00Z")
    async with runtime.session(tenant_id) as s:
        friend_id = (await s.execute(select(Customer.id).where(Customer.display_name == "钱先生"))).scalar_one()
    query = "query($id: ID!) { customer(id: $id) { referredBy { channel campaign customer { displayName } user { email } } } }"
    referred = (await graphql(query, {"id": to_global_id("Customer", friend_id)}))["data"]["customer"]["referredBy"]
    assert referred == {"channel": "materials.forward", "campaign": "content", "customer": {"displayName": "赵女士"}, "user": None}


def test_a_token_verifies_only_under_the_key_it_was_signed_with() -> None:
    """The radar key is derived from the server secret: another deployment's (or a rotated
    secret's) tokens do not verify, and neither does any token that is not 43 base64url chars."""
    share = uuid.uuid4()
    key, other = tokens.derive_key(b"s" * 32), tokens.derive_key(b"t" * 32)
    token = tokens.sign(key, share)
    assert len(token) == tokens.TOKEN_LEN and tokens.verify(key, token) == share
    assert tokens.verify(other, token) is None
    assert tokens.verify(key, token[:-1] + "!") is None and tokens.verify(key, "") is None
    assert key != tokens.derive_key(b"s" * 31 + b"x") and key != b"s" * 32
