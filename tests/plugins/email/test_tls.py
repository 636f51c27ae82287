"""Sending with STARTTLS and with implicit TLS, logging in, against real aiosmtpd servers that
present a certificate made in the test (trusted through ``tls_ca_file``; never an unverified
connection); a wrong password fails the message with a clear error that also shows on the mailbox
(``emailMailboxes``), and the password is in no error and no log line. Reading by IMAP over
implicit TLS against dovecot with its own generated certificate."""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import OutboxMessage
from guanxi.core.queues import outbox
from guanxi.core.services import accounts
from guanxi.plugins.email import imap, service
from tests.plugins.email.conftest import ADDRESS, FakeSmtp, ImapServer, email_config, mail, mailbox
from tests.plugins.email.test_inbound import customer_with_email, received

pytestmark = pytest.mark.plugins("email")
USER, PASSWORD = "sales@shop.test", "s3cret-Pa55-9c2f"


@pytest.fixture
def cert(tls_cert: tuple[Path, Path]) -> tuple[Path, Path]:
    return tls_cert


class TlsSmtp(FakeSmtp):
    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, bool]] = []  # (user, accepted)

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
        self.logins.append((auth_data.login.decode(), ok))
        assert server.transport is not None and server.transport.get_extra_info("sslcontext") is not None  # only over TLS
        return AuthResult(success=ok, handled=False)


def _start(controller: Controller) -> None:
    controller.start()
    deadline = time.monotonic() + 10
    while controller.server is None:
        assert time.monotonic() < deadline, "the SMTP server did not start"
        time.sleep(0.01)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_servers(tls_cert: tuple[Path, Path]) -> Iterator[dict[str, TlsSmtp]]:
    """``starttls``: plain, then STARTTLS required before AUTH and MAIL; ``tls``: TLS from the
    first byte (implicit, as on port 465)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))
    servers: dict[str, TlsSmtp] = {"starttls": TlsSmtp(), "tls": TlsSmtp()}
    controllers = []
    for kind, fake in servers.items():
        fake.port = _port()
        options: dict[str, Any] = {"authenticator": fake.authenticate, "auth_require_tls": True, "decode_data": False}
        if kind == "starttls":
            options |= {"tls_context": context, "require_starttls": True}
        else:  # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; the authenticator checks the transport
            options |= {"ssl_context": context, "auth_require_tls": False}
        controller = Controller(fake, hostname="127.0.0.1", port=fake.port, **options)
        _start(controller)
        controllers.append(controller)
    yield servers
    for controller in controllers:
        controller.stop()


@pytest.fixture
def plugin_config(smtp: FakeSmtp, cert: tuple[Path, Path]) -> dict[str, dict[str, Any]]:
    return email_config(smtp, tls_ca_file=str(cert[0]))


async def use_mailbox(runtime: Runtime, tenant_id: uuid.UUID, server: TlsSmtp, security: str, password: str) -> None:
    settings = mailbox(FakeSmtp(), smtp_port=server.port, smtp_security=security, smtp_username=USER)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await accounts.save_account(tx, "email", "main", settings=settings, secrets={"smtp_password": password})


async def send(runtime: Runtime, tenant_id: uuid.UUID, key: str) -> OutboxMessage:
    customer = await customer_with_email(runtime, tenant_id, f"{key}@customer.test")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row, _ = await service.send_email(tx, service.EmailRequest(customer_id=customer, subject="Offer", text="Hi", idempotency_key=key))
    await outbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        found = await s.get(OutboxMessage, (tenant_id, row.id), populate_existing=True)
    assert found is not None
    return found


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_goes_out_over_verified_tls_after_logging_in(
    runtime: Runtime, tenant_id: uuid.UUID, tls_servers: dict[str, TlsSmtp], security: str
) -> None:
    server = tls_servers[security]
    server.received.clear()
    await use_mailbox(runtime, tenant_id, server, security, PASSWORD)
    message = await send(runtime, tenant_id, f"tls-{security}")
    assert message.status == "sent", message.last_error
    (got,) = server.messages()
    assert (got["Message-ID"] == message.provider_message_id and got["From"].endswith(f"<{ADDRESS}>")) or ADDRESS in got["From"]
    assert (USER, True) in server.logins


async def test_a_certificate_the_server_is_not_trusted_for_is_refused(
    runtime: Runtime, tenant_id: uuid.UUID, tls_servers: dict[str, TlsSmtp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the test CA (the system's CAs only) the connection is refused: certificates are verified."""
    from guanxi.plugins.email import channel, tls

    server = tls_servers["tls"]
    server.received.clear()
    await use_mailbox(runtime, tenant_id, server, "tls", PASSWORD)
    monkeypatch.setattr(channel, "tls_context", lambda settings: tls._context(""))  # as with tls_ca_file = ""
    message = await send(runtime, tenant_id, "tls-untrusted")
    assert message.status in ("queued", "failed") and server.received == []
    assert "certificate" in (message.last_error or "")


async def test_a_wrong_smtp_password_fails_the_message_and_shows_on_the_mailbox_without_the_password(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    tls_servers: dict[str, TlsSmtp],
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    server = tls_servers["starttls"]
    server.received.clear()
    wrong = "Wr0ng-smtp-4b7e"
    await use_mailbox(runtime, tenant_id, server, "starttls", wrong)
    message = await send(runtime, tenant_id, "tls-wrong")
    assert message.status == "failed" and server.received == []
    assert "refused the mailbox's login" in (message.last_error or "") and "smtp_password" in (message.last_error or "")
    query = "{ emailMailboxes { key status lastError } }"
    body = (await client.post("/graphql", json={"query": query})).json()
    (shown,) = body["data"]["emailMailboxes"]
    assert shown["status"] == "FAILING" and "refused the mailbox's login" in shown["lastError"]
    await use_mailbox(runtime, tenant_id, server, "starttls", PASSWORD)  # fixed: the next message goes, the error clears
    assert (await send(runtime, tenant_id, "tls-fixed")).status == "sent"
    body2 = (await client.post("/graphql", json={"query": query})).json()
    assert body2["data"]["emailMailboxes"][0] == {"key": "main", "status": "OK", "lastError": None}
    for text in (str(body), message.last_error or "", caplog.text):
        assert wrong not in text and PASSWORD not in text


async def test_imap_over_implicit_tls_reads_the_folder(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    if imap_server.tls_port is None:
        pytest.skip("the IMAP server was not started by this test run (GUANXI_TEST_IMAP_URL): no TLS listener of ours")
    folder = imap_server.new_folder()
    settings = mailbox(
        smtp, imap_host="127.0.0.1", imap_port=imap_server.tls_port, imap_security="tls", imap_username=imap_server.user, imap_folder=folder
    )
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await accounts.save_account(tx, "email", "main", settings=settings, secrets={"imap_password": imap_server.password})
    imap_server.deliver(folder, mail(1))
    result = await imap.poll(runtime, tenant_id, "main")
    assert (result.stored, result.last_uid) == (1, 1)
    assert [i.text for i in await received(runtime, tenant_id)] == ["Question 1"]


async def test_idle_over_implicit_tls_reads_new_mail(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    from tests.plugins.email.test_idle import eventually, in_idle, stored, supervisor, switch_on

    if imap_server.tls_port is None:
        pytest.skip("the IMAP server was not started by this test run (GUANXI_TEST_IMAP_URL): no TLS listener of ours")
    folder = imap_server.new_folder()
    settings = mailbox(
        smtp, imap_host="127.0.0.1", imap_port=imap_server.tls_port, imap_security="tls", imap_username=imap_server.user, imap_folder=folder
    )
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await accounts.save_account(tx, "email", "main", settings=settings, secrets={"imap_password": imap_server.password})
    await switch_on(runtime, tenant_id)
    worker = supervisor(runtime, tenant_id)
    worker.start()
    try:
        await eventually(lambda: in_idle(runtime, tenant_id), "IDLE over TLS")
        imap_server.deliver(folder, mail(1))
        await eventually(lambda: stored(runtime, tenant_id, 1), "the mail announced over TLS")
    finally:
        await worker.stop()
