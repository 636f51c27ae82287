"""The ``[plugins.wecom]`` config section: one entry per corp (SaaS deployments serve several)."""

from __future__ import annotations

from typing import Annotated

import msgspec

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class CorpSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One corp (企业) and its receiving app. The callback URL is ``/wecom/callback/<key>``."""

    #: URL-safe name of this corp in the callback URL and the CLI (``guanxi wecom sync --corp``).
    key: Key
    #: The CorpID (``ww…``/``wx…``); also the receive id checked in every callback.
    corp_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: Secret: callback Token (GUANXI__PLUGINS__WECOM__… or the file, never logged).
    token: str = ""
    #: Secret: the 43-character EncodingAESKey.
    encoding_aes_key: str = ""
    #: Secret: the 客户联系 secret (or a self-built app's secret allowed to call customer-contact APIs).
    secret: str = ""
    #: Slug of the Guanxi tenant this corp feeds; "" means the configured tenant.
    tenant: str = ""
    #: AgentId of the self-built app that sends staff notifications as application messages
    #: (``message/send``); unset: staff are not notified through WeCom.
    agent_id: int | None = None
    #: Secret: that app's secret; "" means ``secret`` (a self-built app allowed both).
    agent_secret: str = ""
    #: WeCom UserID → Guanxi user email, for the staff mapping (``wecom_staff``).
    staff: dict[str, str] = msgspec.field(default_factory=dict)
    #: Welcome text per contact-way ``state``; ``"*"`` is the default for any other add.
    welcome: dict[str, str] = msgspec.field(default_factory=dict)


class WecomSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    corps: list[CorpSettings] = msgspec.field(default_factory=list)
    #: Server API base (a fake server in tests).
    api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin"
    timeout_s: float = 10.0
    #: Callbacks whose ``timestamp`` is further than this from now are refused.
    timestamp_window_s: int = 300
    #: How long a (signature, nonce) pair is remembered to refuse a replayed request.
    nonce_ttl_s: int = 600
    #: First wait after a 45009 (rate limited) or -1 (busy) answer; doubles per retry.
    backoff_s: float = 1.0
    #: Retries after 45009 / -1 before giving up with a transient error.
    max_retries: int = 3
    #: Fetch the customer's profile (name, remarks, tags) from the API after add/edit events.
    fetch_profiles: bool = True

    def problems(self) -> list[str]:
        """What is wrong with the corps, by key path (values, which may be secrets, are not shown)."""
        from guanxi.plugins.wecom.crypto import aes_key

        found: list[str] = []
        for field in ("key", "corp_id"):
            values = [getattr(c, field) for c in self.corps]
            found += [f"`$.plugins.wecom.corps[{i}].{field}` repeats {v!r}" for i, v in enumerate(values) if v in values[:i]]
        for i, corp in enumerate(self.corps):
            if bool(corp.token) != bool(corp.encoding_aes_key):
                found.append(f"`$.plugins.wecom.corps[{i}]`: set both token and encoding_aes_key, or neither")
            if corp.encoding_aes_key:
                try:
                    aes_key(corp.encoding_aes_key)
                except ValueError as exc:
                    found.append(f"`$.plugins.wecom.corps[{i}].encoding_aes_key`: {exc}")
        return found

    def corp(self, key: str) -> CorpSettings | None:
        return next((c for c in self.corps if c.key == key), None)

    def corp_by_id(self, corp_id: str) -> CorpSettings | None:
        return next((c for c in self.corps if c.corp_id == corp_id), None)
