"""Polling a real IMAP server (Debian's dovecot, started by scripts/imap-test-server.sh): new
mail goes through the inbox in UID order, a second poll reads only what is new, and a server
restart in the middle of a poll loses and doubles nothing (the next poll resumes by UID).

The server comes from ``GUANXI_TEST_IMAP_URL``, or is started for the session when dovecot is
installed; otherwise these tests skip, unless ``GUANXI_TEST_REQUIRE_IMAP=1`` (CI) makes that a
failure."""

from __future__ import annotations

import imaplib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import InboxEvent
from guanxi.core.services import accounts
from guanxi.plugins.email import imap
from tests.plugins.email.conftest import FakeSmtp, email_config, mailbox
from tests.plugins.email.test_inbound import received

pytestmark = pytest.mark.plugins("email")
SCRIPT = Path(__file__).parents[3] / "scripts" / "imap-test-server.sh"


class ImapServer:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        parts = urlsplit(url)
        assert parts.hostname and parts.port and parts.username and parts.password
        self.host, self.port, self.user, self.password = parts.hostname, parts.port, unquote(parts.username), parts.password
        self.env = env

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
def imap_server() -> Iterator[ImapServer]:
    env = dict(os.environ)
    url = env.get("GUANXI_TEST_IMAP_URL")
    started = False
    if not url:
        if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
            reason = "no IMAP server: set GUANXI_TEST_IMAP_URL or install dovecot (scripts/imap-test-server.sh install)"
            if env.get("GUANXI_TEST_REQUIRE_IMAP") == "1":
                pytest.fail(reason + " (GUANXI_TEST_REQUIRE_IMAP=1)")
            pytest.skip(reason)
        # not under pytest's own temp dir: as root, dovecot's users must reach the state dir
        env["IMAP_TEST_STATE_DIR"] = tempfile.mkdtemp(prefix="guanxi-imap-")
        url = subprocess.run([str(SCRIPT), "start"], check=True, env=env, capture_output=True, text=True, timeout=60).stdout.strip()
        started = True
    elif "IMAP_TEST_STATE_DIR" not in env:
        env["IMAP_TEST_STATE_DIR"] = str(SCRIPT.parents[1] / ".imapdata")
    yield ImapServer(url, env)
    if started:
        subprocess.run([str(SCRIPT), "stop"], check=False, env=env, capture_output=True, timeout=60)
        shutil.rmtree(env["IMAP_TEST_STATE_DIR"], ignore_errors=True)


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp)


async def connect_mailbox(runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, server: ImapServer) -> str:
    folder = server.new_folder()
    settings = mailbox(
        smtp, imap_host=server.host, imap_port=server.port, imap_security="none", imap_username=server.user, imap_folder=folder
    )
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await accounts.save_account(tx, "email", "main", settings=settings, secrets={"imap_password": server.password})
    return folder


def mail(n: int) -> bytes:
    message_id = f"<imap-{n}-{uuid.uuid4().hex}@customer.test>"
    return f"From: c{n}@customer.test\nTo: sales@shop.test\nSubject: Q{n}\nMessage-ID: {message_id}\n\nQuestion {n}\n".encode()


async def inbox_rows(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(InboxEvent))).scalar_one())


async def test_a_poll_reads_new_mail_in_uid_order_and_the_next_only_what_is_new(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer
) -> None:
    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    imap_server.deliver(folder, mail(1), mail(2))
    first = await imap.poll(runtime, tenant_id, "main")
    assert (first.stored, first.last_uid) == (2, 2)
    imap_server.deliver(folder, mail(3))
    second = await imap.poll(runtime, tenant_id, "main")
    assert (second.stored, second.duplicates, second.last_uid) == (1, 0, 3)
    assert [i.text for i in await received(runtime, tenant_id)] == ["Question 1", "Question 2", "Question 3"]
    c = imap_server.client()
    c.select(folder, readonly=True)
    assert c.uid("SEARCH", "UNSEEN")[1][0].split() == [b"1", b"2", b"3"]  # read-only: nothing marked seen
    c.logout()


async def test_a_server_restart_mid_poll_loses_and_doubles_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    imap_server.deliver(folder, *(mail(n) for n in range(1, 6)))
    fetched: list[int] = []
    real_fetch = imap.fetch

    def fetch_then_restart(client: imaplib.IMAP4, uid: int) -> bytes | None:
        if len(fetched) == 2:
            imap_server.restart()  # the server goes away under the open connection
        fetched.append(uid)
        return real_fetch(client, uid)

    monkeypatch.setattr(imap, "fetch", fetch_then_restart)
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
        await imap.poll(runtime, tenant_id, "main")
    assert await inbox_rows(runtime, tenant_id) == 2
    monkeypatch.setattr(imap, "fetch", real_fetch)
    resumed = await imap.poll(runtime, tenant_id, "main")
    assert (resumed.stored, resumed.duplicates, resumed.last_uid) == (3, 0, 5)
    assert sorted(i.text or "" for i in await received(runtime, tenant_id)) == [f"Question {n}" for n in range(1, 6)]


async def test_poll_email_mailbox_polls_now_and_schedules_the_mailbox(
    runtime: Runtime, tenant_id: uuid.UUID, smtp: FakeSmtp, imap_server: ImapServer, client: httpx.AsyncClient
) -> None:
    from guanxi.core.domain.models import ScheduledJob

    folder = await connect_mailbox(runtime, tenant_id, smtp, imap_server)
    imap_server.deliver(folder, mail(1))
    query = 'mutation { pollEmailMailbox(mailbox: "main") { stored lastUid errors { code message } } }'
    body = (await client.post("/graphql", json={"query": query})).json()
    assert body["data"]["pollEmailMailbox"] == {"stored": 1, "lastUid": 1, "errors": []}
    async with runtime.session(tenant_id) as s:
        (job,) = (await s.execute(select(ScheduledJob))).scalars()
    assert (job.kind, job.key, job.cron) == ("email.imap_poll", "email.imap_poll:main", "* * * * *")
    missing = (await client.post("/graphql", json={"query": query.replace('"main"', '"nope"')})).json()
    assert missing["data"]["pollEmailMailbox"]["errors"][0]["code"] == "NOT_FOUND"
