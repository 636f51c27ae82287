"""Journey webhooks never reach loopback, private or link-local addresses, nor a host the tenant
has not allowed; the address checked is the one connected to."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

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


def _self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    """A certificate for ``host`` (its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


async def test_the_call_goes_to_the_checked_address_with_host_sni_signature_and_idempotency_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request is sent to the address the check returned (here a TLS server on loopback,
    standing in for a public address), with the name in Host and SNI (the certificate for
    ``hooks.test`` verifies), signed, and with the step's idempotency key."""
    cert_file, key_file = _self_signed(tmp_path, "hooks.test")
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({**dict(self.headers.items()), "body": body.decode(), "path": self.path})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def resolved(host: str, port: int) -> str:
        assert host == "hooks.test"
        return "127.0.0.1"

    monkeypatch.setattr(egress, "resolve_public", resolved)
    try:
        status = await egress.post(
            f"https://hooks.test:{port}/journey?x=1", b'{"a": 1}', secret="topsecret", idempotency_key="journey:r:2",
            allowed_hosts={"hooks.test"}, verify=ssl.create_default_context(cafile=str(cert_file)),
        )  # fmt: skip
    finally:
        server.shutdown()
    assert status == 204
    (request,) = seen
    assert request["Host"] == f"hooks.test:{port}" and request["path"] == "/journey?x=1" and request["Idempotency-Key"] == "journey:r:2"
    stamp, digest = (part.split("=", 1)[1] for part in request["X-Guanxi-Signature"].split(","))
    verify_signature("topsecret", request["body"].encode(), digest, timestamp=stamp)
