"""The secret a tenant's journey webhooks are signed with: derived from the server secret and the
tenant (HMAC-SHA256), so nothing is stored; rotating the server secret rotates it."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from guanxi import Runtime
from guanxi.core.base.sealing import server_secret


def webhook_secret(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    key = server_secret(runtime.settings.auth)
    return hmac.new(key, b"guanxi journey webhooks v1:" + tenant_id.bytes, hashlib.sha256).hexdigest()
