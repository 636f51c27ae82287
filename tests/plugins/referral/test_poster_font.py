"""Posters render Chinese names out of the box: the shipped Noto Sans SC subset is the default
font, and each glyph of a name differs from the font's "missing" box (tofu)."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from PIL import Image, ImageChops

from guanxi import Runtime
from guanxi.plugins.referral.poster import DEFAULT_FONT, PosterInputs, PosterLayout, render
from guanxi.testing import GraphQL
from tests.plugins.referral.conftest import Pigeon, create_campaign, customer_id_of, mint
from tests.plugins.referral.test_entry_points import decode, local

pytestmark = pytest.mark.plugins("pigeon", "referral")

SIZE = 48
X, Y = 160, 60
LAYOUT = {"name": {"x": X, "y": Y, "size": SIZE}, "avatar": None, "qr": {"x": 225, "y": 900, "size": 300}}
#: private-use characters: no font has them, every one draws the missing box
TOFU = "\U000f0000\U000f0001\U000f0002"


def cells(image: Image.Image, count: int) -> list[Image.Image]:
    """The name's glyph cells: CJK glyphs (and the missing box) are one em wide."""
    gray = image.convert("L")
    return [gray.crop((X + i * SIZE, Y, X + (i + 1) * SIZE, Y + int(SIZE * 1.4))) for i in range(count)]


def inked(cell: Image.Image) -> int:
    return sum(cell.histogram()[:128])  # pixels darker than mid-grey


def poster(name: str) -> Image.Image:
    layout = msgspec.convert(LAYOUT, PosterLayout)
    return Image.open(io.BytesIO(render(PosterInputs(layout=layout, url="https://r.example.com/r/x", name=name))))


def same(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a, b).getbbox() is None


async def test_a_chinese_name_on_a_poster_draws_real_glyphs_not_boxes(
    graphql: GraphQL, client: httpx.AsyncClient, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """The poster of an inviter named 王小明, served with the default settings (no font_path),
    decoded from PNG: each of the three glyph cells has ink and differs from the missing box
    drawn at the same place, and the QR code still decodes to the link."""
    assert runtime.plugin_settings("referral").font_path == ""
    await create_campaign(graphql, poster=LAYOUT)
    await pigeon.follow("wxm", name="王小明")
    share = await mint(graphql, customer=await customer_id_of(runtime, tenant_id, "wxm"))
    png = (await client.get(local(share["posterUrl"]))).content
    assert decode(png) == [share["url"]]
    shown = cells(Image.open(io.BytesIO(png)), 3)
    boxes = cells(poster(TOFU), 3)
    for glyph, box in zip(shown, boxes, strict=True):
        assert inked(glyph) > 50
        assert not same(glyph, box)
    assert not same(shown[0], shown[1]) and not same(shown[1], shown[2])  # three different characters


def test_the_comparison_sees_a_missing_glyph() -> None:
    """A character outside the shipped subset (U+20000, CJK Extension B) draws exactly the
    missing box, so the comparison above would catch a font without the name's characters."""
    assert DEFAULT_FONT.is_file() and (DEFAULT_FONT.parent / "OFL.txt").is_file()
    missing = cells(poster("\U00020000"), 1)[0]
    assert inked(missing) > 0 and same(missing, cells(poster(TOFU[0]), 1)[0])
    assert not same(cells(poster("王"), 1)[0], missing)


async def test_purging_a_tenant_deletes_the_posters_cached_for_its_tokens(
    graphql: GraphQL, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, tmp_path: Any
) -> None:
    """Posters show a tenant's staff and customers by name: when the operator deletes the
    tenant (guanxi_purge_tenant), its cached poster files go with its rows."""
    from guanxi.core.services.tenants import purge_tenant
    from tests.plugins.referral.conftest import staff

    await create_campaign(graphql, poster=LAYOUT)
    share = await mint(graphql, user=await staff(runtime, tenant_id))
    assert (await client.get(local(share["posterUrl"]))).status_code == 200
    cache = tmp_path / "posters"
    assert [p.name for p in cache.glob("*.png")]
    await purge_tenant(runtime, tenant_id)
    assert list(cache.glob("*.png")) == []
