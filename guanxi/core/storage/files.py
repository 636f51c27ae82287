"""The core file store: bytes kept by their SHA-256 (content-addressed, so the same upload is
stored once), with a size limit, and the content check every upload goes through.

The default store is a local directory (``files.root``); the key of a file is the hex SHA-256 of
its bytes, kept in two levels of folders (``ab/cd/abcd…``). Writes go to a temporary file first
and are renamed into place, so a reader never sees half a file. Plugins keep the key, the media
type and the size in their own rows; the store knows only bytes.

``files.backend = "s3"`` keeps the same keys as objects of an S3-compatible bucket
(:class:`S3FileStore`, through boto3: AWS S3, MinIO, Ceph, Alibaba OSS or Tencent COS in S3 mode).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from guanxi.core.base.errors import ConfigError, NotFoundError, ValidationError

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


class FileStore(Protocol):
    """What plugins use of a file store (``runtime.files``)."""

    max_bytes: int

    def check(self, data: bytes, *, allowed: frozenset[str] | None = None, field: str = "file") -> str: ...
    def put(self, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def size(self, key: str) -> int | None: ...
    def stored_before(self, cutoff: float) -> Iterator[str]: ...
    def delete_if_idle(self, key: str, cutoff: float) -> bool: ...


def check(data: bytes, max_bytes: int, *, allowed: frozenset[str] | None = None, field: str = "file") -> str:
    """The media type of ``data`` if it may be stored: not empty, within ``max_bytes``, of a
    known format (and one of ``allowed`` when given).

    :raises ValidationError: naming what is wrong (size or content), never echoing the bytes.
    """
    if not data:
        raise ValidationError("the file is empty", field=field)
    _check_size(data, max_bytes, field)
    media_type = sniff(data)
    if media_type is None or (allowed is not None and media_type not in allowed):
        kinds = ", ".join(sorted(allowed)) if allowed is not None else "PNG, JPEG, GIF, WebP or PDF"
        raise ValidationError(f"the file's content is not one of {kinds} (checked by content, not name)", field=field)
    return media_type


def _check_size(data: bytes, max_bytes: int, field: str = "file") -> None:
    if len(data) > max_bytes:
        raise ValidationError(f"the file is {len(data)} bytes; at most {max_bytes} are accepted", field=field)


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
        """See :func:`check`."""
        return check(data, self.max_bytes, allowed=allowed, field=field)

    def put(self, data: bytes) -> str:
        """Store ``data`` (within ``max_bytes``) and return its key; storing the same bytes again
        is a no-op that returns the same key."""
        _check_size(data, self.max_bytes)
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        try:
            os.utime(path)  # stored already: the grace before an unreferenced file is swept starts again
            return key
        except FileNotFoundError:
            pass  # not there (or swept this instant): write it
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

    def size(self, key: str) -> int | None:
        """The size in bytes of the file under ``key``, None when there is none."""
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotFoundError):
            return None

    def delete(self, key: str) -> None:
        """Remove the bytes under ``key`` (gone already: nothing to do). Callers delete only a key
        no reference of any tenant holds (:func:`guanxi.core.services.files.drop_unreferenced`)."""
        if KEY.match(key):
            self._path(key).unlink(missing_ok=True)

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """The keys of the files last stored (``put``) before ``cutoff`` (a Unix time)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/??/*"):
            if KEY.match(path.name):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        yield path.name

    def delete_if_idle(self, key: str, cutoff: float) -> bool:
        """Delete the file of ``key`` if it was last stored before ``cutoff``; whether it was.

        Race-free against a concurrent :meth:`put` of the same bytes: the file is first renamed
        aside (atomic), then its time is read again. A ``put`` before the rename touched it (it is
        put back); a ``put`` after it found no file and wrote a new one."""
        if not KEY.match(key):
            return False
        path = self._path(key)
        aside = path.with_name(f".sweep-{key}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if aside.stat().st_mtime >= cutoff:  # stored again meanwhile: it stays
            with contextlib.suppress(FileExistsError):  # a put may have written it anew (same bytes)
                os.link(aside, path)
            aside.unlink()
            return False
        aside.unlink()
        return True


class S3FileStore:
    """The same content-addressed store in an S3-compatible bucket: the object of a file is
    ``<prefix><key>``. Objects are written whole (S3 never shows half an object); storing bytes
    that are there already is a ``HEAD`` and no upload.

    :param client: a boto3 S3 client (endpoint, region and credentials chosen by the caller).
    """

    def __init__(self, client: Any, bucket: str, max_bytes: int, *, prefix: str = "") -> None:
        self.client, self.bucket, self.max_bytes, self.prefix = client, bucket, max_bytes, prefix

    @classmethod
    def from_settings(cls, settings: Any) -> S3FileStore:
        if not settings.s3_bucket:
            raise ConfigError("$.files.s3_bucket: the s3 file store needs a bucket")
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("$.files.backend: the s3 file store needs boto3 (install guanxi[s3])") from None

        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region or None,
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": settings.s3_addressing_style}),
        )
        return cls(client, settings.s3_bucket, settings.max_bytes, prefix=settings.s3_prefix)

    def _name(self, key: str) -> str:
        if not KEY.match(key):
            raise NotFoundError("no such file")
        return self.prefix + key

    def check(self, data: bytes, *, allowed: frozenset[str] | None = None, field: str = "file") -> str:
        """See :func:`check`."""
        return check(data, self.max_bytes, allowed=allowed, field=field)

    def put(self, data: bytes) -> str:
        _check_size(data, self.max_bytes)
        key = hashlib.sha256(data).hexdigest()
        if self.exists(key):  # stored already: touch it (a copy onto itself), so the sweep's grace starts again
            name = self._name(key)
            self.client.copy_object(
                Bucket=self.bucket,
                Key=name,
                CopySource={"Bucket": self.bucket, "Key": name},
                Metadata={"stored-at": str(int(time.time()))},
                MetadataDirective="REPLACE",
            )
        else:
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data, ChecksumAlgorithm="SHA256")
        return key

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError("no such file") from None
            raise
        data: bytes = body.read()
        return data

    def size(self, key: str) -> int | None:
        """The size in bytes of the object of ``key`` (a ``HEAD``), None when there is none."""
        from botocore.exceptions import ClientError

        if not KEY.match(key):
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        """Remove the object of ``key`` (S3 answers the same for one that is gone)."""
        if KEY.match(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """The keys of the objects last stored (written or touched by ``put``) before ``cutoff``."""
        limit = dt.datetime.fromtimestamp(cutoff, dt.UTC)
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if KEY.match(key) and item["LastModified"] < limit:
                    yield key

    def delete_if_idle(self, key: str, cutoff: float) -> bool:
        """Delete the object of ``key`` if it was last stored before ``cutoff`` (checked with a
        ``HEAD`` just before the ``DELETE``); whether it was. S3 has no rename, so a ``put`` of
        the same bytes between the two requests is the one window left (see docs/operations.md)."""
        from botocore.exceptions import ClientError

        if not KEY.match(key):
            return False
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        if head["LastModified"] >= dt.datetime.fromtimestamp(cutoff, dt.UTC):
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        return True

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        if not KEY.match(key):
            return False
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True
