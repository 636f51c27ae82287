"""The URLs of an inviter's web entry point: the tracked link, its QR codes and the poster."""

from __future__ import annotations


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/r/{token}"


def image_url(public_url: str, token: str, name: str) -> str:
    """``name`` is ``qr.png``, ``qr.svg`` or ``poster.png``."""
    return f"{link_url(public_url, token)}/{name}"
