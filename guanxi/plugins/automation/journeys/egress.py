"""Calling a tenant's webhook from a journey without letting the call reach inside the network.

The host must be one the tenant allows (checked when the journey is saved and again here); its
name is resolved and *every* address it resolves to must be public (not loopback, private,
link-local, shared, reserved, multicast or unspecified, IPv4 or IPv6, IPv4-mapped included). The
request then goes to the address that was checked (the name only in ``Host`` and TLS SNI), so a
DNS answer that changes between the check and the connection cannot redirect it. Redirects are
not followed. The body is signed with core's :func:`guanxi.sign` (``X-Guanxi-Signature``:
``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) and carries ``Idempotency-Key`` (the run and
step), since a worker that dies after the call but before its commit calls again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Collection
from urllib.parse import urlsplit, urlunsplit

from guanxi import GuanxiError, sign


class EgressError(GuanxiError):
    """A webhook target that may not be called (host not allowed, or a non-public address)."""

    code = "VALIDATION"


def public(address: str) -> bool:
    """True for an address on the public internet."""
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not (ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_reserved)


async def resolve_public(host: str, port: int) -> str:
    """One public address of ``host``; EgressError when it has none or any of its addresses is not public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise EgressError(f"webhook host {host!r} does not resolve ({exc.strerror or exc})", field="url") from None
    addresses = [str(info[4][0]) for info in infos]
    bad = [a for a in addresses if not public(a)]
    if not addresses or bad:
        raise EgressError(f"webhook host {host!r} resolves to a non-public address; not called", field="url")
    return addresses[0]


def check_host(url: str, allowed_hosts: Collection[str]) -> tuple[str, int]:
    """(host, port) of an https URL whose host the tenant allows."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise EgressError("webhook URL must be https://host/…", field="url")
    host = parts.hostname.lower()
    if host not in {h.lower() for h in allowed_hosts}:
        raise EgressError(f"webhook host {host!r} is not among the tenant's allowed hosts", field="url")
    return host, parts.port or 443


def signature(secret: str, body: bytes, now: float | None = None) -> str:
    stamp = str(int(now if now is not None else time.time()))
    return f"t={stamp},v1={sign(secret, body, timestamp=stamp)}"


async def post(
    url: str,
    body: bytes,
    *,
    secret: str,
    idempotency_key: str,
    allowed_hosts: Collection[str],
    timeout_s: float = 10.0,
    verify: bool | ssl.SSLContext = True,
) -> int:
    """POST ``body`` to ``url`` (see the module docstring); the HTTP status. A 5xx or a network
    error raises (the step is retried); a 4xx is returned (the step is recorded as failed)."""
    import httpx

    host, port = check_host(url, allowed_hosts)
    address = await resolve_public(host, port)
    parts = urlsplit(url)
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    headers = {
        "Host": host if port == 443 else f"{host}:{port}",
        "Content-Type": "application/json",
        "X-Guanxi-Signature": signature(secret, body),
        "Idempotency-Key": idempotency_key,
    }
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, verify=verify) as client:
            response = await client.post(pinned, content=body, headers=headers, extensions={"sni_hostname": host})
    except httpx.HTTPError as exc:  # no answer: the step is retried later
        raise RuntimeError(f"webhook call failed: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise RuntimeError(f"webhook answered {response.status_code}")
    return response.status_code
