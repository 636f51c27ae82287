"""Mini-program cards (小程序卡片): a material with an app id, a page and an uploaded cover; its
share carries a card whose page opens with the radar token, and the mini-program reports the
opening to POST /m/<token>/open, which records a view on the customer's timeline like a page."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.materials.models import MaterialView
from tests.plugins.materials.conftest import BROWSER, PNG, PUBLIC_URL, Staff, customer
from tests.plugins.materials.test_docs import BLOCKS

pytestmark = pytest.mark.plugins("materials")

# the documented operation (docs/plugins/materials.md), run for real here
(SHARE_CARD,) = [b for b in BLOCKS if "mutation ShareCard" in b]
APPID = "wx1234567890abcdef"


async def upload_card(client: httpx.AsyncClient, staff: Staff, **fields: str) -> httpx.Response:
    data = {"kind": "miniprogram", "title": "新品小程序", "appid": APPID, "page_path": "pages/product/index?id=42", **fields}
    return await client.post("/materials/upload", files={"file": ("cover.png", PNG, "image/png")}, data=data, headers=staff.headers)


async def test_a_shared_card_opens_its_page_with_the_token_and_the_apps_open_is_a_timeline_view(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient, files: object
) -> None:
    made = await upload_card(anonymous_client, marketing)
    assert made.status_code == 201, made.text
    material = to_global_id("Material", uuid.UUID(made.json()["id"]))
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    share = (await sales.gql(SHARE_CARD, {"material": material, "customer": to_global_id("Customer", zhao)}))["data"]["shareMaterial"]
    token = share["share"]["token"]
    assert share["share"]["card"] == {
        "appid": APPID,
        "pagePath": f"pages/product/index?id=42&gx={token}",
        "title": "新品小程序",
        "imageUrl": f"{PUBLIC_URL}/m/{token}/file",
    }
    cover = await anonymous_client.get(f"/m/{token}/file")
    assert cover.status_code == 200 and cover.content == PNG and cover.headers["content-disposition"] == "inline"
    agent = BROWSER + " miniProgram"
    opened = await anonymous_client.post(f"/m/{token}/open", json={}, headers={"User-Agent": agent})
    assert opened.status_code == 200, opened.text
    first = opened.json()
    again = await anonymous_client.post(f"/m/{token}/open", json={"visitor": first["visitor"]}, headers={"User-Agent": agent})
    assert again.json()["visitor"] == first["visitor"] and again.json()["view"] != first["view"]
    assert (await anonymous_client.post(f"/m/{token}/beacon", json={"view": first["view"], "ms": 30_000})).status_code == 204
    async with runtime.session(tenant_id) as s:
        views = (await s.execute(select(MaterialView).order_by(MaterialView.opened_at))).scalars().all()
    assert [(v.kind, v.customer_id) for v in views] == [("view", zhao), ("view", zhao)] and views[0].read_ms == 30_000


async def test_a_bad_card_is_refused_naming_the_field_and_a_card_is_not_made_through_graphql(
    marketing: Staff, anonymous_client: httpx.AsyncClient, files: object
) -> None:
    for fields, field in (
        ({"appid": "wx123"}, "appid"),
        ({"page_path": "https://evil.example/x"}, "pagePath"),
        ({"page_path": "/pages/x"}, "pagePath"),
        ({"page_path": "pages/../x"}, "pagePath"),
    ):
        refused = await upload_card(anonymous_client, marketing, **fields)
        assert refused.status_code == 400 and refused.json()["extra"]["field"] == field, (fields, refused.text)
    body = await marketing.gql(
        'mutation { createMaterial(input: {kind: "miniprogram", title: "x"}) { material { id } errors { field message } } }'
    )
    assert body["data"]["createMaterial"]["errors"][0]["field"] == "kind"


async def test_a_tampered_token_opens_nothing_and_a_crawler_open_is_a_preview(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient, files: object
) -> None:
    made = await upload_card(anonymous_client, marketing)
    material = to_global_id("Material", uuid.UUID(made.json()["id"]))
    token = (await sales.gql(SHARE_CARD, {"material": material}))["data"]["shareMaterial"]["share"]["token"]
    tampered = token[:-1] + ("B" if token[-1] == "A" else "A")
    assert (await anonymous_client.post(f"/m/{tampered}/open", json={})).status_code == 404
    preview = await anonymous_client.post(f"/m/{token}/open", json={}, headers={"User-Agent": "wxwork-linkpreview/1.0"})
    assert preview.json() == {"view": None, "visitor": None, "state": None}
    async with runtime.session(tenant_id) as s:
        assert [v.kind for v in (await s.execute(select(MaterialView))).scalars()] == ["preview"]
