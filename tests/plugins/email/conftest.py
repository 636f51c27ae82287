"""A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread) that the email channel sends to;
each test scripts its next answers and reads what it received."""

from __future__ import annotations

import asyncio
import email
import socket
import time
from collections import deque
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

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
    return store
