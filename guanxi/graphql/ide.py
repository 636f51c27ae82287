"""GraphiQL served by the application, with no request to a CDN.

Strawberry's GraphiQL page (``strawberry/static/graphiql.html``) loads React, GraphiQL and the
explorer plugin from a public CDN. Guanxi ships those seven files inside the package
(``guanxi/graphql/graphiql/assets``, copied unchanged from the npm registry's packages at the
versions the page pins; see the README there for sources and licences) and serves the same page
with each CDN address replaced by the application's own route. The ``integrity`` hashes stay, so
the browser still checks every file against the hash Strawberry pinned.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from strawberry.http.ides import get_graphql_ide_html

ASSETS_DIR = Path(__file__).parent / "graphiql" / "assets"

#: the CDN address in Strawberry's page -> the file shipped in ASSETS_DIR
ASSETS: dict[str, str] = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": "react-dom.production.min.js",
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": "plugin-explorer.umd.js",
}

_REMOTE = re.compile(r"""(src|href)="(https?://[^"]+)\"""")


class StaleAssetsError(RuntimeError):
    """Strawberry's page names a remote file that Guanxi does not ship (Strawberry was upgraded)."""


def assets_path(graphql_path: str) -> str:
    """The URL path under which the GraphiQL files are served."""
    return graphql_path.rstrip("/") + "/assets"


@cache
def offline_graphiql_html(graphql_path: str) -> str:
    """Strawberry's GraphiQL page with every CDN address replaced by the application's own."""
    html = get_graphql_ide_html(graphql_ide="graphiql")
    base = assets_path(graphql_path)

    def local(match: re.Match[str]) -> str:
        attribute, url = match.group(1), match.group(2)
        name = ASSETS.get(url)
        if name is None:
            raise StaleAssetsError(
                f"Strawberry's GraphiQL page loads {url}, which guanxi/graphql/graphiql/assets does not ship; "
                "add it as guanxi/graphql/graphiql/README.md explains"
            )
        return f'{attribute}="{base}/{name}"'

    return _REMOTE.sub(local, html)


def graphiql_assets_router(graphql_path: str) -> Any:
    """A Litestar router serving the shipped GraphiQL files (cacheable: their names pin versions)."""
    return create_static_files_router(
        path=assets_path(graphql_path),
        directories=[ASSETS_DIR],
        name="graphiql-assets",
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )
