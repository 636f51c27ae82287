"""The content report: views, unique viewers, average read time, previews and forwards per
material and per salesperson, the leads and revenue their viewers brought, in a fixed number
of statements."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.materials.models import MaterialView
from guanxi.testing.sql import count_statements
from tests.plugins.materials.conftest import BROWSER, CREATE, SHARE, Staff, customer, staff

pytestmark = pytest.mark.plugins("materials")

REPORT = """
query($by: MaterialReportBy!) {
  materialReport(by: $by) { material { title } salesperson { name } views uniqueViewers averageReadMs previews forwards }
}"""


async def _open(client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, token: str, ms: int) -> None:
    page = await client.get(f"/m/{token}", headers={"User-Agent": BROWSER})
    async with runtime.session(tenant_id) as s:
        view_id = (await s.execute(select(MaterialView.id).order_by(MaterialView.opened_at.desc()).limit(1))).scalar_one()
    assert str(view_id) in page.text
    assert (await client.post(f"/m/{token}/beacon", json={"view": str(view_id), "ms": ms})).status_code == 204


async def test_the_report_counts_views_viewers_read_time_previews_and_forwards(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    ids = {}
    for title in ("Brochure", "Price list"):
        body = await marketing.gql(CREATE, {"input": {"kind": "link", "title": title, "url": "https://a.example"}})
        ids[title] = body["data"]["createMaterial"]["material"]["id"]
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    token = (await sales.gql(SHARE, {"material": ids["Brochure"], "customer": to_global_id("Customer", zhao)}))["data"]["shareMaterial"][
        "share"
    ]["token"]
    await _open(anonymous_client, runtime, tenant_id, token, 60_000)
    await _open(anonymous_client, runtime, tenant_id, token, 20_000)  # the same browser again: one viewer
    child = (await anonymous_client.post(f"/m/{token}/forward")).json()["token"]
    transport = anonymous_client._transport
    async with httpx.AsyncClient(transport=transport, base_url=str(anonymous_client.base_url)) as friend:
        await _open(friend, runtime, tenant_id, child, 40_000)
    await anonymous_client.get(f"/m/{token}", headers={"User-Agent": "facebookexternalhit/1.1"})
    other = await staff(runtime, tenant_id, anonymous_client, "zhou@x.cn", "sales")
    token2 = (await other.gql(SHARE, {"material": ids["Price list"]}))["data"]["shareMaterial"]["share"]["token"]
    async with httpx.AsyncClient(transport=transport, base_url=str(anonymous_client.base_url)) as stranger:
        await _open(stranger, runtime, tenant_id, token2, 10_000)

    by_material = (await marketing.gql(REPORT, {"by": "MATERIAL"}))["data"]["materialReport"]
    assert by_material == [
        {
            "material": {"title": "Brochure"},
            "salesperson": None,
            "views": 3,
            "uniqueViewers": 2,
            "averageReadMs": 40_000,
            "previews": 1,
            "forwards": 1,
        },
        {
            "material": {"title": "Price list"},
            "salesperson": None,
            "views": 1,
            "uniqueViewers": 1,
            "averageReadMs": 10_000,
            "previews": 0,
            "forwards": 0,
        },
    ]
    by_person = (await marketing.gql(REPORT, {"by": "SALESPERSON"}))["data"]["materialReport"]
    assert [(r["salesperson"]["name"], r["views"], r["forwards"]) for r in by_person] == [("wang", 3, 1), ("zhou", 1, 0)]

    for by in ("MATERIAL", "SALESPERSON"):
        with count_statements(runtime.engine) as seen:
            await marketing.gql(REPORT, {"by": by})
        assert len([s for s in seen if "api_keys" not in s]) == 5, seen  # views, forwards, leads, revenue, materials or users


async def test_a_salesperson_may_not_read_the_report(sales: Staff) -> None:
    body = await sales.gql(REPORT, {"by": "MATERIAL"})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_leads_and_revenue_are_what_viewers_brought_after_their_first_view(
    runtime: Runtime, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    """赵女士, an existing customer, opens the brochure and then pays 5,000 and gets 1,000 back (a
    purchase of 300 before her view does not count); a forwarded friend, anonymous at first,
    becomes a customer afterwards: one lead. Revenue is in the tenant's currency."""
    import datetime as dt

    from guanxi import RequestContext
    from guanxi.core.services.interactions import InteractionInput, record_interaction
    from guanxi.plugins.materials import radar
    from guanxi.plugins.materials.settings import MaterialsSettings

    body = await marketing.gql(CREATE, {"input": {"kind": "link", "title": "Brochure", "url": "https://a.example"}})
    material = body["data"]["createMaterial"]["material"]["id"]
    zhao = await customer(runtime, tenant_id, "赵女士", owner=sales.user_id)
    now = dt.datetime.now(dt.UTC)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await record_interaction(
            tx,
            InteractionInput(
                customer_id=zhao, channel="shop", kind="purchase", occurred_at=now - dt.timedelta(days=3), payload={"amount": 300}
            ),
        )
    token = (await sales.gql(SHARE, {"material": material, "customer": to_global_id("Customer", zhao)}))["data"]["shareMaterial"]["share"][
        "token"
    ]
    await _open(anonymous_client, runtime, tenant_id, token, 30_000)
    child = (await anonymous_client.post(f"/m/{token}/forward")).json()["token"]
    async with httpx.AsyncClient(transport=anonymous_client._transport, base_url=str(anonymous_client.base_url)) as friend:
        page = await friend.get(f"/m/{child}", headers={"User-Agent": BROWSER})
    visitor = uuid.UUID(page.cookies["gx_mv"])
    qian = await customer(runtime, tenant_id, "钱先生")  # made after the friend's view
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await radar.identify(tx, visitor, qian, MaterialsSettings())
        for amount, key in ((5000, "p1"), (-1000, "refund-1")):
            await record_interaction(
                tx,
                InteractionInput(
                    customer_id=zhao,
                    channel="sales",
                    kind="payment",
                    occurred_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
                    payload={"amount": amount},
                    dedupe_key=key,
                ),
            )
    query = "query($by: MaterialReportBy!) { materialReport(by: $by) { material { title } salesperson { name } leads revenue } }"
    by_material = (await marketing.gql(query, {"by": "MATERIAL"}))["data"]["materialReport"]
    assert by_material == [{"material": {"title": "Brochure"}, "salesperson": None, "leads": 1, "revenue": 4000.0}]
    by_person = (await marketing.gql(query, {"by": "SALESPERSON"}))["data"]["materialReport"]
    assert [(r["salesperson"]["name"], r["leads"], r["revenue"]) for r in by_person] == [("wang", 1, 4000.0)]
