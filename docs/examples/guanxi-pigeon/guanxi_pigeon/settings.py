"""The ``[plugins.pigeon]`` config section."""

from __future__ import annotations

import msgspec


class PigeonSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    api_base_url: str = "https://api.pigeon.example"
    #: Secret: set it in the environment (GUANXI__PLUGINS__PIGEON__API_TOKEN), not in the file.
    api_token: str = ""
    #: Secret shared with Pigeon to sign webhooks (GUANXI__PLUGINS__PIGEON__WEBHOOK_SECRET).
    webhook_secret: str = ""
    #: Slug of the tenant that receives webhooks; "" means the configured tenant.
    tenant: str = ""
    timeout_s: float = 10.0
    #: Pigeon's "follow us" deep link; an entry point adds ``?state=<token>`` to it.
    invite_url: str = "https://pigeon.example/follow"
