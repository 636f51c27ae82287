"""HTTP routes: ``POST /materials/upload`` (multipart, authenticated like the API), and the public
radar pages ``GET /m/{token}`` (+ ``/file``, ``POST /beacon``, ``POST /forward``).

The public routes trust only the token: it is signed (HMAC, a key derived from the server
secret), so a tampered or made-up token is a 404 before anything is read or recorded."""

from __future__ import annotations

import html
import secrets
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import ClientException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromPath
from sqlalchemy import select

from guanxi.core.auth import AuthenticationError, authenticator_of
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import GuanxiError, NotFoundError
from guanxi.core.runtime import Runtime
from guanxi.core.storage.files import sniff
from guanxi.core.storage.tenancy import unscoped
from guanxi.plugins.materials import library, radar, tokens
from guanxi.plugins.materials.models import Material, MaterialShare
from guanxi.plugins.materials.settings import MaterialsSettings

NAME = "materials"
VISIT_ACTOR = Actor(kind="plugin", name=NAME)
MANAGE_ROLES = ("admin", "manager", "marketing")
COOKIE = "gx_mv"
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _settings(runtime: Runtime) -> MaterialsSettings:
    settings: MaterialsSettings = runtime.plugin_settings(NAME)
    return settings


def radar_key(runtime: Runtime) -> bytes:
    return tokens.derive_key(authenticator_of(runtime).secret)


def link_url(runtime: Runtime, share_id: uuid.UUID) -> str:
    return f"{_settings(runtime).public_url.rstrip('/')}/m/{tokens.sign(radar_key(runtime), share_id)}"


def _client_error(exc: GuanxiError) -> ClientException:
    return ClientException(detail=str(exc), extra={"code": exc.code, "field": exc.field})


async def upload(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Create an image or file material from a multipart form: ``file`` (the bytes), ``kind``
    (``image``, ``file``, or ``miniprogram`` with ``appid`` and ``page_path``: a mini-program card
    whose cover is the image), ``title``, optional ``folder``, ``tags`` and ``roles`` (comma-separated)."""
    runtime: Runtime = request.app.state.runtime
    try:
        ctx, _ = await authenticator_of(runtime).authenticate(request.headers.get("authorization"))
    except AuthenticationError as exc:
        raise NotAuthorizedException(detail=str(exc)) from None
    if not set(ctx.actor.roles) & set(MANAGE_ROLES):
        raise PermissionDeniedException(detail=f"uploading materials needs one of the roles {', '.join(MANAGE_ROLES)}")
    form = await request.form()
    part = form.get("file")
    if part is None or not hasattr(part, "read"):
        raise ClientException(detail="the form needs a 'file' part", extra={"code": "VALIDATION", "field": "file"})
    data = await part.read()

    def text(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    entry = library.MaterialInput(
        kind=text("kind") or "file",
        title=text("title") or (part.filename or ""),
        folder=text("folder"),
        tags=library.split(text("tags")),
        roles=library.split(text("roles")),
        appid=text("appid") or None,
        page_path=text("page_path") or None,
    )
    if entry.kind not in library.UPLOAD_KINDS:
        raise ClientException(detail="kind must be image, file or miniprogram for an upload", extra={"code": "VALIDATION", "field": "kind"})
    try:
        async with runtime.transaction(ctx) as tx:
            row = await library.create_material(tx, entry, file=data, file_name=part.filename)
    except GuanxiError as exc:
        raise _client_error(exc) from None
    body = {"id": str(row.id), "kind": row.kind, "title": row.title, "mediaType": row.media_type, "size": row.size}
    return Response(body, status_code=201)


async def _share(runtime: Runtime, token: str) -> tuple[uuid.UUID, MaterialShare, Material]:
    share_id = tokens.verify(radar_key(runtime), token)
    if share_id is None:
        raise NotFoundException("unknown link")
    # the token names its share and so its tenant: one deployment serves every tenant's links
    async with runtime.session(None) as session, unscoped(session):
        tenant_id = (await session.execute(select(MaterialShare.tenant_id).where(MaterialShare.id == share_id))).scalar_one_or_none()
    # a tenant that disabled the plugin or was suspended has no live links (like an unknown one)
    if tenant_id is None or not await runtime.plugin_enabled("materials", tenant_id) or await runtime.tenant_suspended(tenant_id):
        raise NotFoundException("unknown link")
    async with runtime.session(tenant_id) as session:
        found = await session.get(MaterialShare, (tenant_id, share_id))
        material = await session.get(Material, (tenant_id, found.material_id)) if found else None
    if found is None or material is None:
        raise NotFoundException("unknown link")
    return tenant_id, found, material


def _visitor_cookie(request: Request[Any, Any, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.cookies.get(COOKIE, ""))
    except ValueError:
        return None


def _page(material: Material, token: str, view_id: uuid.UUID | None, nonce: str, state: str | None, public_url: str) -> str:
    title = html.escape(material.title)
    # link-preview cards (WeCom, WeChat) read Open Graph tags; the image is the upload's thumbnail
    og = f'<meta property="og:title" content="{title}">'
    if material.thumb_key is not None:
        og += f'<meta property="og:image" content="{html.escape(public_url.rstrip("/"), quote=True)}/m/{token}/thumb">'
    if material.kind == "article":
        content = material.body or ""  # sanitised when stored
    elif material.kind == "image":
        content = f'<img src="/m/{token}/file" alt="{title}">'
    elif material.kind == "miniprogram":
        content = f'<img src="/m/{token}/file" alt="{title}"><p>在微信中打开小程序查看 (open it in WeChat)</p>'
    elif material.kind == "file":
        content = f'<p><a href="/m/{token}/file">{html.escape(material.body or material.title)}</a></p>'
    else:
        content = f'<p><a href="{html.escape(material.url or "", quote=True)}" rel="noopener noreferrer">{title}</a></p>'
    script = ""
    if view_id is not None:
        # report the visible time on every hide and on leaving; repeats only raise it
        script = f"""<script nonce="{nonce}">
(function(){{var t=0,s=Date.now(),v=!document.hidden;
function send(f){{if(v){{t+=Date.now()-s;s=Date.now();}}
navigator.sendBeacon("/m/{token}/beacon",JSON.stringify({{view:"{view_id}",ms:t,final:f}}));}}
document.addEventListener("visibilitychange",function(){{if(document.hidden){{send(true);v=false;}}else{{v=true;s=Date.now();}}}});
window.addEventListener("pagehide",function(){{send(true);}});}})();
</script>"""
    return (
        '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        + (f'<meta name="guanxi-visitor-state" content="{state}">' if state else "")
        + og
        + f"<title>{title}</title></head><body><h1>{title}</h1>{content}{script}</body></html>"
    )


@get("/m/{token:str}", media_type="text/html")
async def material_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
    """The material's page; records a view (or a preview) and sets the visitor cookie."""
    runtime: Runtime = request.app.state.runtime
    tenant_id, found, material = await _share(runtime, token)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=VISIT_ACTOR)) as tx:
        view, visitor = await radar.open_share(
            tx,
            found,
            material,
            visitor_id=_visitor_cookie(request),
            user_agent=request.headers.get("user-agent"),
            settings=_settings(runtime),
        )
    nonce = secrets.token_urlsafe(16)
    policy = f"default-src 'none'; img-src 'self' https:; script-src 'nonce-{nonce}'; connect-src 'self'; style-src 'unsafe-inline'"
    headers = {**NO_STORE, "Content-Security-Policy": policy}
    state = radar.visitor_state(visitor.id) if visitor is not None else None
    page = _page(material, token, view.id if visitor else None, nonce, state, _settings(runtime).public_url)
    response = Response(page, media_type="text/html", headers=headers)
    if visitor is not None:
        response.set_cookie(COOKIE, str(visitor.id), max_age=365 * 86400, httponly=True, samesite="lax", path="/m")
    return response


@get("/m/{token:str}/thumb")
async def material_thumbnail(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    """An image material's thumbnail (made from the upload; the page's ``og:image``)."""
    runtime: Runtime = request.app.state.runtime
    _tenant, _found, material = await _share(runtime, token)
    if material.thumb_key is None:
        raise NotFoundException("this material has no thumbnail")
    try:
        data = runtime.files.get(material.thumb_key)
    except NotFoundError:
        raise NotFoundException("the thumbnail is missing from the store") from None
    return Response(data, media_type=sniff(data) or "application/octet-stream", headers={**NO_STORE, "Content-Disposition": "inline"})


@get("/m/{token:str}/file")
async def material_file(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    """An image or file material's bytes, with the media type found by content at upload."""
    runtime: Runtime = request.app.state.runtime
    _tenant, _found, material = await _share(runtime, token)
    if material.file_key is None:
        raise NotFoundException("this material has no file")
    try:
        data = runtime.files.get(material.file_key)
    except NotFoundError:
        raise NotFoundException("the file is missing from the store") from None
    disposition = "inline" if material.kind in ("image", "miniprogram") else "attachment"
    return Response(
        data, media_type=material.media_type or "application/octet-stream", headers={**NO_STORE, "Content-Disposition": disposition}
    )


class OpenBody(msgspec.Struct, forbid_unknown_fields=True):
    #: the visitor id an earlier open returned (apps keep it; a browser has the cookie instead)
    visitor: uuid.UUID | None = None


@post("/m/{token:str}/open", status_code=200)
async def material_open(request: Request[Any, Any, Any], token: FromPath[str]) -> dict[str, Any]:
    """An opening reported by an app (a mini-program page opened from a card carries the token
    in its ``gx`` query parameter): records a view (or a preview) as the page does, and returns
    ``{"view", "visitor", "state"}`` for the app's beacons, its next open and an entry point."""
    runtime: Runtime = request.app.state.runtime
    tenant_id, found, material = await _share(runtime, token)
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw, type=OpenBody) if raw.strip() else OpenBody()
    except msgspec.DecodeError as exc:
        raise ClientException(detail=f"open body: {exc}", extra={"code": "VALIDATION", "field": "body"}) from None
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=VISIT_ACTOR)) as tx:
        view, visitor = await radar.open_share(
            tx, found, material, visitor_id=body.visitor, user_agent=request.headers.get("user-agent"), settings=_settings(runtime)
        )
    return {
        "view": str(view.id) if visitor else None,
        "visitor": str(visitor.id) if visitor else None,
        "state": radar.visitor_state(visitor.id) if visitor else None,
    }


class BeaconBody(msgspec.Struct, forbid_unknown_fields=True):
    view: uuid.UUID
    ms: int
    final: bool = False


@post("/m/{token:str}/beacon", status_code=204)
async def material_beacon(request: Request[Any, Any, Any], token: FromPath[str]) -> None:
    """The page's visibility beacon: ``{"view": id, "ms": visible ms, "final": bool}``."""
    runtime: Runtime = request.app.state.runtime
    tenant_id, found, _material = await _share(runtime, token)
    try:
        body = msgspec.json.decode(await request.body(), type=BeaconBody)
    except msgspec.DecodeError as exc:
        raise ClientException(detail=f"beacon body: {exc}", extra={"code": "VALIDATION", "field": "body"}) from None
    try:
        async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=VISIT_ACTOR)) as tx:
            await radar.beacon(tx, found, body.view, body.ms, body.final, _settings(runtime))
    except NotFoundError:
        raise NotFoundException("unknown view") from None
    except GuanxiError as exc:
        raise _client_error(exc) from None


@post("/m/{token:str}/forward", status_code=201)
async def material_forward(request: Request[Any, Any, Any], token: FromPath[str]) -> dict[str, str]:
    """A child link to pass on: its views count for the same sharer, as forwards of this link."""
    runtime: Runtime = request.app.state.runtime
    tenant_id, found, _material = await _share(runtime, token)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=VISIT_ACTOR)) as tx:
        child = await radar.forward(tx, found)
    url = link_url(runtime, child.id)
    return {"token": url.rsplit("/", 1)[1], "url": url}


def routes(runtime: Runtime) -> list[Any]:
    """The upload route, and the public radar routes behind a per-address rate limit
    (``rate_limit_per_minute``; 0: none), counted per process, that answers 429 beyond it."""
    limit = runtime.settings.files.max_bytes + 64 * 1024  # the file and the form around it
    upload_route = post("/materials/upload", request_max_body_size=limit, status_code=201)(upload)
    public = [material_page, material_thumbnail, material_file, material_open, material_beacon, material_forward]
    per_minute = _settings(runtime).rate_limit_per_minute
    if not per_minute:
        return [upload_route, *public]
    limiter = RateLimitConfig(rate_limit=("minute", per_minute), store="materials_radar_rate_limit")
    return [upload_route, Router(path="/", route_handlers=public, middleware=[limiter.middleware])]
