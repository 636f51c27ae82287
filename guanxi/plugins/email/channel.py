"""The channel adapter: an outbox message goes out of one of the tenant's mailboxes by SMTP."""

from __future__ import annotations

import uuid

from guanxi import Capabilities, Channel, DeliveryResult, OutboundMessage, PermanentDeliveryError, Runtime
from guanxi.core.services import accounts
from guanxi.plugins.email import mailboxes
from guanxi.plugins.email.compose import Draft, compose
from guanxi.plugins.email.models import EmailDraft
from guanxi.plugins.email.settings import CHANNEL, EmailSettings, Mailbox, MailboxSecrets
from guanxi.plugins.email.smtp import MailboxPool
from guanxi.plugins.email.tls import tls_context


def _secrets(account: accounts.Account) -> MailboxSecrets:
    """A usable (not broken) account's secrets."""
    assert isinstance(account.secrets, MailboxSecrets)
    return account.secrets


class EmailChannel(Channel):
    name = CHANNEL
    capabilities = Capabilities(receive=True, send_text=True, send_media=True, broadcast=True, max_text_length=200_000)

    def __init__(self, runtime: Runtime, settings: EmailSettings) -> None:
        self.runtime, self.settings = runtime, settings
        self._pools: dict[tuple[uuid.UUID, str], tuple[Mailbox, MailboxSecrets, MailboxPool]] = {}

    async def _draft(self, message: OutboundMessage) -> Draft:
        async with self.runtime.session(message.tenant_id) as session:
            row = await session.get(EmailDraft, (message.tenant_id, message.id))
        if row is None:
            return Draft()
        return Draft(mailbox=row.mailbox or None, subject=row.subject, html=row.html, marketing=row.marketing)

    async def mailbox(self, tenant_id: uuid.UUID, key: str | None) -> accounts.Account:
        """The tenant's mailbox ``key`` (its first usable one when None)."""
        found = [a for a in await accounts.tenant_accounts(self.runtime, tenant_id, CHANNEL) if a.broken is None]
        account = next((a for a in found if key is None or a.key == key), None)
        if account is None:
            raise PermanentDeliveryError(f"the tenant has no usable mailbox {key!r}" if key else "the tenant has no usable mailbox")
        return account

    def _pool(self, account: accounts.Account) -> MailboxPool:
        settings: Mailbox = account.settings
        secrets = _secrets(account)
        entry = self._pools.get((account.tenant_id, account.key))
        if entry is None or (entry[0], entry[1]) != (settings, secrets):  # new, or changed: a new pool
            pool = MailboxPool(settings, secrets, timeout_s=self.settings.timeout_s, tls_context=tls_context(self.settings))
            entry = (settings, secrets, pool)
            self._pools[(account.tenant_id, account.key)] = entry
        return entry[2]

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        draft = await self._draft(message)
        account = await self.mailbox(message.tenant_id, draft.mailbox)
        secrets = _secrets(account)
        base_url = self.settings.public_url.rstrip("/")
        data, sender, message_id = compose(self.runtime, message, draft, account.settings, secrets, base_url=base_url)
        pool = self._pool(account)
        try:
            await pool.send(sender, [message.recipient], data)
        except PermanentDeliveryError as exc:
            if exc.provider_code == "auth":  # the mailbox's fault, not the message's: show it on the mailbox
                await mailboxes.record_smtp_error(self.runtime, message.tenant_id, account.key, str(exc))
            raise
        if pool.fresh:
            pool.fresh = False
            await mailboxes.record_smtp_error(self.runtime, message.tenant_id, account.key, None)
        return DeliveryResult(provider_message_id=message_id, payload={"mailbox": account.key})

    async def aclose(self) -> None:
        for _, _, pool in self._pools.values():
            await pool.aclose()
