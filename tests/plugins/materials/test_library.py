"""The material library: articles sanitised, uploads checked by content and size, per-role
visibility, folders and tags."""

from __future__ import annotations

import httpx
import pytest

from guanxi.core.storage.files import LocalFileStore, sniff
from guanxi.plugins.materials.sanitize import clean
from guanxi.testing import GraphQL
from tests.plugins.materials.conftest import CREATE, LIST, PDF, PNG, SHARE, Staff

pytestmark = pytest.mark.plugins("materials")

XSS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<svg onload="alert(1)"><circle/></svg>',
    '<iframe src="https://evil.example"></iframe>',
    '<body onload="alert(1)">',
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<form action="javascript:alert(1)"><button>x</button></form>',
    '<img src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    '<p onclick="alert(1)">x</p>',
    "<scr<script>ipt>alert(1)</script>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="javascript:alert(1)">',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<input autofocus onfocus="alert(1)">',
    '<details open ontoggle="alert(1)">',
]


@pytest.mark.parametrize("payload", XSS)
def test_sanitised_html_keeps_no_script_handler_or_javascript_url(payload: str) -> None:
    """None of the XSS payloads survives: no script/iframe/object/style element, no on* handler,
    no javascript: or data: URL."""
    out = clean(f"<p>before</p>{payload}<p>after</p>").lower()
    for bad in (
        "<script",
        "<iframe",
        "<object",
        "<embed",
        "<svg",
        "<style",
        "<meta",
        "<link",
        "<form",
        "<input",
        "javascript:",
        "data:",
        " on",
    ):
        assert bad not in out, (payload, out)
    assert "<p>before</p>" in out  # the harmless part stays


def test_sniff_reads_magic_bytes_not_names() -> None:
    assert sniff(PNG) == "image/png"
    assert sniff(PDF) == "application/pdf"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"<html><script>alert(1)</script>") is None


def test_the_store_is_content_addressed(tmp_path: object) -> None:
    store = LocalFileStore(str(tmp_path), 1024)
    key = store.put(PNG)
    assert store.put(PNG) == key and store.get(key) == PNG and len(key) == 64
    assert not store.exists("../../etc/passwd")


async def test_an_article_is_stored_sanitised_and_listed_by_folder_and_tag(marketing: Staff) -> None:
    body = await marketing.gql(
        CREATE,
        {
            "input": {
                "kind": "article",
                "title": "春季价目",
                "body": '<p>Hi<script>x()</script><a href="javascript:x()">a</a></p>',
                "folder": "/price/",
                "tags": ["price", "spring"],
            }
        },
    )
    material = body["data"]["createMaterial"]["material"]
    assert material["body"] == '<p>Hi<a rel="noopener noreferrer">a</a></p>'
    assert material["folder"] == "price" and material["tags"] == ["price", "spring"]
    listed = (await marketing.gql(LIST, {"folder": "price", "tag": "spring"}))["data"]["materials"]
    assert [m["id"] for m in listed] == [material["id"]]
    assert (await marketing.gql(LIST, {"tag": "other"}))["data"]["materials"] == []


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"kind": "poster", "title": "x"}, "kind", "kind must be one of"),
        ({"kind": "article", "title": " "}, "title", "title must be"),
        ({"kind": "article", "title": "x"}, "body", "needs a body"),
        ({"kind": "link", "title": "x", "url": "file:///etc/passwd"}, "url", "http(s) URL"),
        ({"kind": "video", "title": "x", "url": "javascript:alert(1)"}, "url", "http(s) URL"),
        ({"kind": "image", "title": "x"}, "kind", "POST /materials/upload"),
        ({"kind": "link", "title": "x", "url": "https://a.example", "roles": ["Sales!"]}, "roles", "not a role name"),
    ],
)
async def test_bad_material_input_is_a_validation_error_naming_the_field(marketing: Staff, data: dict, field: str, fragment: str) -> None:
    errors = (await marketing.gql(CREATE, {"input": data}))["data"]["createMaterial"]["errors"]
    assert errors[0]["field"] == field and errors[0]["code"] == "VALIDATION" and fragment in errors[0]["message"]


async def test_roles_limit_who_sees_a_material(marketing: Staff, sales: Staff) -> None:
    """A material for marketing only is not listed to a salesperson; one for every role is."""
    for title, roles in (("internal", ["marketing"]), ("public", [])):
        await marketing.gql(CREATE, {"input": {"kind": "link", "title": title, "url": "https://a.example/x", "roles": roles}})
    assert {m["title"] for m in (await sales.gql(LIST))["data"]["materials"]} == {"public"}
    assert {m["title"] for m in (await marketing.gql(LIST))["data"]["materials"]} == {"internal", "public"}


async def test_a_salesperson_cannot_create_materials(sales: Staff) -> None:
    body = await sales.gql(CREATE, {"input": {"kind": "link", "title": "x", "url": "https://a.example"}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_upload_checks_content_and_size_and_serves_the_file(
    marketing: Staff, sales: Staff, files: LocalFileStore, anonymous_client: httpx.AsyncClient
) -> None:
    """A PDF named .png is stored as a PDF (content decides); HTML named .pdf, an empty file and a
    file over the limit are refused with a 400 naming the problem; no credentials is a 401, a
    salesperson a 403."""
    ok = await anonymous_client.post(
        "/materials/upload",
        files={"file": ("brochure.png", PDF, "image/png")},
        data={"kind": "file", "title": "Brochure", "tags": "brochure,2026", "folder": "docs"},
        headers=marketing.headers,
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["mediaType"] == "application/pdf" and ok.json()["size"] == len(PDF)
    listed = (await marketing.gql(LIST, {"kind": "file"}))["data"]["materials"]
    assert listed[0]["tags"] == ["2026", "brochure"] and listed[0]["mediaType"] == "application/pdf"

    async def refused(content: bytes, kind: str = "file", headers: dict[str, str] | None = None) -> httpx.Response:
        return await anonymous_client.post(
            "/materials/upload",
            files={"file": ("x.pdf", content, "application/pdf")},
            data={"kind": kind, "title": "x"},
            headers=headers if headers is not None else marketing.headers,
        )

    bad = await refused(b"<html><script>alert(1)</script></html>")
    assert bad.status_code == 400 and "checked by content" in bad.json()["detail"]
    assert (await refused(b"")).status_code == 400
    big = await refused(b"%PDF-" + b"0" * 5000)
    assert big.status_code == 400 and "at most 4096" in big.json()["detail"]
    not_image = await refused(PDF, kind="image")
    assert not_image.status_code == 400 and "image/png" in not_image.json()["detail"]
    assert (await refused(PNG, headers={})).status_code == 401
    assert (await refused(PNG, headers=sales.headers)).status_code == 403
    assert len(list((files.root).rglob("*"))) == 3  # two folder levels and the one PDF


async def test_creating_and_sharing_a_material_are_audited(marketing: Staff, sales: Staff, graphql: GraphQL) -> None:
    body = await marketing.gql(CREATE, {"input": {"kind": "link", "title": "Card", "url": "https://a.example"}})
    material = body["data"]["createMaterial"]["material"]["id"]
    await sales.gql(SHARE, {"material": material})
    trail = (await graphql("{ auditEvents { action actorId objectType } }"))["data"]["auditEvents"]
    actions = {(e["action"], e["objectType"]) for e in trail}
    assert {("material.create", "material"), ("material.share", "material")} <= actions
