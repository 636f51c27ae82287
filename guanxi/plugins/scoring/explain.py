"""Turning stored parts into words: every number of a score says where it comes from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from guanxi.plugins.scoring.settings import ScoringSettings

#: The order components are shown in (other plugins' components follow, by name).
ORDER = ("engagement", "profile", "social", "purchase")


def _span(first: dt.datetime | None, last: dt.datetime | None) -> str:
    if first is None or last is None:
        return ""
    if first.date() == last.date():
        return f", on {first:%Y-%m-%d}"
    return f", {first:%Y-%m-%d} to {last:%Y-%m-%d}"


def reason(part: Any, settings: ScoringSettings) -> list[str]:
    """The words for one part row (``component``, ``item``, ``count``, ``skipped``, ``value``,
    ``measure``, ``first_at``, ``last_at``, ``reasons``)."""
    value = f"{part.value:+.2f}"
    if part.component == "engagement":
        kind, _, channel = part.item.partition("@")
        where = "any channel" if channel == "*" else channel
        rule = next((r for r in settings.engagement.rules if r.key == part.item), None)
        per = f" × {rule.points:g} points" if rule else ""
        text = f"{part.count} × {kind} on {where}{per}, decayed with a {settings.engagement.half_life_days:g}-day half-life: {value}"
        if part.skipped:
            cap = f" (cap {rule.cap} per {rule.period})" if rule and rule.cap else ""
            text += f"; {part.skipped} more over the cap not counted{cap}"
        return [text + _span(part.first_at, part.last_at)]
    if part.component == "purchase":
        if part.item == "recency":
            return [f"last purchase {part.last_at:%Y-%m-%d}: {value} (half-life {settings.purchase.recency_half_life_days:g} days)"]
        if part.item == "frequency":
            over = f", {part.skipped} over the cap of {settings.purchase.frequency_cap}" if part.skipped else ""
            return [f"{part.count} purchases × {settings.purchase.frequency_points:g}{over}: {value}" + _span(part.first_at, part.last_at)]
        return [f"{part.measure or 0:.2f} spent in {part.count} purchases (log-scaled): {value}"]
    if part.component == "social":
        what, _, channel = part.item.partition("@")
        if what == "followers":
            return [f"{int(part.measure or 0)} followers on {channel} (log-scaled): {value}"]
        return [f"engagement rate {part.measure or 0:.3g} on {channel}: {value}"]
    if part.component == "profile":
        if part.item.startswith("attribute:"):
            return [f"attribute {part.item[len('attribute:') :]}: {value}"]
        return [f"{part.item} filled in: {value}"]
    words = list(part.reasons or [])
    return words or [f"{part.component}: {value}"]


def components(parts: Iterable[Any], settings: ScoringSettings) -> list[tuple[str, float, list[tuple[Any, list[str]]]]]:
    """(name, value, [(part, its reasons), …]) per component, in display order."""
    grouped: dict[str, list[tuple[Any, list[str]]]] = {}
    for part in parts:
        grouped.setdefault(part.component, []).append((part, reason(part, settings)))
    rank = {name: i for i, name in enumerate(ORDER)}
    names = sorted(grouped, key=lambda n: (rank.get(n, len(ORDER)), n))
    return [(n, sum(float(p.value) for p, _ in grouped[n]), grouped[n]) for n in names]
