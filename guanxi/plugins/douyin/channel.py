"""The channel adapter: a message to a customer is a reply to the last private message they sent
the business account (``/im/send/msg/``, scene ``im_reply_msg``, §D.9), inside the reply window
and quota (settings: the vendor's figures are UNCONFIRMED). Douyin has no API to write first to a
user who has not written (active messaging needs a separate authorization card), so a customer
who never wrote cannot be reached.

Receipts: the ``im_send_msg`` echo of a message this app sent reports it (``echo_receipt_status``,
default ``delivered``); Douyin gives no read receipt for private messages."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from guanxi.core.domain.channels import (
    Capabilities,
    Channel,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from guanxi.core.domain.models import OutboxMessage, utcnow
from guanxi.core.runtime import Runtime
from guanxi.plugins.douyin import tokens
from guanxi.plugins.douyin.client import DouyinClient, DouyinError
from guanxi.plugins.douyin.models import DouyinConversation
from guanxi.plugins.douyin.settings import DouyinSettings

#: longest private-message text (UNCONFIRMED; Douyin's app limit)
MAX_TEXT = 1000


class DouyinChannel(Channel):
    name = "douyin"

    def __init__(self, runtime: Runtime, settings: DouyinSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        # the reply window is a setting (UNCONFIRMED figure), so the capabilities are per instance
        self.capabilities = Capabilities(  # type: ignore[misc]
            receive=True, send_text=True, messaging_window_s=settings.reply_window_s, max_text_length=MAX_TEXT
        )

    async def _conversation(self, message: OutboundMessage) -> DouyinConversation:
        async with self.runtime.session(message.tenant_id) as session:
            row = (
                await session.execute(
                    select(DouyinConversation)
                    .where(DouyinConversation.open_id == message.recipient)
                    .order_by(DouyinConversation.last_in_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            if row is None:
                raise PermanentDeliveryError(
                    "this Douyin user has not written to the business account: there is no message to reply to",
                    provider_code="no_conversation",
                )
            if utcnow() - row.last_in_at > dt.timedelta(seconds=self.settings.reply_window_s):
                raise PermanentDeliveryError(
                    "the Douyin reply window after the user's last message has closed", provider_code="window_closed"
                )
            if self.settings.reply_quota:
                replies = (
                    await session.execute(
                        select(func.count())
                        .select_from(OutboxMessage)
                        .where(
                            OutboxMessage.channel == self.name,
                            OutboxMessage.recipient == message.recipient,
                            OutboxMessage.sent_at >= row.last_in_at,
                            OutboxMessage.id != message.id,
                        )
                    )
                ).scalar_one()
                if replies >= self.settings.reply_quota:
                    raise PermanentDeliveryError(
                        f"the Douyin reply quota ({self.settings.reply_quota} per user message) is used up", provider_code="quota"
                    )
            return row

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        conversation = await self._conversation(message)
        body = {
            "msg_id": conversation.server_message_id,
            "conversation_id": conversation.conversation_id,
            "to_user_id": message.recipient,
            "content": {"msg_type": 1, "text": {"text": message.text or ""}},
            "scene": self.settings.reply_scene,
        }

        async def send(client: DouyinClient, token: str) -> str:
            return await client.send_message(token, conversation.account_open_id, body)

        try:
            msg_id = await tokens.with_token(self.runtime, message.tenant_id, conversation.account_open_id, send)
        except DouyinError as exc:
            code = str(exc.error_code) if exc.error_code is not None else exc.code
            if exc.transient:
                raise TransientDeliveryError(str(exc), provider_code=code) from None
            raise PermanentDeliveryError(str(exc), provider_code=code) from None
        return DeliveryResult(provider_message_id=msg_id, payload={"account_open_id": conversation.account_open_id})
