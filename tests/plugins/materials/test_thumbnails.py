"""Thumbnails of uploaded images (made from the upload only, never from a URL) and the rate
limit of the public radar routes."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from guanxi.core.base.errors import ValidationError
from guanxi.core.storage.files import LocalFileStore
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.materials.thumbnails import MAX_PIXELS, SIZE, make_thumbnail
from tests.plugins.materials.conftest import BROWSER, PUBLIC_URL, SHARE, Staff

pytestmark = pytest.mark.plugins("materials")


def image(size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    color: Any = {"RGBA": (10, 120, 200, 128), "RGB": (10, 120, 200), "1": 1}[mode]
    Image.new(mode, size, color).save(out, format=fmt)
    return out.getvalue()


def test_a_thumbnail_fits_the_box_keeps_the_aspect_and_keeps_transparency_as_png() -> None:
    thumb, media = make_thumbnail(image((1200, 600)))
    shown = Image.open(io.BytesIO(thumb))
    assert media == "image/jpeg" and shown.format == "JPEG" and shown.size == (SIZE, SIZE // 2)
    thumb, media = make_thumbnail(image((100, 400), mode="RGBA"))
    shown = Image.open(io.BytesIO(thumb))
    assert media == "image/png" and shown.mode == "RGBA" and shown.size == (80, SIZE)


def test_an_image_that_does_not_decode_or_would_be_a_decompression_bomb_is_refused_naming_the_file() -> None:
    with pytest.raises(ValidationError) as broken:
        make_thumbnail(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert broken.value.field == "file" and "cannot be read" in str(broken.value)
    side = int(MAX_PIXELS**0.5) + 10
    with pytest.raises(ValidationError) as bomb:
        make_thumbnail(image((side, side), mode="1"))
    assert bomb.value.field == "file" and "pixels" in str(bomb.value)


async def upload(client: httpx.AsyncClient, staff: Staff, content: bytes, name: str = "photo.png") -> httpx.Response:
    return await client.post(
        "/materials/upload", files={"file": (name, content, "image/png")}, data={"kind": "image", "title": "新品图"}, headers=staff.headers
    )


async def test_an_uploaded_image_gets_a_thumbnail_served_on_its_radar_link_and_named_in_og_image(
    marketing: Staff, sales: Staff, files: LocalFileStore, anonymous_client: httpx.AsyncClient
) -> None:
    made = await upload(anonymous_client, marketing, image((640, 320)))
    assert made.status_code == 201, made.text
    material = to_global_id("Material", uuid.UUID(made.json()["id"]))
    listed = (await marketing.gql("{ materials { id hasThumbnail } }"))["data"]["materials"]
    assert listed == [{"id": material, "hasThumbnail": True}]
    token = (await sales.gql(SHARE, {"material": material}))["data"]["shareMaterial"]["share"]["token"]
    page = await anonymous_client.get(f"/m/{token}", headers={"User-Agent": BROWSER})
    assert f'<meta property="og:image" content="{PUBLIC_URL}/m/{token}/thumb">' in page.text
    thumb = await anonymous_client.get(f"/m/{token}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (SIZE, SIZE // 2)


async def test_an_upload_that_is_not_a_decodable_image_is_refused_and_nothing_is_stored(
    marketing: Staff, files: LocalFileStore, anonymous_client: httpx.AsyncClient
) -> None:
    refused = await upload(anonymous_client, marketing, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert refused.status_code == 400 and "cannot be read" in refused.json()["detail"]
    assert not [p for p in files.root.rglob("*") if p.is_file()]


async def test_a_link_or_pdf_material_has_no_thumbnail_and_its_thumb_route_is_404(
    marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
) -> None:
    made = await marketing.gql(
        'mutation { createMaterial(input: {kind: "link", title: "官网", url: "http://169.254.169.254/latest"}) '
        "{ material { id hasThumbnail } } }"
    )
    material = made["data"]["createMaterial"]["material"]
    assert material["hasThumbnail"] is False  # a link's URL is never fetched, so never thumbnailed
    token = (await sales.gql(SHARE, {"material": material["id"]}))["data"]["shareMaterial"]["share"]["token"]
    assert (await anonymous_client.get(f"/m/{token}/thumb")).status_code == 404


class TestRateLimit:
    @pytest.fixture
    def plugin_config(self, plugin_names: list[str]) -> dict[str, dict[str, Any]]:
        return {"materials": {"public_url": PUBLIC_URL, "rate_limit_per_minute": 3}}

    async def test_one_address_beyond_the_limit_on_the_public_routes_gets_429_and_staff_routes_are_not_limited(
        self, runtime: Any, tenant_id: uuid.UUID, marketing: Staff, sales: Staff, anonymous_client: httpx.AsyncClient
    ) -> None:
        made = await marketing.gql(
            'mutation { createMaterial(input: {kind: "link", title: "x", url: "https://a.example"}) { material { id } } }'
        )
        material = made["data"]["createMaterial"]["material"]["id"]
        token = (await sales.gql(SHARE, {"material": material, "customer": None}))["data"]["shareMaterial"]["share"]["token"]
        answers = [(await anonymous_client.get(f"/m/{token}", headers={"User-Agent": BROWSER})).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        for _ in range(5):  # GraphQL and uploads are the staff's, behind credentials: not this limit
            assert (await marketing.gql("{ materials { id } }"))["data"]["materials"]
