"""Thumbnails of uploaded images, made from the uploaded bytes only (never from a URL a user
gives: fetching one would let anyone make the server request internal addresses).

Pillow decodes the upload with its decompression-bomb guard (more than ``MAX_PIXELS`` pixels is
refused), turns it upright by its EXIF orientation, and scales it into a ``SIZE``-pixel square
box: JPEG, or PNG when the image has transparency."""

from __future__ import annotations

import io
import warnings

from guanxi.core.base.errors import ValidationError

SIZE = 320
MAX_PIXELS = 40_000_000


def make_thumbnail(data: bytes) -> tuple[bytes, str]:
    """``(bytes, media type)`` of the thumbnail of an uploaded image; a ValidationError naming
    ``file`` when the image cannot be decoded or is too large to decode safely."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise ValidationError(f"the image is {opened.width}×{opened.height}: at most {MAX_PIXELS:,} pixels", field="file")
                opened.seek(0)  # the first frame of an animation
                image = ImageOps.exif_transpose(opened)
                image.thumbnail((SIZE, SIZE))
                transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
                out = io.BytesIO()
                if transparent:
                    image.convert("RGBA").save(out, format="PNG", optimize=True)
                    return out.getvalue(), "image/png"
                image.convert("RGB").save(out, format="JPEG", quality=80, optimize=True)
                return out.getvalue(), "image/jpeg"
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"the image cannot be read: {exc}", field="file") from None
