"""Journey webhooks never reach loopback, private or link-local addresses, nor a host the tenant
has not allowed; the address checked is the one connected to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from guanxi import verify_signature
from guanxi.plugins.automation.journeys import egress


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not egress.public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_internet_addresses_are_public(address: str) -> None:
    assert egress.public(address)


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server on loopback that records every request it gets."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()


async def test_a_webhook_to_a_host_resolving_to_loopback_is_refused_before_connecting(loopback_server: tuple[int, list[str]]) -> None:
    """``localhost`` allowed by the tenant still resolves to 127.0.0.1: refused, the server is never called."""
    port, hits = loopback_server
    for host in ("localhost", "127.0.0.1"):
        with pytest.raises(egress.EgressError, match="non-public"):
            await egress.post(f"https://{host}:{port}/hook", b"{}", secret="s", idempotency_key="k", allowed_hosts={host})
    assert hits == []


async def test_a_host_the_tenant_does_not_allow_is_refused() -> None:
    with pytest.raises(egress.EgressError, match="allowed hosts"):
        await egress.post("https://example.com/hook", b"{}", secret="s", idempotency_key="k", allowed_hosts={"hooks.example.org"})
    with pytest.raises(egress.EgressError, match="https"):
        egress.check_host("http://example.com/hook", {"example.com"})


def test_the_signature_verifies_with_core_verify_signature() -> None:
    """The receiver checks ``v1`` with the timestamp ``t`` as core's :func:`guanxi.verify_signature` does."""
    body = b'{"journey": "welcome"}'
    header = egress.signature("topsecret", body, now=1_700_000_000)
    stamp, digest = (part.split("=", 1)[1] for part in header.split(","))
    assert stamp == "1700000000"
    verify_signature("topsecret", body, digest, timestamp=stamp, now=1_700_000_000)
