"""Personal posters (溯源海报): a campaign's background with the inviter's QR code, name and
avatar composed at configured positions, rendered as PNG and cached on disk by a digest of
everything that goes into it (background bytes, layout, URL, name, avatar), so a change of any
input renders a new poster and an unchanged one is served from the cache."""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
import uuid
from pathlib import Path
from typing import Any

import msgspec

from guanxi.core.base.errors import ValidationError

MIN_SIDE, MAX_SIDE = 64, 4000  # pixels: a poster is at most 4000 x 4000


class Box(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    x: int
    y: int
    size: int


class TextBox(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    x: int
    y: int
    size: int = 32
    color: str = "#222222"


class PosterLayout(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where things go on a campaign's poster. ``background`` is the name of an image file in the
    configured ``poster_backgrounds_dir``; without one, a plain ``width`` x ``height`` canvas of
    ``background_color`` is used."""

    background: str | None = None
    width: int = 750
    height: int = 1334
    background_color: str = "#ffffff"
    qr: Box = Box(x=225, y=900, size=300)
    name: TextBox | None = TextBox(x=200, y=120)
    avatar: Box | None = Box(x=60, y=90, size=120)

    def __post_init__(self) -> None:
        if not (MIN_SIDE <= self.width <= MAX_SIDE and MIN_SIDE <= self.height <= MAX_SIDE):
            raise ValueError(f"width and height must be {MIN_SIDE} to {MAX_SIDE} pixels")
        for box in (self.qr, self.name, self.avatar):
            if box is not None and (box.x < 0 or box.y < 0 or not 8 <= box.size <= MAX_SIDE):
                raise ValueError(f"positions must not be negative and sizes must be 8 to {MAX_SIDE} pixels")


class PosterInputs(msgspec.Struct, frozen=True, kw_only=True):
    layout: PosterLayout
    url: str
    name: str
    avatar_url: str | None = None
    font_path: str = ""
    backgrounds_dir: str = ""


def background_path(name: str, backgrounds_dir: str) -> Path:
    """The background file ``name`` inside ``backgrounds_dir``: never a path outside it (a
    campaign manager must not publish any image the server can read), and a readable image."""
    if not backgrounds_dir:
        raise ValidationError("poster backgrounds are off: set poster_backgrounds_dir in [plugins.referral]", field="poster.background")
    folder = Path(backgrounds_dir).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise ValidationError(f"poster background {name!r} is not a file in poster_backgrounds_dir", field="poster.background")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValidationError(f"poster background {name!r} is not an image", field="poster.background") from None
    return path


def _background_digest(inputs: PosterInputs) -> str:
    if inputs.layout.background is None:
        return "plain"
    return hashlib.sha256(background_path(inputs.layout.background, inputs.backgrounds_dir).read_bytes()).hexdigest()


def cache_key(inputs: PosterInputs) -> str:
    raw = msgspec.json.encode([msgspec.to_builtins(inputs), _background_digest(inputs)])
    return hashlib.sha256(raw).hexdigest()[:32]


def _avatar(inputs: PosterInputs, size: int, font_path: str) -> Any:
    """The avatar from a ``data:image/...;base64,`` URL, else a disc with the name's initial
    (the server never fetches remote URLs while rendering)."""
    from PIL import Image, ImageDraw

    url = inputs.avatar_url or ""
    if url.startswith("data:image/") and ";base64," in url:
        try:
            image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
            return image.resize((size, size))
        except (ValueError, OSError):
            pass
    image = Image.new("RGB", (size, size), "#ffffff")
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, size - 1, size - 1), fill="#c0392b")
    initial = (inputs.name.strip() or "?")[0].upper()
    draw.text((size / 2, size / 2), initial, fill="#ffffff", anchor="mm", font=_font(font_path, size // 2))
    return image


#: the font of names on posters when ``font_path`` is empty: a Noto Sans SC subset shipped with
#: the plugin (ASCII and GB 2312; see fonts/README.md and its licence, fonts/OFL.txt)
DEFAULT_FONT = Path(__file__).parent / "fonts" / "NotoSansSC-Guanxi-subset.otf"


def _font(font_path: str, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(font_path or str(DEFAULT_FONT), size)


def render(inputs: PosterInputs) -> bytes:
    from PIL import Image, ImageDraw

    from guanxi.plugins.referral.qr import qr_image

    layout, font_path = inputs.layout, inputs.font_path
    if layout.background:
        canvas = Image.open(background_path(layout.background, inputs.backgrounds_dir)).convert("RGB")
    else:
        canvas = Image.new("RGB", (layout.width, layout.height), layout.background_color)
    canvas.paste(qr_image(inputs.url, layout.qr.size), (layout.qr.x, layout.qr.y))  # type: ignore[arg-type]
    if layout.avatar is not None:
        canvas.paste(_avatar(inputs, layout.avatar.size, font_path), (layout.avatar.x, layout.avatar.y))
    if layout.name is not None:
        draw = ImageDraw.Draw(canvas)
        draw.text((layout.name.x, layout.name.y), inputs.name, fill=layout.name.color, font=_font(font_path, layout.name.size))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def cache_dir(configured: str) -> Path:
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / "guanxi-referral-posters"
    path.mkdir(parents=True, exist_ok=True)
    return path


def poster_png(inputs: PosterInputs, *, cache: Path, owner: str) -> tuple[bytes, str, bool]:
    """The poster's PNG bytes, its cache key (an ETag) and whether it came from the cache.

    Files are named ``<owner>-<key>.png`` (``owner``: the token's id). Rendering a new version
    removes the token's older ones, so the cache holds one poster per token, and erasing a
    person removes their posters (:func:`forget`)."""
    key = cache_key(inputs)
    path = cache / f"{owner}-{key}.png"
    if path.is_file():
        return path.read_bytes(), key, True
    data = render(inputs)
    tmp = cache / f".{owner}-{key}.{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a concurrent reader sees the whole file or none
    for old in cache.glob(f"{owner}-*.png"):
        if old != path:
            old.unlink(missing_ok=True)
    return data, key, False


def forget(cache: Path, owner: str) -> int:
    """Delete the cached posters of one token; returns how many files went."""
    gone = 0
    for old in cache.glob(f"{owner}-*.png"):
        old.unlink(missing_ok=True)
        gone += 1
    return gone
