"""The file store's S3-compatible option, against a real S3-compatible server on loopback (moto
in server mode, over HTTP): content-addressed like the local store, size limits, unknown keys,
and a runtime configured with ``files.backend = "s3"`` keeping a received mail's attachment in
the bucket."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import msgspec
import pytest
from moto.server import ThreadedMotoServer

from guanxi import ConfigError, NotFoundError, Runtime, ValidationError
from guanxi.core.base.config import FilesSettings
from guanxi.core.storage.files import S3FileStore

ACCESS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing", "s3_region": "us-east-1", "s3_addressing_style": "path"}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def bucket(url: str) -> str:
    name = f"guanxi-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name)
    return name


def store(url: str, max_bytes: int = 1024 * 1024, prefix: str = "files/") -> S3FileStore:
    settings = FilesSettings(backend="s3", s3_bucket=bucket(url), s3_endpoint_url=url, s3_prefix=prefix, max_bytes=max_bytes, **ACCESS)
    return S3FileStore.from_settings(settings)


def test_bytes_are_stored_once_under_their_sha256_and_read_back(s3_url: str) -> None:
    files = store(s3_url)
    data = b"%PDF-1.7\n" + bytes(range(256)) * 10
    key = files.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert files.put(data) == key and files.get(key) == data and files.exists(key)
    objects = files.client.list_objects_v2(Bucket=files.bucket)["Contents"]
    assert [o["Key"] for o in objects] == [f"files/{key}"]


def test_unknown_and_malformed_keys_are_not_found_and_too_large_is_refused(s3_url: str) -> None:
    files = store(s3_url, max_bytes=100)
    assert not files.exists("0" * 64) and not files.exists("../etc/passwd")
    with pytest.raises(NotFoundError):
        files.get("0" * 64)
    with pytest.raises(NotFoundError):
        files.get("../etc/passwd")
    with pytest.raises(ValidationError, match="at most 100"):
        files.put(b"x" * 101)
    assert files.check(b"%PDF-1.4 small") == "application/pdf"


def test_size_and_delete_work_on_objects_and_deleting_a_gone_one_is_a_no_op(s3_url: str) -> None:
    files = store(s3_url)
    key = files.put(b"%PDF-1.7 delete me")
    assert files.size(key) == len(b"%PDF-1.7 delete me") and files.size("0" * 64) is None
    files.delete(key)
    assert not files.exists(key) and files.size(key) is None
    files.delete(key)  # gone already: nothing to do
    assert files.client.list_objects_v2(Bucket=files.bucket).get("KeyCount") == 0


def test_the_s3_backend_needs_a_bucket() -> None:
    with pytest.raises(ConfigError, match="s3_bucket"):
        S3FileStore.from_settings(FilesSettings(backend="s3"))


@pytest.mark.plugins("email")
class TestMailAttachmentsInS3:
    @pytest.fixture
    def plugin_config(self) -> dict[str, dict[str, Any]]:
        return {"email": {"address": "sales@shop.test", "smtp_host": "127.0.0.1", "inbound_secret": "s3-test-secret"}}

    async def test_a_received_attachment_lands_in_the_bucket(
        self, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, s3_url: str
    ) -> None:
        from email.message import EmailMessage

        from tests.plugins.email.conftest import signed

        runtime.state["files"] = files = store(s3_url, prefix="")
        grace = msgspec.structs.replace(runtime.settings.files, orphan_grace_s=0)  # bytes stored just now may go at once
        runtime.settings = msgspec.structs.replace(runtime.settings, files=grace)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@customer.test", "sales@shop.test", "Drawing", "<s3@customer.test>"
        msg.set_content("attached")
        drawing = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 50
        msg.add_attachment(drawing, maintype="image", subtype="png", filename="drawing.png")
        raw = msg.as_bytes()
        response = await client.post("/webhooks/email/main/raw", content=raw, headers=signed(raw, "s3-test-secret"))
        assert response.status_code == 200, response.text
        assert files.get(hashlib.sha256(drawing).hexdigest()) == drawing

    async def test_erasing_the_sender_deletes_the_object_once_no_tenant_references_it(
        self, runtime: Runtime, tenant_id: uuid.UUID, s3_url: str
    ) -> None:
        """The erasure of the person who sent an attachment removes its reference, and (no other
        reference of any tenant left) the object from the bucket."""
        from email.message import EmailMessage

        from guanxi import RequestContext, ingest
        from guanxi.core.queues import inbox
        from guanxi.core.services import privacy
        from guanxi.plugins.email import inbound
        from guanxi.plugins.email.settings import Mailbox

        runtime.state["files"] = files = store(s3_url, prefix="")
        grace = msgspec.structs.replace(runtime.settings.files, orphan_grace_s=0)  # bytes stored just now may go at once
        runtime.settings = msgspec.structs.replace(runtime.settings, files=grace)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "b@customer.test", "sales@shop.test", "Plan", "<s3-erase@customer.test>"
        msg.set_content("attached")
        plan = b"%PDF-1.7\n" + bytes(range(256)) * 20
        msg.add_attachment(plan, maintype="application", subtype="pdf", filename="plan.pdf")
        mailbox = Mailbox(address="sales@shop.test", smtp_host="127.0.0.1")
        event = inbound.parse(runtime, msg.as_bytes(), mailbox, tenant_id=tenant_id)
        await ingest(runtime, tenant_id, event)  # type: ignore[arg-type]
        await inbox.run_once(runtime, tenant_id=tenant_id)
        key = hashlib.sha256(plan).hexdigest()
        async with runtime.session(tenant_id) as s:
            customer = await _sender(s)
            exported = await privacy.export_customer_data(runtime, s, customer)
        assert [(f["key"], f["name"], f["size"]) for f in exported["files"]] == [(key, "plan.pdf", len(plan))]
        assert files.exists(key)
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            erased = await privacy.erase_customer(tx, customer)
        assert erased["files"] == 1 and not files.exists(key)


async def _sender(session: Any) -> uuid.UUID:
    from sqlalchemy import select

    from guanxi.core.domain.models import FileRef

    found: uuid.UUID = (await session.execute(select(FileRef.customer_id))).scalar_one()
    return found


async def test_the_sweep_deletes_unreferenced_objects_after_the_grace_and_keeps_the_rest(
    runtime: Runtime, tenant_id: uuid.UUID, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same sweep on the S3 store: an object no reference holds goes once it was last stored
    (written, or touched by a put of the same bytes) longer ago than the grace; referenced objects
    stay, and a reference whose interaction is gone is deleted with its object."""
    import time

    import msgspec

    from guanxi import RequestContext, add_file_ref
    from guanxi.core.services import files as file_service

    runtime.state["files"] = files = store(s3_url)
    runtime.settings = msgspec.structs.replace(runtime.settings, files=msgspec.structs.replace(runtime.settings.files, orphan_grace_s=3600))
    orphan, held, dangling = (files.put(b"%PDF-1.7 " + bytes([n]) * 100) for n in range(3))
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await add_file_ref(tx, held, "material", uuid.uuid4(), size=109)
        await add_file_ref(tx, dangling, "interaction", uuid.uuid4(), size=109)
    first = await file_service.sweep(runtime)
    assert (first.refs_dropped, first.files_deleted) == (1, 0)  # the dangling reference goes; all bytes are within the grace
    assert files.delete_if_idle(orphan, time.time() - 60) is False and files.exists(orphan)
    later = time.time() + 2 * 3600  # two hours on: everything is older than the grace
    monkeypatch.setattr(file_service.time, "time", lambda: later)
    result = await file_service.sweep(runtime)
    assert (result.refs_dropped, result.files_deleted) == (0, 2)
    assert [files.exists(k) for k in (orphan, held, dangling)] == [False, True, False]


def test_storing_bytes_again_touches_the_object(s3_url: str) -> None:
    """A put of bytes already there refreshes the object's time, so the sweep's grace starts again."""
    import time

    files = store(s3_url)
    key = files.put(b"%PDF-1.7 touch" * 10)
    first = files.client.head_object(Bucket=files.bucket, Key=files._name(key))["LastModified"]
    time.sleep(1.1)  # S3 times have a one-second resolution
    assert files.put(b"%PDF-1.7 touch" * 10) == key
    second = files.client.head_object(Bucket=files.bucket, Key=files._name(key))["LastModified"]
    assert second > first and files.get(key) == b"%PDF-1.7 touch" * 10
