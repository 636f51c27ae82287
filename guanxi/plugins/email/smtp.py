"""SMTP delivery through aiosmtplib: one small pool of connections per mailbox (reused between
messages), a rate limit per mailbox, and the SMTP answers mapped onto the delivery contract."""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence

import aiosmtplib

from guanxi import PermanentDeliveryError, TransientDeliveryError
from guanxi.core.queues.outbox import TokenBucket
from guanxi.plugins.email.settings import Mailbox, MailboxSecrets


def delivery_error(exc: Exception) -> TransientDeliveryError | PermanentDeliveryError:
    """An SMTP failure as a delivery error: 5xx answers are permanent (the recipient does not
    exist, the content was refused, bad credentials), 4xx and lost connections are transient."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [e.code for e in exc.recipients]
        detail = "; ".join(f"{e.code} {e.message}" for e in exc.recipients)
        if codes and all(500 <= c < 600 for c in codes):
            return PermanentDeliveryError(f"SMTP refused the recipient: {detail}", provider_code=str(codes[0]))
        return TransientDeliveryError(f"SMTP deferred the recipient: {detail}", provider_code=str(codes[0]) if codes else None)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return PermanentDeliveryError(
            f"the SMTP server refused the mailbox's login ({exc.code} {exc.message}): check its smtp_username and smtp_password",
            provider_code="auth",
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        reason = exc if isinstance(exc, ssl.SSLCertVerificationError) else exc.__cause__
        return TransientDeliveryError(
            f"the SMTP server's TLS certificate is not trusted: {getattr(reason, 'verify_message', '') or reason}"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        if 500 <= exc.code < 600:
            return PermanentDeliveryError(f"SMTP answered {exc.code} {exc.message}", provider_code=str(exc.code))
        return TransientDeliveryError(f"SMTP answered {exc.code} {exc.message}", provider_code=str(exc.code))
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or type(exc) is aiosmtplib.SMTPException:
        return PermanentDeliveryError(f"the SMTP server cannot do what the mailbox is set up for: {exc}", provider_code="config")
    return TransientDeliveryError(f"SMTP server unreachable or the connection dropped: {type(exc).__name__}")


#: a connection used this recently is reused without a NOOP first
FRESH_S = 5.0


class MailboxPool:
    """Idle SMTP connections of one mailbox; a connection that failed is dropped, never reused,
    and one idle for longer than ``FRESH_S`` is checked with NOOP before it is."""

    def __init__(
        self, mailbox: Mailbox, secrets: MailboxSecrets, *, timeout_s: float, size: int = 4, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.mailbox, self.secrets, self.timeout_s, self.size = mailbox, secrets, timeout_s, size
        self.tls_context = tls_context
        #: no message has gone out through this pool yet (the mailbox's last SMTP error is cleared after the first)
        self.fresh = True
        self.idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self.bucket = TokenBucket(mailbox.rate_per_s)

    async def _connect(self) -> aiosmtplib.SMTP:
        mb = self.mailbox
        client = aiosmtplib.SMTP(
            hostname=mb.smtp_host,
            port=mb.smtp_port,
            use_tls=mb.smtp_security == "tls",
            start_tls=mb.smtp_security == "starttls",
            timeout=self.timeout_s,
            tls_context=self.tls_context if mb.smtp_security != "none" else None,
        )
        await client.connect()
        if mb.smtp_username:
            await client.login(mb.smtp_username, self.secrets.smtp_password)
        return client

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        await self.bucket.take()
        client, used_at = self.idle.pop() if self.idle else (None, 0.0)
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            elif time.monotonic() - used_at > FRESH_S:  # idle a while: the server may have closed it
                try:
                    await client.noop()
                except aiosmtplib.SMTPException:
                    client.close()
                    client = await self._connect()
            errors, _ = await client.sendmail(sender, list(recipients), data)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            if client is not None:
                client.close()
            raise delivery_error(exc) from None
        if errors:  # some recipients refused (we send one per message, so this is all of them)
            client.close()
            refused = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(c, m, r) for r, (c, m) in errors.items()])
            raise delivery_error(refused)
        if len(self.idle) < self.size:
            self.idle.append((client, time.monotonic()))
        else:
            await _quit(client)

    async def aclose(self) -> None:
        while self.idle:
            await _quit(self.idle.pop()[0])


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
