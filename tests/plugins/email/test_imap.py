"""Polling a real IMAP server (Debian's dovecot, started by scripts/imap-test-server.sh): new
mail goes through the inbox in UID order, a second poll reads only what is new, and a server
restart in the middle of a poll loses and doubles nothing (the next poll resumes by UID).

The server comes from ``GUANXI_TEST_IMAP_URL``, or is started for the session when dovecot is
installed; otherwise these tests skip, unless ``GUANXI_TEST_REQUIRE_IMAP=1`` (CI) makes that a
failure."""

from __future__ import annotations

import imaplib
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.plugins.email import imap
from tests.plugins.email.conftest import FakeSmtp, ImapServer, connect_mailbox, email_config, inbox_rows, mail
from tests.plugins.email.test_inbound import received

pytestmark = pytest.mark.plugins("email")


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp)


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
