"""File references (core ``file_refs``): a received attachment is referenced from its
interaction, an outbound one from its message, a material's upload and thumbnail from the
material; a person's export lists their files (names, sizes, keys; never the bytes); erasure
deletes their references, and the bytes once no reference of any tenant remains (keys are
content-addressed and shared across tenants)."""

from __future__ import annotations

import io
import json
import uuid
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi import FILE_URL, Actor, Attachment, RequestContext, Runtime, ingest
from guanxi.core.domain.models import FileRef
from guanxi.core.queues import inbox, outbox
from guanxi.core.services import privacy
from guanxi.core.services.pipelines import create_tenant
from guanxi.plugins.email import inbound
from guanxi.plugins.email.settings import Mailbox
from tests.access.conftest import make_user
from tests.plugins.email.conftest import ADDRESS, FakeSmtp, email_config
from tests.plugins.email.test_inbound import customer_with_email

pytestmark = [pytest.mark.plugins("email", "materials"), pytest.mark.usefixtures("files")]
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp)


def mail(sender: str, data: bytes, name: str, maintype: str = "application", subtype: str = "pdf") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ADDRESS, "Files"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    msg.set_content("attached")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


async def receive(runtime: Runtime, tenant_id: uuid.UUID, raw: bytes) -> uuid.UUID:
    """Take one raw mail as the raw route and the IMAP poller do; return its sender's customer."""
    event = inbound.parse(runtime, raw, Mailbox(address=ADDRESS, smtp_host="127.0.0.1"), tenant_id=tenant_id)
    assert event is not None and not isinstance(event, list)
    await ingest(runtime, tenant_id, event)  # type: ignore[arg-type]
    await inbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        return (await s.execute(select(FileRef.customer_id).order_by(FileRef.created_at.desc()).limit(1))).scalar_one()


async def export(runtime: Runtime, tenant_id: uuid.UUID, customer: uuid.UUID) -> dict[str, Any]:
    async with runtime.session(tenant_id) as s:
        return await privacy.export_customer_data(runtime, s, customer)


async def erase(runtime: Runtime, tenant_id: uuid.UUID, customer: uuid.UUID) -> dict[str, int]:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        return await privacy.erase_customer(tx, customer)


async def refs(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(FileRef))).scalar_one())


async def other_tenant(runtime: Runtime) -> uuid.UUID:
    async with runtime.write_session(None) as session:
        return await create_tenant(session, f"files-{uuid.uuid4().hex[:8]}", "Other")


async def test_a_received_attachment_is_exported_by_name_and_size_and_erased_with_its_sender(
    runtime: Runtime, tenant_id: uuid.UUID, files: Any
) -> None:
    customer = await receive(runtime, tenant_id, mail("mei@customer.test", PDF, "offer.pdf"))
    key = files.put(PDF)
    exported = await export(runtime, tenant_id, customer)
    (entry,) = exported["files"]
    assert (entry["key"], entry["name"], entry["size"], entry["mediaType"], entry["ownerKind"]) == (
        key,
        "offer.pdf",
        len(PDF),
        "application/pdf",
        "interaction",
    )
    assert len(json.dumps(exported, default=str)) < len(PDF)  # names and keys, not the bytes
    erased = await erase(runtime, tenant_id, customer)
    assert erased["files"] == 1 and await refs(runtime, tenant_id) == 0
    assert not files.exists(key)  # no reference left anywhere: the bytes are gone
    assert (await export(runtime, tenant_id, customer))["files"] == []
    assert (await erase(runtime, tenant_id, customer))["files"] == 0  # again: nothing


async def test_bytes_another_tenant_references_stay_until_its_last_reference_goes(
    runtime: Runtime, tenant_id: uuid.UUID, files: Any
) -> None:
    other = await other_tenant(runtime)
    ours = await receive(runtime, tenant_id, mail("mei@customer.test", PDF, "offer.pdf"))
    theirs = await receive(runtime, other, mail("li@elsewhere.test", PDF, "same.pdf"))
    key = files.put(PDF)
    await erase(runtime, tenant_id, ours)
    assert files.exists(key) and await refs(runtime, other) == 1  # the other tenant still uses them
    assert (await export(runtime, other, theirs))["files"][0]["name"] == "same.pdf"
    await erase(runtime, other, theirs)
    assert not files.exists(key)


async def test_a_material_keeps_bytes_that_an_erased_person_also_sent(runtime: Runtime, tenant_id: uuid.UUID, files: Any) -> None:
    from PIL import Image

    from guanxi.plugins.materials import library

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
    png = buf.getvalue()
    user = await make_user(runtime, tenant_id, "mk@shop.test", "marketing")
    ctx = RequestContext(tenant_id=tenant_id, actor=Actor(kind="user", user_id=user, roles=("marketing",)))
    async with runtime.transaction(ctx) as tx:
        material = await library.create_material(tx, library.MaterialInput(kind="image", title="Logo"), file=png, file_name="logo.png")
    async with runtime.session(tenant_id) as s:
        kept = {(r.owner_kind, r.owner_id, r.file_key, r.size) for r in (await s.execute(select(FileRef))).scalars()}
    assert kept == {
        ("material", material.id, material.file_key, len(png)),
        ("material", material.id, material.thumb_key, files.size(material.thumb_key)),
    }
    customer = await receive(runtime, tenant_id, mail("mei@customer.test", png, "logo.png", "image", "png"))
    await erase(runtime, tenant_id, customer)
    assert files.get(material.file_key) == png and files.exists(material.thumb_key)


async def test_an_outbound_attachment_is_referenced_from_its_message_and_erased_with_the_recipient(
    runtime: Runtime, tenant_id: uuid.UUID, files: Any
) -> None:
    key = files.put(PDF)
    customer = await customer_with_email(runtime, tenant_id, "mei@customer.test")
    quote = Attachment(kind="file", url=FILE_URL + key, name="quote.pdf", mime_type="application/pdf")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        request = outbox.SendRequest(customer_id=customer, channel="email", idempotency_key="q1", text="Quote", attachments=[quote])
        row, _ = await outbox.send_message(tx, request)
    (entry,) = (await export(runtime, tenant_id, customer))["files"]
    assert (entry["ownerKind"], entry["ownerId"], entry["name"], entry["size"]) == ("message", str(row.id), "quote.pdf", len(PDF))
    assert (await erase(runtime, tenant_id, customer))["files"] == 1
    assert not files.exists(key)


async def test_an_attachment_naming_no_stored_file_is_refused(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi import ValidationError

    customer = await customer_with_email(runtime, tenant_id, "mei@customer.test")
    ghost = Attachment(kind="file", url=FILE_URL + "0" * 64, name="ghost.pdf")
    with pytest.raises(ValidationError, match="no stored file"):
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await outbox.send_message(
                tx, outbox.SendRequest(customer_id=customer, channel="email", idempotency_key="g", attachments=[ghost])
            )


async def test_a_store_that_fails_to_delete_does_not_fail_the_committed_erasure(
    runtime: Runtime, tenant_id: uuid.UUID, files: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The bytes go after the erasure committed: a store error then is logged (the bytes stay),
    and the erasure still answers with its counts."""
    customer = await receive(runtime, tenant_id, mail("mei@customer.test", PDF, "offer.pdf"))
    key = files.put(PDF)

    def down(key: str, cutoff: float) -> bool:
        raise ConnectionError("the store is down")

    monkeypatch.setattr(files, "delete_if_idle", down)
    erased = await erase(runtime, tenant_id, customer)
    assert erased["files"] == 1 and await refs(runtime, tenant_id) == 0 and files.exists(key)
    assert "could not delete 1 unreferenced files" in caplog.text and "store is down" not in caplog.text
