"""GraphiQL is served by the application: no CDN, in a browser with the network blocked.

The page is Strawberry's, with its seven scripts and style sheets served from the package. The
HTTP tests check the page names no remote address and that every shipped file matches the
integrity hash Strawberry's page pins. The browser test opens the page in headless Chromium
(Debian's package, driven by Playwright) with every request off this machine refused, runs a
query with an API key and checks the answer and that no request left the machine.

Without ``/usr/bin/chromium`` the browser test skips, unless ``GUANXI_TEST_REQUIRE_BROWSER=1``
(CI sets it), where it fails.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import urllib.parse
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest
import uvicorn

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.graphql.ide import ASSETS, ASSETS_DIR, offline_graphiql_html
from guanxi.testing.plugin import BASE_URL, api_key, use_tenant

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER_ENV = "GUANXI_TEST_REQUIRE_BROWSER"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # a second wall besides the request interception below: no host name resolves
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


async def test_the_graphiql_page_names_no_remote_address_and_every_file_matches_strawberrys_hash(
    client: httpx.AsyncClient,
) -> None:
    """The page served at /graphql loads only same-origin files, each answering 200 with exactly
    the bytes whose sha384 Strawberry's page pins in its ``integrity`` attribute."""
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    assert "unpkg.com" not in html and not re.search(r"""(src|href)="https?://""", html)
    tags = re.findall(r"""(?:src|href)="(/graphql/assets/[^"]+)"\s+integrity="(sha384-[^"]+)\"""", html)
    assert sorted(path.rsplit("/", 1)[1] for path, _ in tags) == sorted(ASSETS.values())
    for path, integrity in tags:
        response = await client.get(path)
        assert response.status_code == 200, path
        digest = "sha384-" + base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert digest == integrity, f"{path} differs from the file Strawberry's page pins"
        assert response.content == (ASSETS_DIR / path.rsplit("/", 1)[1]).read_bytes()


async def test_the_graphiql_files_are_not_served_when_graphiql_is_off(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await use_tenant(runtime, tenant_id)
    runtime.settings = msgspec.structs.replace(runtime.settings, graphql=msgspec.structs.replace(runtime.settings.graphql, graphiql=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as c:
        assert (await c.get("/graphql/assets/graphiql.min.js")).status_code == 404


def test_each_shipped_graphiql_file_has_its_licence_noted() -> None:
    """Every shipped file is listed in the README with its npm package, and each package's
    licence file is shipped beside it."""
    folder = ASSETS_DIR.parent
    readme = (folder / "README.md").read_text(encoding="utf-8")
    for name in ASSETS.values():
        assert f"`{name}`" in readme, name
    licences = {p.name for p in (folder / "licenses").iterdir()}
    assert licences == {"react.LICENSE", "react-dom.LICENSE", "js-cookie.LICENSE", "graphiql.LICENSE", "plugin-explorer.LICENSE"}
    assert "/graphql/assets/" in offline_graphiql_html("/graphql")


def _browser_or_skip() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (Debian: apt-get install chromium); the GraphiQL browser test needs it"
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{REQUIRE_BROWSER_ENV}=1 but {reason}")
    pytest.skip(reason)


async def test_graphiql_runs_a_query_in_chromium_with_the_network_blocked(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Headless Chromium opens GraphiQL from a real server on loopback while every request to
    another host is refused; the editor runs a query with an admin API key (given in the
    Headers tab) and shows the tenant's customer; every request the page made went to the
    server on this machine."""
    _browser_or_skip()
    from playwright.async_api import Route, async_playwright

    await use_tenant(runtime, tenant_id)
    runtime.settings = msgspec.structs.replace(runtime.settings, server=msgspec.structs.replace(runtime.settings.server, dev=True))
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await create_customer(tx, CustomerInput(display_name="王小明 Browser"))
    key = await api_key(runtime, tenant_id, "admin")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    requested: list[str] = []
    refused: list[str] = []

    async def only_loopback(route: Route) -> None:
        url = route.request.url
        if url.startswith(f"{origin}/") or url.startswith("data:"):
            await route.continue_()
        else:
            refused.append(url)
            await route.abort("internetdisconnected")

    try:
        for _ in range(600):  # at most 30 s
            if server.started or serving.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "the test server did not start"
        query = "query Browser { customers(first: 5) { totalCount edges { node { displayName } } } }"
        headers = json.dumps({"Authorization": f"Bearer {key}"})
        url = f"{origin}/graphql?" + urllib.parse.urlencode({"q": query, "headers": headers}, quote_via=urllib.parse.quote)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
            try:
                context = await browser.new_context()
                await context.route("**/*", only_loopback)
                page = await context.new_page()
                page.on("request", lambda request: requested.append(request.url))
                await page.goto(url, wait_until="load", timeout=60_000)
                await page.locator(".graphiql-execute-button").click(timeout=60_000)
                result = page.locator(".result-window")
                await result.get_by_text("王小明 Browser").wait_for(timeout=60_000)
                shown = await result.inner_text()
                versions = await page.evaluate("[React.version, typeof GraphiQLPluginExplorer.explorerPlugin]")
            finally:
                await browser.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)

    assert '"totalCount": 1' in shown
    assert versions == ["18.2.0", "function"]  # React and the explorer plugin came from the package
    assert refused == []
    assert requested and all(u.startswith(f"{origin}/") or u.startswith("data:") for u in requested), requested
    assert {f"{origin}/graphql/assets/{name}" for name in ASSETS.values()} <= set(requested)
