"""A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread) that the email channel sends to;
each test scripts its next answers and reads what it received. And a real IMAP server (Debian's
dovecot, started by scripts/imap-test-server.sh): from ``GUANXI_TEST_IMAP_URL``, or started for
the session when dovecot is installed; otherwise the IMAP tests skip, unless
``GUANXI_TEST_REQUIRE_IMAP=1`` (CI) makes that a failure."""

from __future__ import annotations

import asyncio
import email
import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import InboxEvent
from guanxi.core.services import accounts

INBOUND_SECRET = "test-inbound-secret"
ADDRESS = "sales@shop.test"


class FakeSmtp:
    """Answers RCPT and DATA with the next scripted outcome: ok | transient | permanent | slow |
    drop (the connection is cut in the middle of DATA, after the message was read)."""

    def __init__(self) -> None:
        self.outcomes: deque[str] = deque()
        self.received: list[dict[str, Any]] = []  # delivered messages
        self.attempts: list[dict[str, Any]] = []  # every DATA, delivered or cut off
        self.port = 0

    def messages(self) -> list[Message]:
        return [email.message_from_bytes(r["data"]) for r in self.received]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:  # noqa: N802 - aiosmtpd calls it by this name
        if self.outcomes and self.outcomes[0] == "transient":
            self.outcomes.popleft()
            return "451 4.3.0 Try again later"
        if self.outcomes and self.outcomes[0] == "permanent":
            self.outcomes.popleft()
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd calls it by this name
        data = envelope.original_content or b""
        entry = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "data": data}
        self.attempts.append(entry)
        outcome = self.outcomes.popleft() if self.outcomes else "ok"
        if outcome == "slow":
            await asyncio.sleep(1.5)
        if outcome == "drop":
            assert server.transport is not None
            server.transport.abort()  # mid-DATA: the client never hears 250
            return "421 4.4.2 connection dropped"
        self.received.append(entry)
        return "250 2.0.0 Queued"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[FakeSmtp]:
    fake = FakeSmtp()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        fake.port = sock.getsockname()[1]
    controller = Controller(fake, hostname="127.0.0.1", port=fake.port, decode_data=False, data_size_limit=60 * 1024 * 1024)
    controller.start()
    deadline = time.monotonic() + 10
    while controller.server is None:
        assert time.monotonic() < deadline, "the SMTP server did not start"
        time.sleep(0.01)
    yield fake
    controller.stop()


@pytest.fixture
def smtp(smtp_server: FakeSmtp) -> FakeSmtp:
    """The SMTP server, with nothing left over from another test."""
    smtp_server.outcomes.clear()
    smtp_server.received.clear()
    smtp_server.attempts.clear()
    return smtp_server


def email_config(smtp: FakeSmtp, **extra: Any) -> dict[str, dict[str, Any]]:
    section = {
        "address": ADDRESS,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "inbound_secret": INBOUND_SECRET,
        "public_url": "http://testserver.local",
        "timeout_s": 5.0,
    }
    return {"email": section | extra}


def mailbox(smtp: FakeSmtp, **extra: Any) -> dict[str, Any]:
    """The settings of the test mailbox (an account's settings are saved whole)."""
    return {"address": ADDRESS, "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none"} | extra


def signed(body: bytes, secret: str = INBOUND_SECRET, timestamp: int | None = None) -> dict[str, str]:
    from guanxi import sign

    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Guanxi-Timestamp": ts,
        "X-Guanxi-Signature": sign(secret, body, timestamp=ts, prefix="sha256="),
        "content-type": "message/rfc822",
    }


@pytest.fixture
def files(runtime: Any, tmp_path: Any) -> Any:
    """The core file store in the test's folder, taking 30 MB files (the default is 20 MB;
    deployments that take 25 MB attachments raise ``files.max_bytes``)."""
    from guanxi.core.storage.files import LocalFileStore

    store = runtime.state["files"] = LocalFileStore(tmp_path / "files", 30 * 1024 * 1024)
    # erasure deletes bytes stored just now (the grace protects references still on their way)
    runtime.settings = msgspec.structs.replace(runtime.settings, files=msgspec.structs.replace(runtime.settings.files, orphan_grace_s=0))
    return store


SCRIPT = Path(__file__).parents[3] / "scripts" / "imap-test-server.sh"


class ImapServer:
    def __init__(self, url: str, env: dict[str, str], tls_port: int | None = None) -> None:
        parts = urlsplit(url)
        assert parts.hostname and parts.port and parts.username and parts.password
        self.host, self.port, self.user, self.password = parts.hostname, parts.port, unquote(parts.username), parts.password
        self.env = env
        #: the implicit-TLS port (a server this run started, with the run's certificate), else None
        self.tls_port = tls_port

    def client(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4(self.host, self.port, timeout=10)
        c.login(self.user, self.password)
        return c

    def new_folder(self) -> str:
        folder = f"t{uuid.uuid4().hex[:12]}"
        c = self.client()
        assert c.create(folder)[0] == "OK"
        c.logout()
        return folder

    def deliver(self, folder: str, *raws: bytes) -> None:
        c = self.client()
        for raw in raws:
            assert c.append(folder, None, None, raw.replace(b"\n", b"\r\n"))[0] == "OK"
        c.logout()

    def restart(self) -> None:
        subprocess.run([str(SCRIPT), "restart"], check=True, env=self.env, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The run's self-signed certificate for 127.0.0.1 (cert, key): the TLS servers present it,
    the plugin trusts it through ``tls_ca_file``."""
    from tests.plugins.email.certs import self_signed

    return self_signed(Path(tempfile.mkdtemp(prefix="guanxi-certs-")))


@pytest.fixture(scope="session")
def imap_server(tls_cert: tuple[Path, Path]) -> Iterator[ImapServer]:
    env = dict(os.environ)
    url = env.get("GUANXI_TEST_IMAP_URL")
    started = False
    tls_port: int | None = None
    if not url:
        if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
            reason = "no IMAP server: set GUANXI_TEST_IMAP_URL or install dovecot (scripts/imap-test-server.sh install)"
            if env.get("GUANXI_TEST_REQUIRE_IMAP") == "1":
                pytest.fail(reason + " (GUANXI_TEST_REQUIRE_IMAP=1)")
            pytest.skip(reason)
        # not under pytest's own temp dir: as root, dovecot's users must reach the state dir
        env["IMAP_TEST_STATE_DIR"] = tempfile.mkdtemp(prefix="guanxi-imap-")
        env["IMAP_TEST_TLS_CERT"], env["IMAP_TEST_TLS_KEY"] = str(tls_cert[0]), str(tls_cert[1])
        url = subprocess.run([str(SCRIPT), "start"], check=True, env=env, capture_output=True, text=True, timeout=60).stdout.strip()
        started = True
        state = dict(line.split("=", 1) for line in (Path(env["IMAP_TEST_STATE_DIR"]) / "server.env").read_text().split())
        tls_port = int(state["TLS_PORT"]) or None
    elif "IMAP_TEST_STATE_DIR" not in env:
        env["IMAP_TEST_STATE_DIR"] = str(SCRIPT.parents[1] / ".imapdata")
    yield ImapServer(url, env, tls_port)
    if started:
        subprocess.run([str(SCRIPT), "stop"], check=False, env=env, capture_output=True, timeout=60)
        shutil.rmtree(env["IMAP_TEST_STATE_DIR"], ignore_errors=True)


async def connect_mailbox(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, server: ImapServer, *, password: str | None = None, **imap: Any
) -> str:
    """Save the tenant's mailbox ``main`` reading a new folder of the server (``imap``: other
    settings, e.g. ``imap_security="tls", imap_port=...``); return the folder."""
    folder = server.new_folder()
    settings = (
        mailbox(smtp, imap_host=server.host, imap_port=server.port, imap_security="none", imap_username=server.user, imap_folder=folder)
        | imap
    )
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        secret = server.password if password is None else password
        await accounts.save_account(tx, "email", "main", settings=settings, secrets={"imap_password": secret})
    return folder


def mail(n: int) -> bytes:
    message_id = f"<imap-{n}-{uuid.uuid4().hex}@customer.test>"
    return f"From: c{n}@customer.test\nTo: sales@shop.test\nSubject: Q{n}\nMessage-ID: {message_id}\n\nQuestion {n}\n".encode()


async def inbox_rows(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(InboxEvent))).scalar_one())
