"""QR codes of an entry point's URL, as PNG or SVG (segno)."""

from __future__ import annotations

import io

import segno


def qr_png(url: str, *, scale: int = 8, border: int = 4) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_svg(url: str, *, scale: int = 8, border: int = 4) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="svg", scale=scale, border=border, xmldecl=True)
    return out.getvalue()


def qr_image(url: str, size: int) -> object:
    """A PIL image of the QR code, ``size`` pixels square (for posters)."""
    from PIL import Image

    image = Image.open(io.BytesIO(qr_png(url, scale=10, border=2))).convert("RGB")
    return image.resize((size, size), Image.Resampling.NEAREST)
