"""The file store's sweep (``core.files_sweep``, daily): references whose message or interaction
is gone are deleted, and stored bytes no reference of any tenant holds are deleted once they were
last stored longer ago than ``files.orphan_grace_s``; bytes stored again (or referenced) meanwhile
are never lost, even when the store is written in the middle of the deletion.

This module covers the local directory store; ``test_files_s3.py`` the S3 one."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, select

from guanxi import RequestContext, Runtime, add_file_ref
from guanxi.core.domain.models import FileRef
from guanxi.core.queues.scheduler import job_kinds
from guanxi.core.services import counts, reminders
from guanxi.core.services import files as file_service
from guanxi.core.storage import files as storage
from guanxi.core.storage.files import LocalFileStore

HOUR = 3600.0


def with_grace(runtime: Runtime, grace_s: float) -> None:
    runtime.settings = msgspec.structs.replace(
        runtime.settings, files=msgspec.structs.replace(runtime.settings.files, orphan_grace_s=grace_s)
    )


def blob(n: int) -> bytes:
    return f"%PDF-1.7 file {n} ".encode() * 50


def age(store: LocalFileStore, key: str, seconds: float) -> None:
    """Make the file look stored ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(store._path(key), (then, then))


@pytest.fixture
def store(runtime: Runtime, tmp_path: Path) -> LocalFileStore:
    local = runtime.state["files"] = LocalFileStore(tmp_path / "files", 1024 * 1024)
    with_grace(runtime, HOUR)
    return local


async def ref(runtime: Runtime, tenant_id: uuid.UUID, key: str, kind: str, owner: uuid.UUID) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await add_file_ref(tx, key, kind, owner, size=10)


async def ref_count(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(FileRef))).scalar_one())


async def test_the_sweep_deletes_old_unreferenced_bytes_and_dangling_references_and_keeps_the_rest(
    runtime: Runtime, tenant_id: uuid.UUID, store: LocalFileStore
) -> None:
    orphan, young, held, dangling = (store.put(blob(n)) for n in range(4))
    for key in (orphan, held, dangling):
        age(store, key, 2 * HOUR)
    await ref(runtime, tenant_id, held, "material", uuid.uuid4())  # a plugin's row: kept as it is
    await ref(runtime, tenant_id, dangling, "interaction", uuid.uuid4())  # no such interaction (deleted)
    result = await file_service.sweep(runtime)
    assert (result.refs_dropped, result.files_deleted) == (1, 2)
    assert [store.exists(k) for k in (orphan, young, held, dangling)] == [False, True, True, False]
    assert await ref_count(runtime, tenant_id) == 1
    again = await file_service.sweep(runtime)
    assert (again.refs_dropped, again.files_deleted) == (0, 0)


async def test_bytes_stored_again_are_kept_by_the_sweep(runtime: Runtime, tenant_id: uuid.UUID, store: LocalFileStore) -> None:
    """Storing the same bytes again (a second mail with the same attachment, whose reference is
    not committed yet) starts the grace again: the sweep leaves them."""
    key = store.put(blob(1))
    age(store, key, 2 * HOUR)
    assert store.put(blob(1)) == key  # stored again: touched
    assert (await file_service.sweep(runtime)).files_deleted == 0
    assert store.exists(key)


def test_a_put_racing_the_deletion_never_loses_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deletion renames the file aside and reads its time again: a put just before the rename
    touched it (it is put back), a put just after found no file and wrote it anew."""
    local = LocalFileStore(tmp_path, 1024 * 1024)
    data = blob(7)
    key = local.put(data)
    age(local, key, 2 * HOUR)
    cutoff = time.time() - HOUR
    real_rename = os.rename

    def touched_then_renamed(src: str | Path, dst: str | Path) -> None:
        assert local.put(data) == key  # the put wins the race: it touches the file
        real_rename(src, dst)

    monkeypatch.setattr(storage.os, "rename", touched_then_renamed)
    assert local.delete_if_idle(key, cutoff) is False
    assert local.get(key) == data
    age(local, key, 2 * HOUR)

    def renamed_then_stored(src: str | Path, dst: str | Path) -> None:
        real_rename(src, dst)
        assert local.put(data) == key  # the put comes after: no file, so it writes one

    monkeypatch.setattr(storage.os, "rename", renamed_then_stored)
    local.delete_if_idle(key, cutoff)
    assert local.get(key) == data
    assert sorted(p.name for p in Path(tmp_path).rglob("*") if p.is_file()) == [key]  # nothing left aside
    monkeypatch.setattr(storage.os, "rename", real_rename)
    assert local.delete_if_idle(key, time.time() + 1) is True and not local.exists(key)
    assert hashlib.sha256(data).hexdigest() == key


async def test_erasure_leaves_bytes_stored_within_the_grace_to_the_sweep(
    runtime: Runtime, tenant_id: uuid.UUID, store: LocalFileStore
) -> None:
    key = store.put(blob(3))
    gone = await file_service.drop_unreferenced(runtime, [key])
    assert gone == [] and store.exists(key)  # an inbox event may still be on its way to reference it
    age(store, key, 2 * HOUR)
    assert await file_service.drop_unreferenced(runtime, [key]) == [key] and not store.exists(key)


async def test_the_daily_sweep_and_the_count_fold_are_core_job_kinds_of_the_deployment(runtime: Runtime) -> None:
    """Registered as core's; tests/core/test_deployment_jobs.py covers how they are scheduled."""
    for kind in (file_service.SWEEP_JOB, counts.FOLD_JOB):
        assert kind in reminders.DEPLOYMENT_JOBS and job_kinds(runtime)[kind][0] == "core"
