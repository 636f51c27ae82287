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
import time
import uuid
from typing import Any

import msgspec
from sqlalchemy import delete, select

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.contracts import JobRun
from guanxi.core.domain.models import FileRef, Interaction, OutboxMessage
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
    """Delete from the file store the bytes of those ``keys`` no tenant references and that were
    last stored longer ago than ``files.orphan_grace_s``; return the keys deleted.

    Reads the references of every tenant on an engine connection (the tenancy chokepoint scopes
    sessions; with row-level security, engine connections are the unscoped maintenance ones).
    Bytes are stored before their reference commits (an inbound mail's attachment is stored when
    the mail is parsed, referenced when the inbox applies it): the grace keeps a check that sees
    no reference yet from deleting them, and the store's ``delete_if_idle`` re-reads the time of
    the last ``put`` at the moment of deletion (see docs/operations.md, "Files")."""
    cutoff = time.time() - runtime.settings.files.orphan_grace_s
    table = FileRef.__table__
    async with runtime.engine.connect() as conn:
        held = set((await conn.execute(select(table.c.file_key).where(table.c.file_key.in_(keys)).distinct())).scalars())
    gone = []
    for key in (k for k in keys if k not in held):
        if await asyncio.to_thread(runtime.files.delete_if_idle, key, cutoff):
            gone.append(key)
    return gone


class SweepResult(msgspec.Struct, frozen=True, kw_only=True):
    refs_dropped: int
    files_deleted: int


#: the tables whose rows own references: a reference whose owner row is gone is dangling
_OWNERS: dict[str, Any] = {"message": OutboxMessage, "interaction": Interaction}


async def sweep(runtime: Runtime, *, batch: int = 500) -> SweepResult:
    """Sweep the file store of every tenant (the ``core.files_sweep`` job):

    1. references of messages and interactions that no longer exist (a row deleted without its
       references) are deleted;
    2. stored bytes no reference of any tenant holds (stored for a message that failed half-way,
       a tenant purged, an erasure whose deletion failed) are deleted once they were last stored
       longer ago than ``files.orphan_grace_s``.
    """
    refs = FileRef.__table__
    dropped = 0
    async with runtime.engine.begin() as conn:
        for kind, model in _OWNERS.items():
            alive = select(model.id).where(model.tenant_id == FileRef.tenant_id, model.id == FileRef.owner_id).exists()
            result = await conn.execute(delete(FileRef).where(FileRef.owner_kind == kind, ~alive))
            dropped += int(getattr(result, "rowcount", 0) or 0)
    cutoff = time.time() - runtime.settings.files.orphan_grace_s
    candidates = await asyncio.to_thread(lambda: list(runtime.files.stored_before(cutoff)))
    deleted = 0
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]
        async with runtime.engine.connect() as conn:
            held = set((await conn.execute(select(refs.c.file_key).where(refs.c.file_key.in_(chunk)).distinct())).scalars())
        for key in chunk:
            if key not in held and await asyncio.to_thread(runtime.files.delete_if_idle, key, cutoff):
                deleted += 1
    if dropped or deleted:
        log.info("file sweep: %d dangling references and %d unreferenced files deleted", dropped, deleted)
    return SweepResult(refs_dropped=dropped, files_deleted=deleted)


#: the job that sweeps the file store (once a day, for the whole deployment)
SWEEP_JOB = "core.files_sweep"
SWEEP_CRON = "17 3 * * *"


async def run_sweep(job: JobRun) -> None:
    await sweep(job.runtime)
