"""Entry points: the tracked link (visit counting, redirect only to the landing URL), QR codes
as PNG and SVG and the personal poster, each decoded back with a real QR decoder (zxing-cpp);
channels' entry points (Pigeon's follow link) collected when a token is minted."""

from __future__ import annotations

import io
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.domain.models import Interaction
from guanxi.plugins.referral.links import visitor_signature
from guanxi.plugins.referral.models import ReferralToken
from guanxi.testing import GraphQL
from tests.plugins.referral.conftest import PUBLIC_URL, VISITOR_SECRET, Pigeon, create_campaign, customer_id_of, mint, staff

pytestmark = pytest.mark.plugins("pigeon", "referral")


def decode(png: bytes) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def rasterize_segno_svg(svg: bytes, scale: int = 8) -> bytes:
    """Draw the one path of a segno SVG (``M x y``, ``m dx dy``, ``h dx`` on half-module rows)
    into a PNG, so the decoder reads what the SVG really shows."""
    path = ET.fromstring(svg).find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    width = int(ET.fromstring(svg).get("width", "0")) // scale
    image = Image.new("L", (width, width), 255)
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.get("d", "")):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for col in range(int(x), int(x + float(a))):
                image.putpixel((col, int(y)), 0)
            x += float(a)
    out = io.BytesIO()
    image.resize((width * scale, width * scale), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def local(url: str) -> str:
    """The path of a public URL, to ask the in-process app."""
    return urlsplit(url).path


async def test_minting_returns_the_link_qr_poster_and_each_channel_entry_point(
    graphql: GraphQL, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    share = await mint(graphql, user=await staff(runtime, tenant_id))
    token = share["token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,30}", token)
    assert share["url"] == f"{PUBLIC_URL}/r/{token}"
    assert (share["qrPngUrl"], share["qrSvgUrl"], share["posterUrl"]) == (
        f"{PUBLIC_URL}/r/{token}/qr.png",
        f"{PUBLIC_URL}/r/{token}/qr.svg",
        f"{PUBLIC_URL}/r/{token}/poster.png",
    )
    assert share["entryPoints"] == [{"channel": "pigeon", "kind": "link", "url": f"https://pigeon.example/follow?state={token}"}]


async def test_the_same_inviter_gets_the_same_token_and_another_inviter_another(
    graphql: GraphQL, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    li = await staff(runtime, tenant_id)
    first, again = await mint(graphql, user=li), await mint(graphql, user=li)
    other = await mint(graphql, user=await staff(runtime, tenant_id, "zhang@example.com", "Zhang"))
    assert first["token"] == again["token"] != other["token"]


async def test_the_link_counts_visits_and_redirects_only_to_the_landing_url(
    graphql: GraphQL, client: httpx.AsyncClient, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    share = await mint(graphql, user=await staff(runtime, tenant_id))
    token, path = share["token"], local(share["url"])
    anonymous = await client.get(path, params={"next": "https://evil.example.com", "url": "https://evil.example.com"})
    assert (anonymous.status_code, anonymous.headers["location"]) == (302, "https://shop.example.com/spring")
    assert anonymous.headers["cache-control"] == "no-store"
    await pigeon.send("message", "kai", text="hi")
    signed = {"channel": "pigeon", "uid": "kai", "sig": visitor_signature(VISITOR_SECRET, token, "pigeon", "kai")}
    known = await client.get(path, params=signed)
    assert known.headers["location"] == "https://shop.example.com/spring"
    forged = await client.get(path, params={**signed, "sig": visitor_signature("guess", token, "pigeon", "kai")})
    assert forged.status_code == 302
    async with runtime.session(tenant_id) as s:
        scans = (await s.execute(select(Interaction.payload).where(Interaction.kind == "scan"))).scalars().all()
        visits = (await s.execute(select(ReferralToken.anonymous_visits, ReferralToken.known_visits))).one()
    assert [p["referral_token"] for p in scans] == [token]  # the signed visit only
    assert tuple(visits) == (2, 1)
    assert (await client.get("/r/no-such-token-000000")).status_code == 404
    assert (await client.get("/r/bad%20token")).status_code == 404


async def test_qr_codes_decode_to_the_link(graphql: GraphQL, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await create_campaign(graphql)
    share = await mint(graphql, user=await staff(runtime, tenant_id))
    png = await client.get(local(share["qrPngUrl"]))
    assert png.headers["content-type"] == "image/png"
    assert decode(png.content) == [share["url"]]
    svg = await client.get(local(share["qrSvgUrl"]))
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert decode(rasterize_segno_svg(svg.content)) == [share["url"]]


async def test_a_poster_on_the_campaign_background_decodes_to_the_inviters_link_and_is_cached(
    graphql: GraphQL, client: httpx.AsyncClient, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, tmp_path: Path
) -> None:
    (tmp_path / "backgrounds").mkdir()
    Image.new("RGB", (600, 900), "#f6e7c1").save(tmp_path / "backgrounds" / "spring.png")
    poster = {"background": "spring.png", "qr": {"x": 150, "y": 500, "size": 300}, "name": {"x": 180, "y": 100, "size": 40}}
    await create_campaign(graphql, poster=poster)
    await pigeon.follow("mei", name="Mei")
    mei = await customer_id_of(runtime, tenant_id, "mei")
    share = await mint(graphql, customer=mei)
    first = await client.get(local(share["posterUrl"]))
    assert first.headers["content-type"] == "image/png" and first.headers["x-poster-cache"] == "miss"
    image = Image.open(io.BytesIO(first.content))
    assert image.size == (600, 900)
    assert image.getpixel((10, 10)) == (0xF6, 0xE7, 0xC1)  # the background shows where nothing is drawn
    assert decode(first.content) == [share["url"]]
    second = await client.get(local(share["posterUrl"]))
    assert (second.headers["x-poster-cache"], second.headers["etag"], second.content) == ("hit", first.headers["etag"], first.content)
    rename = 'mutation($id: ID!) { updateCustomer(id: $id, input: {displayName: "Mei Lin"}) { errors { message } } }'
    await graphql(rename, {"id": mei})
    third = await client.get(local(share["posterUrl"]))
    assert third.headers["x-poster-cache"] == "miss" and third.headers["etag"] != first.headers["etag"]
    assert decode(third.content) == [share["url"]]
    assert len(list((tmp_path / "posters").glob("*.png"))) == 1  # the old version is gone


async def test_a_poster_without_background_uses_the_plain_canvas(
    graphql: GraphQL, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    await create_campaign(graphql)
    share = await mint(graphql, user=await staff(runtime, tenant_id))
    response = await client.get(local(share["posterUrl"]))
    assert Image.open(io.BytesIO(response.content)).size == (750, 1334)
    assert decode(response.content) == [share["url"]]


async def test_a_landing_url_must_be_absolute_http(graphql: GraphQL) -> None:
    body = await graphql(
        'mutation { createReferralCampaign(input: {key: "x", name: "X", landingUrl: "javascript:alert(1)"}) { errors { field code } } }'
    )
    assert body["data"]["createReferralCampaign"]["errors"] == [{"field": "landingUrl", "code": "VALIDATION"}]


async def test_the_poster_shows_the_inviters_avatar_at_its_box(
    graphql: GraphQL, client: httpx.AsyncClient, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    import base64

    red = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 20, 20)).save(red, format="PNG")
    avatar = "data:image/png;base64," + base64.b64encode(red.getvalue()).decode()
    poster = {"avatar": {"x": 40, "y": 40, "size": 100}, "name": {"x": 160, "y": 60}, "qr": {"x": 225, "y": 900, "size": 300}}
    await create_campaign(graphql, poster=poster)
    await pigeon.follow("nia", name="Nia", avatar_url=avatar)
    share = await mint(graphql, customer=await customer_id_of(runtime, tenant_id, "nia"))
    image = Image.open(io.BytesIO((await client.get(local(share["posterUrl"]))).content)).convert("RGB")
    assert image.getpixel((90, 90)) == (200, 20, 20)
    assert image.getpixel((20, 20)) == (255, 255, 255)
    assert decode(image_bytes(image)) == [share["url"]]


def image_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_a_poster_background_must_be_an_image_in_the_backgrounds_folder(graphql: GraphQL, tmp_path: Path) -> None:
    (tmp_path / "backgrounds").mkdir()
    (tmp_path / "backgrounds" / "notes.png").write_text("not an image")
    (tmp_path / "secret.png").write_bytes(b"")
    create = """mutation($bg: String!) { createReferralCampaign(input: {key: "x", name: "X", landingUrl: "https://a.example.com",
      poster: {background: $bg}}) { campaign { key } errors { field message } } }"""
    for background, why in (("../secret.png", "is not a file in"), ("/etc/hostname", "is not a file in"), ("notes.png", "is not an image")):
        errors = (await graphql(create, {"bg": background}))["data"]["createReferralCampaign"]["errors"]
        assert [e["field"] for e in errors] == ["poster.background"] and why in errors[0]["message"], (background, errors)


async def test_a_poster_layout_is_bounded(graphql: GraphQL) -> None:
    create = """mutation($p: PosterLayoutInput!) { createReferralCampaign(input: {key: "x", name: "X", landingUrl: "https://a.example.com",
      poster: $p}) { campaign { key } errors { field message } } }"""
    for poster in ({"width": 100000}, {"qr": {"x": -5, "y": 0, "size": 200}}, {"avatar": {"x": 0, "y": 0, "size": 5000}}):
        errors = (await graphql(create, {"p": poster}))["data"]["createReferralCampaign"]["errors"]
        assert [e["field"] for e in errors] == ["poster"], (poster, errors)


async def test_a_link_of_any_tenant_resolves_whatever_tenant_is_configured(
    graphql: GraphQL, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """One deployment serves every tenant's links: the token names its tenant, and the visit is
    counted there (not in the configured default tenant)."""
    from guanxi.core.services.pipelines import create_tenant
    from guanxi.testing.plugin import use_tenant

    await create_campaign(graphql)
    share = await mint(graphql, user=await staff(runtime, tenant_id))
    async with runtime.write_session(None) as session:
        other = await create_tenant(session, f"other-{uuid.uuid4().hex[:6]}", "Another company")
    await use_tenant(runtime, other)  # the server's default tenant is now another one
    response = await client.get(local(share["url"]))
    assert (response.status_code, response.headers["location"]) == (302, "https://shop.example.com/spring")
    png = await client.get(local(share["qrPngUrl"]))
    assert png.status_code == 200 and decode(png.content) == [share["url"]]
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(ReferralToken.anonymous_visits))).scalar_one() == 1
