"""The core file store: bytes kept by their SHA-256 (content-addressed, so the same upload is
stored once), with a size limit, and the content check every upload goes through.

The default store is a local directory (``files.root``); the key of a file is the hex SHA-256 of
its bytes, kept in two levels of folders (``ab/cd/abcd…``). Writes go to a temporary file first
and are renamed into place, so a reader never sees half a file. Plugins keep the key, the media
type and the size in their own rows; the store knows only bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from guanxi.core.base.errors import NotFoundError, ValidationError

KEY = re.compile(r"^[0-9a-f]{64}$")

#: (media type, magic bytes at offset 0) of the formats uploads may be; the content decides the
#: type, never the file name or the type the client claims
_MAGIC: tuple[tuple[str, bytes], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF87a"),
    ("image/gif", b"GIF89a"),
    ("application/pdf", b"%PDF-"),
)


def sniff(data: bytes) -> str | None:
    """The media type of ``data`` by its magic bytes (PNG, JPEG, GIF, WebP, PDF), or None."""
    for media_type, magic in _MAGIC:
        if data.startswith(magic):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class LocalFileStore:
    """A content-addressed store in a local directory.

    :param root: the directory (created on first write).
    :param max_bytes: the largest file accepted.
    """

    def __init__(self, root: str | Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        if not KEY.match(key):
            raise NotFoundError("no such file")
        return self.root / key[:2] / key[2:4] / key

    def check(self, data: bytes, *, allowed: frozenset[str] | None = None, field: str = "file") -> str:
        """The media type of ``data`` if it may be stored: not empty, within ``max_bytes``, of a
        known format (and one of ``allowed`` when given).

        :raises ValidationError: naming what is wrong (size or content), never echoing the bytes.
        """
        if not data:
            raise ValidationError("the file is empty", field=field)
        if len(data) > self.max_bytes:
            raise ValidationError(f"the file is {len(data)} bytes; at most {self.max_bytes} are accepted", field=field)
        media_type = sniff(data)
        if media_type is None or (allowed is not None and media_type not in allowed):
            kinds = ", ".join(sorted(allowed)) if allowed is not None else "PNG, JPEG, GIF, WebP or PDF"
            raise ValidationError(f"the file's content is not one of {kinds} (checked by content, not name)", field=field)
        return media_type

    def put(self, data: bytes) -> str:
        """Store ``data`` (within ``max_bytes``) and return its key; storing the same bytes again
        is a no-op that returns the same key."""
        if len(data) > self.max_bytes:
            raise ValidationError(f"the file is {len(data)} bytes; at most {self.max_bytes} are accepted", field="file")
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        """The bytes under ``key``.

        :raises NotFoundError: an unknown or malformed key.
        """
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError("no such file") from None

    def exists(self, key: str) -> bool:
        return KEY.match(key) is not None and self._path(key).exists()
