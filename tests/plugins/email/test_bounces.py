"""Bounces in the formats of Postfix, Exim and Exchange, and an ARF feedback-loop complaint,
coming back to the VERP address: each is a receipt on the message it reports; a hard bounce
suppresses the address, soft bounces after the threshold, a complaint withdraws consent; all
visible on ``Customer.email`` in GraphQL; unsubscribe, opens and clicks."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from guanxi import RequestContext, Runtime, ValidationError
from guanxi.core.domain.models import OutboxMessage
from guanxi.core.queues import inbox, outbox
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.email import service
from tests.plugins.email.conftest import FakeSmtp, email_config, signed
from tests.plugins.email.test_inbound import ROUTE, customer_with_email

pytestmark = pytest.mark.plugins("email")
SAMPLES = Path(__file__).parent / "samples"
RCPT = "mei@customer.test"


@pytest.fixture
def plugin_config(smtp: FakeSmtp) -> dict[str, dict[str, Any]]:
    return email_config(smtp, soft_bounce_threshold=2)


async def sent(runtime: Runtime, tenant_id: uuid.UUID, customer: uuid.UUID, key: str, *, marketing: bool = False) -> OutboxMessage:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        row, _ = await service.send_email(
            tx,
            service.EmailRequest(
                customer_id=customer,
                subject="Offer",
                text="Hi",
                html='<a href="https://shop.test/x?a=1&b=2">x</a>',
                idempotency_key=key,
                marketing=marketing,
            ),
        )
    await outbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(tenant_id) as s:
        found = await s.get(OutboxMessage, (tenant_id, row.id))
    assert found is not None and found.status == "sent"
    return found


def sample(name: str, message: OutboxMessage, verp: str) -> bytes:
    text = (SAMPLES / name).read_text()
    return text.replace("{MESSAGE_ID}", message.provider_message_id or "").replace("{RCPT}", RCPT).replace("{VERP}", verp).encode()


async def bounce(client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID, raw: bytes, verp: str) -> None:
    response = await client.post(ROUTE, content=raw, headers=signed(raw) | {"X-Envelope-To": verp})
    assert response.status_code == 200, response.text
    await inbox.run_once(runtime, tenant_id=tenant_id)


async def email_status(client: httpx.AsyncClient, customer: uuid.UUID) -> dict[str, Any]:
    fields = "address status suppression softBounces hardBounces complaints lastError"
    query = f"query($id: ID!) {{ customer(id: $id) {{ email {{ optedOut addresses {{ {fields} }} }} }} }}"
    response = await client.post("/graphql", json={"query": query, "variables": {"id": to_global_id("Customer", customer)}})
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["customer"]["email"]


@pytest.mark.parametrize(("name", "status", "code"), [("postfix.eml", "bounced", "5.1.1"), ("exchange.eml", "bounced", "5.1.10")])
async def test_a_hard_bounce_fails_the_message_and_suppresses_the_address(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, smtp: FakeSmtp, name: str, status: str, code: str
) -> None:
    customer = await customer_with_email(runtime, tenant_id, RCPT)
    message = await sent(runtime, tenant_id, customer, "b1")
    verp = smtp.received[0]["mail_from"]
    await bounce(client, runtime, tenant_id, sample(name, message, verp), verp)
    async with runtime.session(tenant_id) as s:
        after = await s.get(OutboxMessage, (tenant_id, message.id))
    assert after is not None and after.status == status and (after.last_error or "").startswith(code)
    (address,) = (await email_status(client, customer))["addresses"]
    assert (address["status"], address["suppression"], address["hardBounces"]) == ("SUPPRESSED", "HARD_BOUNCE", 1)
    with pytest.raises(ValidationError, match="unreachable"):
        await sent(runtime, tenant_id, customer, "b2")


async def test_soft_bounces_are_counted_and_suppress_after_the_threshold(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    customer = await customer_with_email(runtime, tenant_id, RCPT)
    for n in (1, 2):
        message = await sent(runtime, tenant_id, customer, f"s{n}")
        verp = smtp.received[-1]["mail_from"]
        raw = sample("exim.eml", message, verp).replace(b"E1abcDE-000123-AB", f"E1abcDE-{n}".encode())
        await bounce(client, runtime, tenant_id, raw, verp)
        (address,) = (await email_status(client, customer))["addresses"]
        assert address["softBounces"] == n
        assert address["suppression"] == (None if n == 1 else "SOFT_BOUNCES")
    with pytest.raises(ValidationError, match="unreachable"):
        await sent(runtime, tenant_id, customer, "s3")


async def test_a_bounce_found_only_by_its_verp_address_is_applied(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    """A bounce that quotes nothing of the original (a plain-text notice) still names the
    message through the VERP address it came back to."""
    customer = await customer_with_email(runtime, tenant_id, RCPT)
    message = await sent(runtime, tenant_id, customer, "v1")
    verp = smtp.received[0]["mail_from"]
    raw = (
        f"From: MAILER-DAEMON@old.test\nTo: {verp}\nSubject: failure notice\nMessage-ID: <n1@old.test>\n\n"
        f"Sorry, I couldn't deliver to <{RCPT}>: 550 5.1.1 no mailbox here by that name\n"
    ).encode()
    await bounce(client, runtime, tenant_id, raw, verp)
    async with runtime.session(tenant_id) as s:
        after = await s.get(OutboxMessage, (tenant_id, message.id))
    assert after is not None and after.status == "bounced"


async def test_a_feedback_loop_complaint_withdraws_consent(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    customer = await customer_with_email(runtime, tenant_id, RCPT)
    message = await sent(runtime, tenant_id, customer, "c1")
    verp = smtp.received[0]["mail_from"]
    await bounce(client, runtime, tenant_id, sample("arf.eml", message, verp), verp)
    status = await email_status(client, customer)
    assert status["optedOut"] is True
    assert (status["addresses"][0]["suppression"], status["addresses"][0]["complaints"]) == ("COMPLAINT", 1)
    from guanxi import ConsentError

    with pytest.raises(ConsentError):
        await sent(runtime, tenant_id, customer, "c2")


async def test_one_click_unsubscribe_is_idempotent_and_withdraws_consent(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    import email
    import email.policy

    customer = await customer_with_email(runtime, tenant_id, RCPT)
    await sent(runtime, tenant_id, customer, "u1", marketing=True)
    link = str(email.message_from_bytes(smtp.received[0]["data"], policy=email.policy.default)["List-Unsubscribe"]).strip().strip("<>")
    path = link.removeprefix("http://testserver.local")
    page = await anonymous_client.get(path)
    assert page.status_code == 200 and RCPT in page.text and (await email_status(client, customer))["optedOut"] is False
    for _ in range(2):
        response = await anonymous_client.post(path, content=b"List-Unsubscribe=One-Click")
        assert response.status_code == 200
    status = await email_status(client, customer)
    assert (status["optedOut"], status["addresses"][0]["suppression"]) == (True, "UNSUBSCRIBED")
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await anonymous_client.post(forged)).status_code == 404


async def test_opens_and_clicks_become_interactions_and_machine_fetches_are_flagged(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    import email
    import email.policy
    import re

    from tests.plugins.email.test_inbound import received

    customer = await customer_with_email(runtime, tenant_id, RCPT)
    await sent(runtime, tenant_id, customer, "o1", marketing=True)
    html = email.message_from_bytes(smtp.received[0]["data"], policy=email.policy.default).get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = re.search(r'src="http://testserver.local([^"]+)"', html)[1]  # type: ignore[index]
    link = re.search(r'href="http://testserver.local([^"]+)"', html)[1].replace("&amp;", "&")  # type: ignore[index]
    person = {"User-Agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Mail"}
    proxy = {"User-Agent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"}
    assert (await anonymous_client.get(pixel, headers=proxy)).content.startswith(b"GIF89a")
    for _ in range(2):
        assert (await anonymous_client.get(pixel, headers=person)).status_code == 200
    click = await anonymous_client.get(link, headers=person)
    assert (click.status_code, click.headers["location"]) == (302, "https://shop.test/x?a=1&b=2")
    other = link.split("?u=")[0] + "?u=https%3A%2F%2Fevil.test%2F"
    assert (await anonymous_client.get(other, headers=person)).status_code == 400  # no open redirect
    kinds = sorted(i.kind for i in await received(runtime, tenant_id))
    assert kinds == ["click", "email_machine_open", "email_open"]


async def test_a_soft_bounce_whose_counting_fails_is_retried_not_lost(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, smtp: FakeSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is kept in the receipt's inbox transaction: when it fails, the receipt (and
    the message's status) is undone and the inbox retries it, and the retry counts it once."""
    import datetime as dt

    from sqlalchemy import select, update

    from guanxi.core.domain.models import InboxEvent
    from guanxi.plugins.email import suppression

    customer = await customer_with_email(runtime, tenant_id, RCPT)
    message = await sent(runtime, tenant_id, customer, "r1")
    verp = smtp.received[-1]["mail_from"]
    row_of = suppression._row

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the database went away mid-count")

    monkeypatch.setattr(suppression, "_row", broken)
    await bounce(client, runtime, tenant_id, sample("exim.eml", message, verp), verp)
    async with runtime.session(tenant_id) as s:
        (pending,) = (await s.execute(select(InboxEvent))).scalars()
        after = await s.get(OutboxMessage, (tenant_id, message.id))
    assert (pending.status, pending.attempts) == ("pending", 1) and "went away" in (pending.last_error or "")
    assert after is not None and after.status == "sent"  # undone with the count
    (address,) = (await email_status(client, customer))["addresses"]
    assert address["softBounces"] == 0

    monkeypatch.setattr(suppression, "_row", row_of)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        await tx.session.execute(update(InboxEvent).values(next_attempt_at=past))
    await inbox.run_once(runtime, tenant_id=tenant_id)
    (address,) = (await email_status(client, customer))["addresses"]
    assert (address["softBounces"], address["suppression"]) == (1, None)
    await inbox.run_once(runtime, tenant_id=tenant_id)  # nothing left to apply: counted once
    (address,) = (await email_status(client, customer))["addresses"]
    assert address["softBounces"] == 1
