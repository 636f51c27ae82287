"""Archiving a material: it leaves the library and cannot be shared again, the links already sent
stay open (a customer's chat keeps working), it comes back when restored, and only the roles
that manage the library may do either."""

from __future__ import annotations

import httpx
import pytest

from guanxi.testing import GraphQL
from tests.plugins.materials.conftest import BROWSER, CREATE, SHARE, Staff

pytestmark = pytest.mark.plugins("materials")

ARCHIVE = """
mutation($id: ID!) { archiveMaterial(id: $id) { material { id archivedAt } errors { field code message } } }"""
RESTORE = """
mutation($id: ID!) { restoreMaterial(id: $id) { material { id archivedAt } errors { field code message } } }"""
TITLES = "query($archived: Boolean) { materials(archived: $archived) { title archivedAt } }"


async def create(marketing: Staff, title: str) -> str:
    body = await marketing.gql(CREATE, {"input": {"kind": "article", "title": title, "body": f"<p>{title}</p>"}})
    material: str = body["data"]["createMaterial"]["material"]["id"]
    return material


async def titles(staff: Staff, archived: bool | None = False) -> list[str]:
    return [m["title"] for m in (await staff.gql(TITLES, {"archived": archived}))["data"]["materials"]]


async def test_an_archived_material_leaves_the_library_and_comes_back_when_restored(marketing: Staff, sales: Staff) -> None:
    spring = await create(marketing, "Spring")
    await create(marketing, "Autumn")
    archived = (await marketing.gql(ARCHIVE, {"id": spring}))["data"]["archiveMaterial"]
    assert archived["errors"] == [] and archived["material"]["archivedAt"] is not None
    assert await titles(sales) == ["Autumn"]
    assert await titles(sales, archived=True) == ["Spring"]
    assert sorted(await titles(sales, archived=None)) == ["Autumn", "Spring"]
    again = (await marketing.gql(ARCHIVE, {"id": spring}))["data"]["archiveMaterial"]
    assert again["material"]["archivedAt"] == archived["material"]["archivedAt"]  # twice: unchanged
    restored = (await marketing.gql(RESTORE, {"id": spring}))["data"]["restoreMaterial"]
    assert restored["errors"] == [] and restored["material"]["archivedAt"] is None
    assert sorted(await titles(sales)) == ["Autumn", "Spring"]


async def test_an_archived_material_is_not_shared_again_but_its_links_stay_open(
    marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    material = await create(marketing, "Brochure")
    sent = (await sales.gql(SHARE, {"material": material}))["data"]["shareMaterial"]["share"]
    await marketing.gql(ARCHIVE, {"id": material})
    refused = (await sales.gql(SHARE, {"material": material}))["data"]["shareMaterial"]
    assert refused["share"] is None
    assert refused["errors"][0]["field"] == "materialId" and "archived" in refused["errors"][0]["message"]
    page = await anonymous_client.get(f"/m/{sent['token']}", headers={"User-Agent": BROWSER})
    assert page.status_code == 200 and "<p>Brochure</p>" in page.text


async def test_only_the_library_managers_archive_and_each_change_is_audited(marketing: Staff, sales: Staff, graphql: GraphQL) -> None:
    material = await create(marketing, "Price list")
    denied = await sales.gql(ARCHIVE, {"id": material})
    assert denied["data"] is None or denied["data"]["archiveMaterial"] is None
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await titles(sales) == ["Price list"]
    await marketing.gql(ARCHIVE, {"id": material})
    await marketing.gql(ARCHIVE, {"id": material})  # no change, no second entry
    await marketing.gql(RESTORE, {"id": material})
    trail = (await graphql("{ auditEvents { action objectType } }"))["data"]["auditEvents"]
    actions = [e["action"] for e in trail if e["action"] in ("material.archive", "material.restore")]
    assert sorted(actions) == ["material.archive", "material.restore"]


async def test_archiving_a_material_the_callers_roles_may_not_see_is_not_found(marketing: Staff) -> None:
    """(Another tenant's material: tests/plugins/materials/test_isolation.py.)"""
    hidden = (
        await marketing.gql(CREATE, {"input": {"kind": "link", "title": "Managers only", "url": "https://a.example", "roles": ["manager"]}})
    )["data"]["createMaterial"]["material"]["id"]
    body = (await marketing.gql(ARCHIVE, {"id": hidden}))["data"]["archiveMaterial"]
    assert body["material"] is None and body["errors"][0]["code"] == "NOT_FOUND"
