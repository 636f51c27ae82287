"""Benchmark: email delivered through the outbox to a real SMTP server on loopback.

    python bench/email_send.py --messages 500 --json [--database-url URL]

Starts an SMTP server (aiosmtpd, in a thread, counting what it accepts), a Guanxi runtime with
the ``email`` plugin and one mailbox pointing at it, and queues ``--messages`` emails (HTML and
text, templated, marketing: List-Unsubscribe and tracking) to as many customers through
``sendEmail``'s service. It then times, in alternating rounds so drift of the machine hits both:

- the outbox delivering them (``outbox.run_once`` until none is left: claim, compose, SMTP over
  pooled connections, mark sent), and
- the baseline: aiosmtplib sending the same number of messages of the same size directly over one
  connection, with nothing recorded.

Prints JSON: ``messages_per_s`` (outbox), ``baseline_messages_per_s`` (aiosmtplib direct),
``ratio`` = messages_per_s / baseline_messages_per_s (1.0: the outbox costs nothing over the raw
SMTP client), ``delivered`` (the server's count: every message exactly once) and
``distinct_message_ids``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import platform
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

from bench._smoke import add_smoke, parse  # noqa: E402
from guanxi import RequestContext  # noqa: E402
from guanxi.core.migrate import upgrade  # noqa: E402
from guanxi.core.queues import outbox  # noqa: E402
from guanxi.core.runtime import Runtime  # noqa: E402


class Counter:
    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.count += 1
        head = (envelope.original_content or b"").split(b"\r\n\r\n", 1)[0]
        found = email.message_from_bytes(head + b"\r\n\r\n")["Message-ID"]
        if found:
            self.message_ids.append(str(found))
        return "250 2.0.0 Queued"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def queue(runtime: Runtime, tenant_id: Any, n: int, run: str) -> int:
    from guanxi.core.services import customers, identities
    from guanxi.plugins.email import service

    size = 0
    for i in range(n):
        address = f"c{run}{i}@customer.test"
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
            c = await customers.create_customer(tx, customers.CustomerInput(display_name=f"Customer {i}", emails=[address]))
            await identities.attach_identity(tx, c.id, identities.IdentityInput(channel="email", external_id=address))
            row, _ = await service.send_email(
                tx,
                service.EmailRequest(
                    customer_id=c.id,
                    subject="Spring offer for {{ name }}",
                    text="Hello {{ name }}, our spring offer is ready.",
                    html='<p>Hello {{ name }},</p><p>our <a href="https://shop.test/spring">spring offer</a> is ready.</p>',
                    idempotency_key=f"bench-{run}-{i}",
                    marketing=True,
                ),
            )
            size += len(row.text or "")
    return size


async def deliver_all(runtime: Runtime, tenant_id: Any) -> None:
    deliverer = outbox.Deliverer(runtime)
    while await outbox.run_once(runtime, deliverer, limit=50, tenant_id=tenant_id):
        pass


async def direct(port: int, n: int, run: str) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
        for i in range(n):
            msg = email.message.EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "sales@shop.test", f"d{run}{i}@customer.test", f"Spring offer for Customer {i}"
            msg["Message-ID"] = f"<d{run}{i}@shop.test>"
            msg.set_content(f"Hello Customer {i}, our spring offer is ready.")
            msg.add_alternative(
                f'<p>Hello Customer {i},</p><p>our <a href="https://shop.test/spring">spring offer</a> is ready.</p>', subtype="html"
            )
            await smtp.send_message(msg, sender=f"bounce+{run}{i}@shop.test")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from guanxi.core.services import accounts
    from guanxi.core.services.pipelines import create_tenant

    counter = Counter()
    port = free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    folder = Path(tempfile.mkdtemp(prefix="guanxi-email-bench-"))
    config = folder / "guanxi-bench.toml"
    config.write_text(
        f'[plugins.email]\naddress = "sales@shop.test"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_security = "none"\n'
        'public_url = "https://crm.shop.test"\n',
        encoding="utf-8",
    )
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    environ = {"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": "email", "GUANXI__AUTH__SECRET": secrets.token_hex(32)}
    runtime = Runtime.from_config(config, environ=environ)
    await upgrade(runtime)
    await runtime.start()
    try:
        async with runtime.write_session(None) as session:
            tenant_id = await create_tenant(session, f"bench-{secrets.token_hex(3)}", "Email benchmark")
        async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # the mailbox's own limit off
            settings = {
                "address": "sales@shop.test",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_security": "none",
                "rate_per_s": 1000,
            }
            await accounts.save_account(tx, "email", "main", settings=settings)
        outbox_s = direct_s = 0.0
        rounds = max(1, args.rounds)
        per_round = max(1, args.messages // rounds)
        for r in range(rounds):
            await queue(runtime, tenant_id, per_round, f"r{r}x")
            started = time.perf_counter()
            await deliver_all(runtime, tenant_id)
            outbox_s += time.perf_counter() - started
            started = time.perf_counter()
            await direct(port, per_round, f"r{r}")
            direct_s += time.perf_counter() - started
        total = per_round * rounds
        ours = [m for m in counter.message_ids if not m.startswith("<d")]
    finally:
        await runtime.stop()
        controller.stop()
    return {
        "bench": "email_send",
        "messages": total,
        "messages_per_s": round(total / outbox_s, 1),
        "baseline_messages_per_s": round(total / direct_s, 1),
        "ratio": round((total / outbox_s) / (total / direct_s), 3),
        "delivered": len(ours),
        "distinct_message_ids": len(set(ours)),
        "database": url.split(":", 1)[0],
        "python": platform.python_version(),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true")
    add_smoke(parser, messages=6, rounds=2)
    args = parse(parser)
    result = asyncio.run(main(args))
    if result["delivered"] != result["messages"] or result["distinct_message_ids"] != result["messages"]:
        print(json.dumps(result), file=sys.stderr)
        raise SystemExit("the SMTP server did not receive every message exactly once")
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
