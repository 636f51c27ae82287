"""The ``[plugins.materials]`` config section."""

from __future__ import annotations

import msgspec

#: substrings (lower case) of the user agents of bots and link-preview crawlers; an opening by
#: one of them is a ``preview``, not a view
DEFAULT_PREVIEW_AGENTS = [
    "bot",
    "crawler",
    "spider",
    "preview",
    "facebookexternalhit",
    "wxwork-linkpreview",
    "wechat-linkpreview",
    "mmspider",
    "headlesschrome",
    "curl/",
    "python-",
]


class MaterialsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Base URL of this server as people outside reach it; radar links point there.
    public_url: str = "http://127.0.0.1:8000"
    #: Substrings of user agents counted as previews (case-insensitive).
    preview_agents: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_PREVIEW_AGENTS))
    #: Longest read time one view can report, in seconds (a tab left open counts this much).
    max_read_s: int = 3600
    #: Tag group of interest tags: a customer's view adds the material's tags as ``<group>/<tag>``
    #: core tags on the customer. Empty: no interest tags.
    interest_tag_group: str = "interest"
    #: Score component ``materials.views``: points per view and per full minute read.
    view_weight: float = 2.0
    minute_weight: float = 1.0
    #: Requests per minute one client address may make to the public radar routes (``/m/…``:
    #: pages, files, beacons, forwards), per server process; beyond it they answer 429. 0: no limit.
    rate_limit_per_minute: int = 120

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        if self.rate_limit_per_minute < 0:
            raise ValueError("rate_limit_per_minute must be 0 (no limit) or more")
        if self.max_read_s < 1:
            raise ValueError("max_read_s must be at least 1")
