"""The ``[plugins.douyin]`` config section: the deployment-wide app and the protocol facts that
PROTOCOLS.md §D marks UNCONFIRMED (settings, not constants)."""

from __future__ import annotations

import msgspec


def _default_scopes() -> list[str]:
    return ["user_info", "im.direct_message", "item.comment", "user.intention", "data.external.user"]


class DouyinSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: The deployment-wide app (a SaaS vendor's app that many businesses authorize): its
    #: client_key; "" means there is none and only tenants' own apps (channel accounts) are used.
    client_key: str = ""
    #: Secret: the app's client_secret (GUANXI__PLUGINS__DOUYIN__CLIENT_SECRET, never in the file).
    client_secret: str = ""
    #: Secret: the key webhooks are signed with when the console issued a separate webhook
    #: secret (PROTOCOLS.md §D.2, UNCONFIRMED); "" means the client_secret signs them.
    webhook_secret: str = ""
    #: Where Douyin sends the browser back after authorization: this deployment's
    #: ``/douyin/oauth/callback``, as registered in the app's console.
    redirect_uri: str = ""
    #: Scopes asked for in the authorization URL.
    scopes: list[str] = msgspec.field(default_factory=_default_scopes)
    #: Open API base (a fake server in tests).
    api_base_url: str = "https://open.douyin.com"
    timeout_s: float = 10.0
    #: Refresh an access token this long before it expires.
    refresh_margin_s: int = 3600
    #: Renew the refresh token when it has less than this left (and renewals remain).
    renew_margin_s: int = 3 * 86400
    #: How many times a refresh token may be renewed before the user must authorize again (§D.7: 5).
    max_renewals: int = 5
    #: The reply window after the customer's last private message (UNCONFIRMED for dop: ~24 h).
    reply_window_s: int = 86400
    #: Replies allowed per customer message within the window (UNCONFIRMED: ~6); 0 = no limit.
    reply_quota: int = 6
    #: The ``scene`` of a private-message reply (``im_reply_msg``, §D.9).
    reply_scene: str = "im_reply_msg"
    #: The receipt status an ``im_send_msg`` echo of our own API send reports (sent, delivered, read).
    echo_receipt_status: str = "delivered"
    #: ``date_type`` of the fans-data call (7/15/30 days, UNCONFIRMED).
    fans_date_type: int = 7
    #: How long an authorization URL's ``state`` stays valid, seconds.
    oauth_state_ttl_s: int = 1800
    #: Seconds a process keeps the app and the authorization a webhook names (each request
    #: looks them up before checking the signature); 0 looks them up every time.
    lookup_cache_s: float = 30.0
    #: Days an ignored webhook event (an unknown type; its raw body may hold what someone wrote)
    #: is kept before the daily purge deletes it; 0 keeps them.
    ignored_event_retention_days: int = 30

    def problems(self) -> list[str]:
        """What is wrong, by key path (values, which may be secrets, are not shown)."""
        found: list[str] = []
        if self.client_key and not self.client_secret:
            found.append("`$.plugins.douyin.client_secret` is required with client_key (set it in the environment)")
        if self.echo_receipt_status not in ("sent", "delivered", "read"):
            found.append("`$.plugins.douyin.echo_receipt_status` must be sent, delivered or read")
        if self.lookup_cache_s < 0 or self.lookup_cache_s > 3600:
            found.append("`$.plugins.douyin.lookup_cache_s` must be 0 to 3600")
        if self.ignored_event_retention_days < 0:
            found.append("`$.plugins.douyin.ignored_event_retention_days` must be >= 0 (0 keeps ignored events)")
        if self.max_renewals < 0 or self.reply_quota < 0 or self.reply_window_s <= 0:
            found.append("`$.plugins.douyin`: max_renewals and reply_quota must be >= 0, reply_window_s > 0")
        return found
