"""Who the insights plugin acts as when it writes: the rule actor of scores, alerts and tags."""

from __future__ import annotations

from guanxi.core.base.context import Actor

NAME = "insights"
RULE_ACTOR = Actor(kind="rule", name=NAME, roles=("admin",))
