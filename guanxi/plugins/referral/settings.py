"""The ``[plugins.referral]`` config section."""

from __future__ import annotations

from typing import Literal

import msgspec


class ReferralSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Base URL of this server as people outside reach it; links and QR codes point there.
    public_url: str = "http://127.0.0.1:8000"
    #: Which touch decides ``referredBy``: the first inviter or the latest one.
    attribution_model: Literal["first_touch", "last_touch"] = "first_touch"
    #: After a person's attribution changed, further tokens for them are ignored for this long.
    cooldown_hours: float = 24.0
    #: Stage key that counts an invitee as converted (``referralStats.converted``).
    converted_stage: str = "won"
    #: Deepest level the referral graph follows (``referrals(depth:)`` is capped to it).
    max_depth: int = 10
    #: Social value: points per direct referral, per indirect one, and per converted referral.
    direct_weight: float = 5.0
    indirect_weight: float = 1.0
    converted_weight: float = 10.0
    #: Key of the campaign in which a customer brought by a forwarded link of another plugin
    #: (``guanxi_customer_referred``: a forwarded radar link of the materials plugin) is
    #: attributed to whoever passed it on. Empty: such arrivals are not referrals.
    forward_campaign: str = ""
    #: Hosts allowed in a campaign's landing URL; empty means any https/http host.
    landing_hosts: list[str] = msgspec.field(default_factory=list)
    #: Folder of poster background images; a campaign's ``poster.background`` names a file in it.
    #: Empty: no backgrounds (plain canvas posters only).
    poster_backgrounds_dir: str = ""
    #: Folder for rendered posters ("" = a ``guanxi-referral-posters`` folder in the temp dir).
    poster_cache_dir: str = ""
    #: Secret that signs a known visitor on ``/r/{token}?channel=…&uid=…&sig=…`` (set it in the
    #: environment: GUANXI__PLUGINS__REFERRAL__VISITOR_SECRET). Empty: every visit is anonymous.
    visitor_secret: str = ""
    #: A TrueType/OpenType font for names on posters; empty: the Noto Sans SC subset shipped
    #: with the plugin (Chinese names out of the box).
    font_path: str = ""

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        if self.cooldown_hours < 0:
            raise ValueError("cooldown_hours must not be negative")
        if not 1 <= self.max_depth <= 50:
            raise ValueError("max_depth must be between 1 and 50")


class ReferralTenantSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The referral settings a tenant may override (``guanxi_tenant_settings``): its attribution
    rules and social-value weights. Never ``public_url``, ``landing_hosts``, the folders, the
    font or the visitor secret: deployment concerns a tenant admin must not steer."""

    attribution_model: Literal["first_touch", "last_touch"] = "first_touch"
    cooldown_hours: float = 24.0
    converted_stage: str = "won"
    max_depth: int = 10
    direct_weight: float = 5.0
    indirect_weight: float = 1.0
    converted_weight: float = 10.0
    forward_campaign: str = ""
