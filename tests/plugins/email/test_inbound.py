"""Mail received on the raw-mail route: replies threaded to the message they answer and put on the
right customer, auto-replies marked and not counted, the owner notified, Chinese charsets read
as meant, attachments in the file store, malformed MIME taken without a 500."""

from __future__ import annotations

import base64
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import Interaction, Notification
from guanxi.core.queues import inbox, outbox
from guanxi.core.services import customers, identities
from guanxi.plugins.email import service
from tests.plugins.email.conftest import ADDRESS, FakeSmtp, email_config, signed

pytestmark = [pytest.mark.plugins("email"), pytest.mark.usefixtures("files")]
ROUTE = "/webhooks/email/main/raw"


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp)


async def post(client: httpx.AsyncClient, raw: bytes, **headers: str) -> httpx.Response:
    return await client.post(ROUTE, content=raw, headers=signed(raw) | headers)


async def received(runtime: Runtime, tenant_id: uuid.UUID) -> list[Interaction]:
    await inbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        rows = (await s.execute(select(Interaction).where(Interaction.direction == "in").order_by(Interaction.occurred_at))).scalars()
        return list(rows)


async def customer_with_email(runtime: Runtime, tenant_id: uuid.UUID, address: str, owner: uuid.UUID | None = None) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="Mei", emails=[address]))
        await identities.attach_identity(tx, c.id, identities.IdentityInput(channel="email", external_id=address))
        if owner is not None:
            c.owner_id = owner
    return c.id


async def test_a_reply_is_threaded_to_the_message_it_answers_and_lands_on_that_customer(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    customer = await customer_with_email(runtime, tenant_id, "mei@customer.test")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row, _ = await service.send_email(tx, service.EmailRequest(customer_id=customer, subject="Offer", text="Hi", idempotency_key="t1"))
    await outbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        sent = await s.get(outbox.OutboxMessage, (tenant_id, row.id))
    assert sent is not None and sent.provider_message_id
    reply = (
        f"From: Mei <MEI@customer.test>\nTo: {ADDRESS}\nSubject: Re: Offer\nDate: Mon, 04 May 2026 10:00:00 +0800\n"
        f"Message-ID: <r1@customer.test>\nIn-Reply-To: {sent.provider_message_id}\nReferences: {sent.provider_message_id}\n\n"
        "Yes please.\n\n> Hi\n"
    ).encode()
    assert (await post(client, reply)).status_code == 200
    (got,) = await received(runtime, tenant_id)
    assert (got.customer_id, got.kind, got.channel) == (customer, "message_in", "email")
    assert got.payload["reply_to_outbox_id"] == str(row.id)
    assert got.payload["thread"] == sent.provider_message_id
    assert got.text is not None and got.text.startswith("Yes please.")


async def test_an_unknown_sender_becomes_a_new_customer_matched_by_address_next_time(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    for n in (1, 2):
        raw = f"From: a@new.test\nTo: {ADDRESS}\nSubject: Q{n}\nMessage-ID: <q{n}@new.test>\n\nQuestion {n}\n".encode()
        assert (await post(client, raw)).status_code == 200
    first, second = await received(runtime, tenant_id)
    assert first.customer_id == second.customer_id


async def test_an_auto_reply_is_marked_and_notifies_nobody(runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
    from tests.access.conftest import make_user

    owner = await make_user(runtime, tenant_id, "owner@shop.test", "sales")
    await customer_with_email(runtime, tenant_id, "away@customer.test", owner=owner)
    auto = (
        f"From: away@customer.test\nTo: {ADDRESS}\nSubject: Out of office\nAuto-Submitted: auto-replied\n"
        "Message-ID: <ooo@customer.test>\n\nI am away.\n"
    ).encode()
    human = f"From: away@customer.test\nTo: {ADDRESS}\nSubject: Back\nMessage-ID: <back@customer.test>\n\nBack now.\n".encode()
    for raw in (auto, human):
        assert (await post(client, raw)).status_code == 200
    kinds = [i.kind for i in await received(runtime, tenant_id)]
    assert sorted(kinds) == ["auto_reply", "message_in"]
    async with runtime.session(tenant_id) as s:
        notes = (await s.execute(select(Notification).where(Notification.user_id == owner))).scalars().all()
    assert [(n.kind, n.title) for n in notes] == [("email.reply", "Mei replied: Back")]


def chinese(charset: str, text: str, subject: str) -> bytes:
    encoded = base64.b64encode(subject.encode(charset)).decode()
    name = "王偉" if charset == "big5" else "王伟"
    return (
        f"From: =?{charset}?B?{base64.b64encode(name.encode(charset)).decode()}?= <wang@customer.test>\n"
        f"To: {ADDRESS}\nSubject: =?{charset}?B?{encoded}?=\nMessage-ID: <{charset}@customer.test>\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(text.encode('gb18030' if charset != 'big5' else 'big5hkscs')).decode()}\n"
    ).encode()


@pytest.mark.parametrize(
    ("charset", "text", "subject"),
    [
        ("gb2312", "您好，请报价。镕", "询价"),  # 镕 is GBK, not GB2312: mislabelled mail is common
        ("gbk", "您好，请报价。", "询价单"),
        ("big5", "您好，請報價。", "詢價"),
    ],
)
async def test_chinese_charsets_in_headers_and_bodies_are_read_as_meant(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, charset: str, text: str, subject: str
) -> None:
    assert (await post(client, chinese(charset, text, subject))).status_code == 200
    (got,) = await received(runtime, tenant_id)
    assert (got.text, got.payload["subject"]) == (text, subject)


async def test_raw_8bit_gbk_headers_without_encoded_words_are_decoded(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    raw = b"From: x@customer.test\nTo: " + ADDRESS.encode() + b"\nSubject: " + "报价".encode("gbk") + b"\nMessage-ID: <8bit@x>\n\nhi\n"
    assert (await post(client, raw)).status_code == 200
    (got,) = await received(runtime, tenant_id)
    assert got.payload["subject"] == "报价"


async def test_malformed_mime_is_taken_with_its_defects_noted(runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
    """A multipart without its closing boundary and a part with a broken base64 body: what can
    be read is kept, the defects are noted, nothing fails."""
    raw = (
        f"From: x@customer.test\nTo: {ADDRESS}\nSubject: broken\nMessage-ID: <broken@x>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="zz"\n\n--zz\nContent-Type: text/plain\n\nstill readable\n'
        "--zz\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=a.pdf\n\n"
        "JVBERi0x!!!not-base64\n"
    ).encode()
    response = await post(client, raw)
    assert response.status_code == 200, response.text
    (got,) = await received(runtime, tenant_id)
    assert got.text == "still readable" and got.payload["defects"]


async def test_a_25_mb_attachment_goes_to_the_file_store_and_only_its_key_to_the_inbox(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    from guanxi.core.domain.models import InboxEvent

    data = bytes(range(256)) * (25 * 1024 * 1024 // 256)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "big@customer.test", ADDRESS, "Drawings", "<big@customer.test>"
    msg.set_content("See attached.")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename="drawings.bin")
    raw = msg.as_bytes()
    assert len(raw) > 25 * 1024 * 1024
    response = await post(client, raw)
    assert response.status_code == 200, response.text[:200]
    async with runtime.session(tenant_id) as s:
        (row,) = (await s.execute(select(InboxEvent))).scalars()
    assert len(str(row.event)) < 10_000  # the bytes are not in the inbox row
    (got,) = await received(runtime, tenant_id)
    (attachment,) = got.payload["attachments"]
    assert (attachment["name"], attachment["size"]) == ("drawings.bin", len(data))
    assert runtime.files.get(attachment["key"]) == data


async def test_the_raw_route_alone_takes_large_bodies(runtime: Runtime, client: httpx.AsyncClient) -> None:
    """Other routes keep the default body limit."""
    response = await client.post("/graphql", content=b"x" * (12 * 1024 * 1024), headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_storing_a_large_attachment_happens_off_the_event_loop(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, files: Any
) -> None:
    """While the raw route stores an attachment, another request is answered: the store's
    ``put`` is held until that answer arrives, which could never happen if it ran on the loop
    (the hold gives up after a while so a regression fails instead of hanging)."""
    import asyncio
    import threading

    started, answered, released = threading.Event(), threading.Event(), []
    put = files.put

    def held_put(data: bytes) -> str:
        started.set()
        released.append(answered.wait(timeout=20))
        return put(data)

    files.put = held_put
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "big@customer.test", ADDRESS, "Drawings", "<held@customer.test>"
    msg.set_content("See attached.")
    msg.add_attachment(bytes(range(256)) * 4096, maintype="application", subtype="octet-stream", filename="d.bin")
    raw = msg.as_bytes()

    async def meanwhile() -> int:
        await asyncio.to_thread(started.wait, 20)  # the upload is being stored
        response = await client.get("/healthz")
        answered.set()
        return response.status_code

    mail, health = await asyncio.gather(post(client, raw), meanwhile())
    assert (mail.status_code, health, released) == (200, 200, [True])
    (got,) = await received(runtime, tenant_id)
    assert files.get(got.payload["attachments"][0]["key"]) == bytes(range(256)) * 4096
