"""References to the core file store's files (:class:`~guanxi.core.domain.models.FileRef`):
which message, interaction or material uses which file, so a person's files are listed in their
export and go with their erasure.

Keys are content-addressed and shared across tenants (two tenants storing the same bytes hold
one file), so bytes are deleted only when no reference of any tenant remains, checked after the
erasing transaction committed, on a connection that sees every tenant's references.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import msgspec
from sqlalchemy import delete, select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import FileRef
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.storage.files import KEY

log = logging.getLogger("guanxi.files")

#: An attachment's ``url`` naming a file of the core file store by its key (``guanxi-file:<key>``).
FILE_URL = "guanxi-file:"
#: What a reference may belong to.
OWNER_KINDS = ("message", "interaction", "material")


async def add_file_ref(
    tx: Tx,
    key: str,
    owner_kind: str,
    owner_id: uuid.UUID,
    *,
    size: int,
    customer_id: uuid.UUID | None = None,
    name: str | None = None,
    media_type: str | None = None,
) -> None:
    """Record that ``owner_kind`` ``owner_id`` uses the stored file ``key`` (again: nothing new),
    for the person ``customer_id`` when the file is theirs (an attachment they sent or were sent)."""
    if owner_kind not in OWNER_KINDS:
        raise ValidationError(f"a file reference belongs to one of {', '.join(OWNER_KINDS)}, not {owner_kind!r}", field="owner_kind")
    if not KEY.match(key):
        raise ValidationError("not a file store key", field="file_key")
    stmt = select(FileRef.id).where(FileRef.owner_kind == owner_kind, FileRef.owner_id == owner_id, FileRef.file_key == key)
    if (await tx.session.execute(stmt)).first() is not None:
        return
    tx.session.add(
        FileRef(
            file_key=key,
            owner_kind=owner_kind,
            owner_id=owner_id,
            customer_id=customer_id,
            name=(name or None) and name[:255],
            size=size,
            media_type=media_type and media_type[:100],
        )
    )


async def ref_attachments(tx: Tx, owner_kind: str, owner_id: uuid.UUID, customer_id: uuid.UUID, attachments: list[Any]) -> None:
    """Reference the attachments of a message that name stored files (``guanxi-file:<key>``)."""
    for item in attachments:
        found = msgspec.to_builtins(item)
        url = str(found.get("url") or "")
        key = url.removeprefix(FILE_URL)
        if not url.startswith(FILE_URL) or not KEY.match(key):
            continue
        size = await asyncio.to_thread(tx.runtime.files.size, key)
        if size is None:
            raise ValidationError(f"no stored file has the key of attachment {found.get('name') or key!r}", field="attachments")
        await add_file_ref(
            tx, key, owner_kind, owner_id, size=size, customer_id=customer_id, name=found.get("name"), media_type=found.get("mime_type")
        )


async def files_of(session: Any, customer_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """A person's files for their export: names, sizes and keys, never the bytes."""
    rows = await session.scalars(select(FileRef).where(FileRef.customer_id.in_(customer_ids)).order_by(FileRef.created_at, FileRef.id))
    return [
        {
            "key": r.file_key,
            "name": r.name,
            "size": r.size,
            "mediaType": r.media_type,
            "ownerKind": r.owner_kind,
            "ownerId": str(r.owner_id),
            "createdAt": r.created_at.isoformat(),
        }
        for r in rows
    ]


async def erase_files(tx: Tx, customer_ids: list[uuid.UUID]) -> int:
    """Delete the references of a person's messages and interactions; once the transaction
    committed, delete the bytes of those files no reference of any tenant holds any more."""
    keys = set((await tx.session.scalars(select(FileRef.file_key).where(FileRef.customer_id.in_(customer_ids)))).all())
    if not keys:
        return 0
    result = await tx.session.execute(delete(FileRef).where(FileRef.customer_id.in_(customer_ids)))
    runtime = tx.runtime

    async def collect() -> None:
        try:
            await drop_unreferenced(runtime, sorted(keys))
        except Exception as exc:  # the erasure committed: report, do not fail it (the bytes stay)
            log.warning("could not delete %d unreferenced files from the file store: %s", len(keys), type(exc).__name__)

    tx.after_commit(collect)
    return int(getattr(result, "rowcount", 0) or 0)


async def drop_unreferenced(runtime: Runtime, keys: list[str]) -> list[str]:
    """Delete from the file store the bytes of those ``keys`` no tenant references; return them.

    Reads the references of every tenant on an engine connection (the tenancy chokepoint scopes
    sessions; with row-level security, engine connections are the unscoped maintenance ones)."""
    table = FileRef.__table__
    async with runtime.engine.connect() as conn:
        held = set((await conn.execute(select(table.c.file_key).where(table.c.file_key.in_(keys)).distinct())).scalars())
    gone = [k for k in keys if k not in held]
    for key in gone:
        await asyncio.to_thread(runtime.files.delete, key)
    return gone
