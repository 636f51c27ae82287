"""The channel adapter: messages to an external contact become a mass-send task
(``add_msg_template``, chat_type single) that the following staff member confirms in the WeCom
client; WeCom has no API to push a message to a customer directly."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from guanxi.core.domain.channels import (
    Attachment,
    Capabilities,
    Channel,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileInput,
    TransientDeliveryError,
)
from guanxi.core.runtime import Runtime
from guanxi.plugins.wecom import accounts as corp_accounts
from guanxi.plugins.wecom.client import WecomError
from guanxi.plugins.wecom.models import WecomFollow
from guanxi.plugins.wecom.settings import CorpSettings
from guanxi.plugins.wecom.state import wecom_state


def attachment(item: Attachment) -> dict[str, Any]:
    """A core attachment in WeCom's shape; kinds that need an uploaded media_id are refused."""
    if item.kind == "image":
        return {"msgtype": "image", "image": {"pic_url": item.url}}
    if item.kind == "link":
        return {"msgtype": "link", "link": {"title": item.name or item.url, "url": item.url}}
    raise PermanentDeliveryError(f"WeCom needs an uploaded media_id for {item.kind!r} attachments; send an image or a link")


class WecomChannel(Channel):
    name = "wecom"
    capabilities = Capabilities(receive=True, send_text=True, send_media=True, broadcast=True, profile_fetch=True, max_text_length=4000)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def _route(self, message: OutboundMessage) -> tuple[CorpSettings, str | None]:
        """The corp (of the message's tenant) and the member who follows the recipient (most
        recent active follow)."""
        corps = await corp_accounts.tenant_corps(self.runtime, message.tenant_id)
        async with self.runtime.session(message.tenant_id) as session:
            row = (
                await session.execute(
                    select(WecomFollow.corp_id, WecomFollow.userid)
                    .where(WecomFollow.external_userid == message.recipient, WecomFollow.status == "active")
                    .order_by(WecomFollow.followed_at.desc())
                    .limit(1)
                )
            ).first()
        if row is not None:
            corp = next((c for c in corps if c.corp_id == row.corp_id), None)
            if corp is not None:
                return corp, row.userid
        if len(corps) == 1:
            return corps[0], None  # WeCom then gives the task to every follower
        raise PermanentDeliveryError(f"no active WeCom follow for recipient {message.recipient!r}")

    async def fetch_profile(self, external_id: str, *, tenant_id: uuid.UUID) -> ProfileInput | None:
        """The customer as ``externalcontact/get`` describes it, from the first of the tenant's
        corps that knows the ExternalUserID (40096 / 84061: not this corp's contact)."""
        state = wecom_state(self.runtime)
        for corp in await corp_accounts.tenant_corps(self.runtime, tenant_id):
            client = state.client(corp)
            if client is None:
                continue
            try:
                detail = await client.get_external_contact(external_id)
            except WecomError as exc:
                if exc.errcode in (40096, 84061):
                    continue
                raise
            contact = detail["external_contact"]
            profile: dict[str, Any] = {"corp_id": corp.corp_id}
            for key in ("type", "gender", "corp_name", "position"):
                if contact.get(key) not in (None, ""):
                    profile[key] = contact[key]
            return ProfileInput(
                external_id=external_id,
                union_id=contact.get("unionid") or None,
                nickname=contact.get("name") or None,
                avatar_url=contact.get("avatar") or None,
                profile=profile,
            )
        return None

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        corp, sender = await self._route(message)
        client = wecom_state(self.runtime).client(corp)
        if client is None:
            raise PermanentDeliveryError(f"WeCom corp {corp.key!r} has no secret configured")
        attachments = [attachment(a) for a in message.attachments]
        try:
            answer = await client.add_msg_template(
                external_userids=[message.recipient], sender=sender, text=message.text, attachments=attachments or None
            )
        except WecomError as exc:
            code = None if exc.errcode is None else str(exc.errcode)
            if exc.transient:
                raise TransientDeliveryError(str(exc), provider_code=code, retry_after_s=exc.retry_after_s) from None
            raise PermanentDeliveryError(str(exc), provider_code=code) from None
        if message.recipient in answer["fail_list"] or not answer["msgid"]:
            raise PermanentDeliveryError("WeCom cannot reach this external contact (fail_list)", provider_code="fail_list")
        return DeliveryResult(provider_message_id=str(answer["msgid"]), payload={"task": "add_msg_template", "sender": sender})
