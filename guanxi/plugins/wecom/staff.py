"""Staff notifications through WeCom: an application message (``message/send``, text) from the
corp's self-built app (``agent_id``) to the employee's UserID, found through the staff mapping
(``wecom_staff``, or the corp's ``staff`` map of UserID → e-mail)."""

from __future__ import annotations

import uuid

from guanxi.core.domain.channels import (
    DeliveryResult,
    PermanentDeliveryError,
    StaffChannel,
    StaffNotice,
    TransientDeliveryError,
)
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.wecom import accounts as corp_accounts
from guanxi.plugins.wecom import events
from guanxi.plugins.wecom.client import WecomError
from guanxi.plugins.wecom.state import wecom_state

#: WeCom's limit for a text application message, in bytes of UTF-8
MAX_CONTENT_BYTES = 2048


def clip(text: str, limit: int = MAX_CONTENT_BYTES) -> str:
    """The text cut to ``limit`` bytes of UTF-8, never inside a character."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")


class WecomStaffChannel(StaffChannel):
    name = "wecom"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def recipient(self, session: TenantSession, user_id: uuid.UUID) -> str | None:
        """``<corp id>:<UserID>`` of the first of the tenant's corps with a notifying app that
        has the user in its staff mapping."""
        state = wecom_state(self.runtime)
        for corp in await corp_accounts.tenant_corps(self.runtime, session.tenant_id, session=session):
            if state.app_client(corp) is None:
                continue
            userid = await events.wecom_userid(session, corp, user_id)
            if userid:
                return f"{corp.corp_id}:{userid}"
        return None

    async def send(self, notice: StaffNotice) -> DeliveryResult:
        corp_id, _, userid = notice.recipient.partition(":")
        state = wecom_state(self.runtime)
        corp = await corp_accounts.tenant_corp_by_id(self.runtime, notice.tenant_id, corp_id)
        client = state.app_client(corp) if corp is not None else None
        if corp is None or client is None or corp.agent_id is None:
            raise PermanentDeliveryError(f"WeCom corp {corp_id!r} has no notifying app (agent_id and a secret) configured")
        try:
            answer = await client.send_app_text(corp.agent_id, userid, clip(notice.text))
        except WecomError as exc:
            code = None if exc.errcode is None else str(exc.errcode)
            if exc.transient:
                raise TransientDeliveryError(str(exc), provider_code=code, retry_after_s=exc.retry_after_s) from None
            raise PermanentDeliveryError(str(exc), provider_code=code) from None
        if userid in answer["invaliduser"]:
            raise PermanentDeliveryError(f"WeCom cannot reach member {userid!r} (invaliduser)", provider_code="invaliduser")
        return DeliveryResult(provider_message_id=str(answer["msgid"]) if answer["msgid"] else None)
