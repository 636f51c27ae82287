"""The email channel against the channel contract suite, sending to a real SMTP server (aiosmtpd
on loopback) and receiving raw RFC 5322 mail on its signed webhook; plus what SMTP adds: the
headers of what arrives, DKIM verified with dkimpy, and a connection dropped mid-DATA."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import uuid
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from guanxi import Channel, DeliveryResult, OutboundMessage, PermanentDeliveryError, RequestContext, Runtime
from guanxi.core.queues import outbox
from guanxi.core.services import accounts
from guanxi.testing import ChannelContract
from tests.plugins.email.conftest import ADDRESS, FakeSmtp, email_config, mailbox, signed


def report(message_id: str, status: str, event_id: str) -> bytes:
    """A delivery report on ``message_id`` as a receiving MTA or mail client sends it: an RFC
    3464 DSN (delivered, bounced), an RFC 8098 read receipt (read), an ARF complaint."""
    if status == "read":
        kind, part = (
            "disposition-notification",
            (
                "Content-Type: message/disposition-notification\n\nReporting-UA: mail.customer.test\n"
                f"Original-Message-ID: {message_id}\nDisposition: manual-action/MDN-sent-manually; displayed\n"
            ),
        )
    elif status == "complained":
        kind, part = "feedback-report", "Content-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n"
    else:
        action, code = ("delivered", "2.0.0") if status == "delivered" else ("failed", "5.1.1")
        kind, part = (
            "delivery-status",
            (
                "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.customer.test\n\n"
                f"Final-Recipient: rfc822; someone@customer.test\nAction: {action}\nStatus: {code}\n"
            ),
        )
    headers = f"Content-Type: text/rfc822-headers\n\nMessage-ID: {message_id}\nSubject: x\n"
    return (
        f"From: MAILER-DAEMON@customer.test\nTo: {ADDRESS}\nDate: Mon, 04 May 2026 10:00:00 +0000\n"
        f"Message-ID: <{event_id}@mx.customer.test>\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type={kind}; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\nA report.\n\n--b\n{part}\n--b\n{headers}\n--b--\n"
    ).encode()


class TestEmailContract(ChannelContract):
    channel_name = "email"
    plugins = ("email",)
    webhook_path = "/webhooks/email/main/raw"
    recipient = "contract@customer.test"
    receipt_statuses = ("delivered", "read", "bounced", "complained")

    @pytest.fixture
    def fake_provider(self, smtp: FakeSmtp) -> FakeSmtp:
        return smtp

    @pytest.fixture
    def plugin_config(self, smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
        return email_config(smtp)

    def arrange_success(self) -> None:
        self.provider.outcomes.append("ok")

    def arrange_transient_failure(self) -> None:
        self.provider.outcomes.append("transient")

    def arrange_permanent_failure(self) -> None:
        self.provider.outcomes.append("permanent")

    def arrange_slow(self) -> None:
        self.provider.outcomes.append("slow")

    def check_delivered(self, message: OutboundMessage, result: DeliveryResult) -> None:
        (got,) = self.provider.received
        mail = email.message_from_bytes(got["data"], policy=email.policy.default)
        assert (mail["To"], mail["From"], mail["Message-ID"]) == (message.recipient, ADDRESS, result.provider_message_id)
        assert got["rcpt_tos"] == [message.recipient]
        assert got["mail_from"].startswith("bounce+") and got["mail_from"].endswith("@shop.test")
        assert mail.get_body(("plain",)).get_content().strip() == message.text  # type: ignore[union-attr]

    def webhook_body(self, event_id: str, sender_id: str) -> bytes:
        return (
            f"From: Mei <{sender_id}@customer.test>\nTo: {ADDRESS}\nSubject: Hi\nDate: Mon, 04 May 2026 10:00:00 +0800\n"
            f"Message-ID: <{event_id}@customer.test>\n\nHi\n"
        ).encode()

    def sign(self, body: bytes) -> dict[str, str]:
        return signed(body)

    def receipt_body(self, event_id: str, provider_message_id: str, status: str) -> bytes:
        return report(provider_message_id if provider_message_id.startswith("<") else f"<{provider_message_id}>", status, event_id)

    # -- SMTP's own details --

    async def test_the_envelope_sender_is_a_verp_address_naming_the_message(self, channel: Channel, runtime: Runtime) -> None:
        from guanxi.plugins.email import tokens

        message = self.message()
        await channel.send(message)
        (got,) = self.provider.received
        assert tokens.read_verp(runtime, got["mail_from"], message.tenant_id) == message.id
        assert tokens.read_verp(runtime, got["mail_from"], uuid.uuid4()) is None  # another tenant's key does not open it

    async def test_a_connection_dropped_mid_data_is_retried_with_the_same_message_id(
        self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID
    ) -> None:
        """The server reads the message and cuts the connection before answering: the outbox
        retries, and the receiving side sees the same Message-ID twice, never two."""
        self.provider.outcomes.append("drop")
        row = await self.queue(runtime, tenant_id)
        await outbox.run_once(runtime, tenant_id=tenant_id)
        assert (await self.outbox_row(runtime, tenant_id, row.id)).status == "queued"
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # due now, not after the backoff
            (await tx.session.get(outbox.OutboxMessage, (tenant_id, row.id))).next_attempt_at = dt.datetime.now(dt.UTC)  # type: ignore[union-attr]
        await outbox.run_once(runtime, tenant_id=tenant_id)
        sent = await self.outbox_row(runtime, tenant_id, row.id)
        assert sent.status == "sent"
        ids = {email.message_from_bytes(a["data"])["Message-ID"] for a in self.provider.attempts}
        assert len(self.provider.attempts) == 2 and ids == {sent.provider_message_id}

    async def test_a_refused_login_is_permanent(self, channel: Channel, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        """A server without AUTH asked to log in: a configuration problem, not worth retrying."""
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await accounts.save_account(
                tx, "email", "main", settings=mailbox(self.provider, smtp_username="someone"), secrets={"smtp_password": "pw"}
            )
        with pytest.raises(PermanentDeliveryError, match="cannot do what the mailbox is set up for"):
            await channel.send(self.message())


def _dkim_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.mark.plugins("email")
class TestSignedMarketingMail:
    @pytest.fixture
    def plugin_config(self, smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
        return email_config(smtp)

    async def test_marketing_mail_has_one_click_unsubscribe_and_a_dkim_signature_covering_it(
        self, runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp
    ) -> None:
        from guanxi.plugins.email import service

        pem, record = _dkim_key()
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await accounts.save_account(
                tx, "email", "main", settings=mailbox(smtp, dkim_selector="s1", display_name="Shop"), secrets={"dkim_private_key": pem}
            )
        customer = await TestEmailContract().customer(runtime, tenant_id)
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            await service.send_email(
                tx,
                service.EmailRequest(
                    customer_id=customer,
                    subject="Hello {{ name }}",
                    text="Hi {{ name }}",
                    html='<p>Hi {{ name }}</p><a href="https://shop.test/offer">offer</a>',
                    variables={"name": "<Mei & co>"},
                    idempotency_key="m1",
                    marketing=True,
                ),
            )
        await outbox.run_once(runtime, tenant_id=tenant_id)
        (got,) = smtp.received
        assert dkim.verify(got["data"], dnsfunc=lambda name, timeout=5: record if name == b"s1._domainkey.shop.test." else None)
        mail = email.message_from_bytes(got["data"], policy=email.policy.default)
        signed_headers = mail["DKIM-Signature"].replace("\r\n", "").replace(" ", "").lower()
        assert "list-unsubscribe:list-unsubscribe-post" in signed_headers
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["List-Unsubscribe"].startswith("<http://testserver.local/email/unsubscribe/")
        assert mail["Subject"] == "Hello <Mei & co>"
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "<p>Hi &lt;Mei &amp; co&gt;</p>" in html
        assert "https://shop.test/offer" not in html.split("u=")[0] and "/email/c/" in html and "/email/o/" in html


@pytest.mark.plugins("email")
class TestAttachments:
    @pytest.fixture
    def plugin_config(self, smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
        return email_config(smtp)

    async def test_a_file_of_the_file_store_goes_out_as_an_attachment_and_a_link_is_refused(
        self, runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, files: Any
    ) -> None:
        from guanxi import Attachment
        from guanxi.plugins.email.compose import FILE_URL

        pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40
        key = runtime.files.put(pdf)
        customer = await TestEmailContract().customer(runtime, tenant_id)
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            for n, item in enumerate(
                [Attachment(kind="file", url=FILE_URL + key, name="offer.pdf", mime_type="application/pdf"),
                 Attachment(kind="link", url="https://shop.test/x")]
            ):  # fmt: skip
                await outbox.send_message(
                    tx,
                    outbox.SendRequest(
                        customer_id=customer, channel="email", idempotency_key=f"a{n}", text="See attached", attachments=[item]
                    ),
                )
        await outbox.run_once(runtime, tenant_id=tenant_id)
        (got,) = smtp.received
        mail = email.message_from_bytes(got["data"], policy=email.policy.default)
        (part,) = list(mail.iter_attachments())  # type: ignore[attr-defined]
        assert (part.get_filename(), part.get_content_type(), part.get_content()) == ("offer.pdf", "application/pdf", pdf)
        async with runtime.session(tenant_id) as s:
            statuses = sorted(r.status for r in (await s.execute(select(outbox.OutboxMessage))).scalars())
        assert statuses == ["failed", "sent"]
