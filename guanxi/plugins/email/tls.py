"""The TLS context of the plugin's SMTP and IMAP connections: the system's trusted CAs, plus
those of ``[plugins.email] tls_ca_file`` when set (a private CA of an in-house mail server)."""

from __future__ import annotations

import functools
import ssl

from guanxi.plugins.email.settings import EmailSettings


@functools.lru_cache(maxsize=8)
def _context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def tls_context(settings: EmailSettings) -> ssl.SSLContext:
    """A verifying client context (certificate and host name checked)."""
    return _context(settings.tls_ca_file)
