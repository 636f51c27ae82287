"""The library: create materials (articles sanitised, files checked by content) and list the
ones a caller's roles may see."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import Select, or_, select

from guanxi import add_file_ref
from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.models import utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.plugins.materials.models import Material
from guanxi.plugins.materials.sanitize import clean
from guanxi.plugins.materials.thumbnails import make_thumbnail

KINDS = frozenset({"article", "image", "file", "video", "link", "miniprogram"})
URL_KINDS = frozenset({"video", "link"})
#: kinds made from an upload (POST /materials/upload): the file, or a mini-program card's cover
UPLOAD_KINDS = frozenset({"image", "file", "miniprogram"})
APPID = re.compile(r"^wx[0-9a-f]{16}$")
#: a mini-program page: a relative path with an optional query, no scheme, host or fragment
PAGE_PATH = re.compile(r"^[A-Za-z0-9_\-./]+(\?[A-Za-z0-9_\-.=&%]*)?$")
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FILE_TYPES = IMAGE_TYPES | {"application/pdf"}
ROLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TAG = re.compile(r"^[^,/]{1,50}$")
MAX_BODY = 200_000


class MaterialInput(msgspec.Struct, kw_only=True):
    kind: str
    title: str
    body: str | None = None
    url: str | None = None
    folder: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    roles: list[str] = msgspec.field(default_factory=list)
    appid: str | None = None
    page_path: str | None = None


def _joined(values: list[str]) -> str:
    return f",{','.join(values)}," if values else ""


def split(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _check(data: MaterialInput) -> None:
    if data.kind not in KINDS:
        raise ValidationError(f"kind must be one of {sorted(KINDS)}, not {data.kind!r}", field="kind")
    if not 0 < len(data.title.strip()) <= 200:
        raise ValidationError("title must be 1 to 200 characters", field="title")
    if len(data.folder) > 200:
        raise ValidationError("folder must be at most 200 characters", field="folder")
    for tag in data.tags:
        if not TAG.match(tag):
            raise ValidationError(f"a tag is 1 to 50 characters without commas or slashes, not {tag[:60]!r}", field="tags")
    for role in data.roles:
        if not ROLE.match(role):
            raise ValidationError(f"not a role name: {role[:40]!r}", field="roles")
    if data.kind == "article":
        if not data.body or len(data.body) > MAX_BODY:
            raise ValidationError(f"an article needs a body of 1 to {MAX_BODY} characters", field="body")
    elif data.kind == "miniprogram":
        if not APPID.match(data.appid or ""):
            raise ValidationError("a mini-program card needs its appid: wx and 16 hex digits", field="appid")
        path = data.page_path or ""
        if len(path) > 300 or not PAGE_PATH.match(path) or path.startswith("/") or ".." in path:
            raise ValidationError(
                "pagePath must be the mini-program page's relative path (pages/x/index, an optional ?query), at most 300",
                field="pagePath",
            )
    elif data.kind in URL_KINDS:
        parts = urlsplit(data.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname or len(data.url or "") > 2000:
            raise ValidationError("url must be an http(s) URL of at most 2000 characters", field="url")


async def create_material(tx: Tx, data: MaterialInput, *, file: bytes | None = None, file_name: str | None = None) -> Material:
    """A new material owned by the caller. ``article`` bodies are sanitised; ``image`` and
    ``file`` need ``file`` (checked by content and size, stored in the core file store);
    ``video`` and ``link`` need a URL, which is stored and never fetched."""
    _check(data)
    stored: list[tuple[str, int, str | None, str | None]] = []
    row = Material(
        kind=data.kind,
        title=data.title.strip(),
        folder=data.folder.strip("/ "),
        tags=_joined(sorted(set(data.tags))),
        roles=_joined(sorted(set(data.roles))),
        owner_id=tx.ctx.actor.user_id,
    )
    if data.kind == "article":
        row.body = clean(data.body or "")
    elif data.kind in URL_KINDS:
        row.url = data.url
    else:
        if file is None:
            raise ValidationError(f"an {data.kind} material needs an uploaded file", field="file")
        store = tx.runtime.files
        row.media_type = store.check(file, allowed=IMAGE_TYPES if data.kind in ("image", "miniprogram") else FILE_TYPES)
        if data.kind == "miniprogram":
            row.appid, row.page_path = data.appid, data.page_path
        if row.media_type in IMAGE_TYPES:
            thumb, thumb_type = make_thumbnail(file)  # refuses an image that does not decode, before anything is stored
            row.thumb_key = store.put(thumb)
            stored.append((row.thumb_key, len(thumb), "thumbnail", thumb_type))
        row.file_key = store.put(file)
        row.size = len(file)
        row.body = (file_name or "")[:200] or None
        stored.append((row.file_key, len(file), row.body, row.media_type))
    tx.session.add(row)
    await tx.session.flush()
    for key, size, name, media_type in stored:  # the files it uses, so they outlive no reference
        await add_file_ref(tx, key, "material", row.id, size=size, name=name, media_type=media_type)
    audit(tx, "material.create", "material", row.id, {"kind": row.kind, "title": row.title})
    return row


def visible(stmt: Select[Any], roles: tuple[str, ...]) -> Select[Any]:
    """Only materials whose roles include one of ``roles`` (or that name none); admins see all."""
    if "admin" in roles:
        return stmt
    return stmt.where(or_(Material.roles == "", *[Material.roles.contains(f",{r},") for r in roles]))


def list_stmt(
    roles: tuple[str, ...], *, folder: str | None = None, tag: str | None = None, kind: str | None = None, archived: bool | None = False
) -> Select[Any]:
    """The materials ``roles`` may see, newest first; ``archived``: only archived ones (True),
    only the others (False, the library), or both (None)."""
    stmt = select(Material)
    if archived is not None:
        stmt = stmt.where(Material.archived_at.is_not(None) if archived else Material.archived_at.is_(None))
    if folder is not None:
        stmt = stmt.where(Material.folder == folder.strip("/ "))
    if tag is not None:
        stmt = stmt.where(Material.tags.contains(f",{tag},"))
    if kind is not None:
        stmt = stmt.where(Material.kind == kind)
    return visible(stmt, roles).order_by(Material.created_at.desc(), Material.id)


async def material_for(session: Any, material_id: uuid.UUID, roles: tuple[str, ...]) -> Material:
    found = (await session.execute(visible(select(Material).where(Material.id == material_id), roles))).scalar_one_or_none()
    if found is None:
        raise NotFoundError("material not found")
    return found


async def set_archived(tx: Tx, material_id: uuid.UUID, roles: tuple[str, ...], archived: bool) -> Material:
    """Archive a material (out of the library, no new radar links; the links sent stay open, its
    views and report stay) or restore it. Doing it twice changes nothing and is not audited again."""
    material = await material_for(tx.session, material_id, roles)
    if (material.archived_at is not None) != archived:
        material.archived_at = utcnow() if archived else None
        await tx.session.flush()
        audit(tx, "material.archive" if archived else "material.restore", "material", material.id, {"title": material.title})
    return material
