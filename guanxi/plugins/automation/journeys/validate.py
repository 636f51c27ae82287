"""Checking a journey definition: its shape (the JSON Schema's rules, by msgspec) and what a
schema cannot say: step ids unique and known, no cycle without a wait, sends only on channels the
tenant has enabled, actions some plugin offers, webhooks to allowed https hosts. Every refusal is
a :class:`JourneyError` whose ``field`` is the path of the bad part (``steps[2].channel``)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import msgspec

from guanxi import GuanxiError
from guanxi.plugins.automation.journeys.definition import WAITS, Action, Journey, Send, Webhook, exits


class JourneyError(GuanxiError):
    """A journey definition is invalid; ``field`` is the path of the bad step or part."""

    code = "BAD_JOURNEY"


def _path(exc: msgspec.ValidationError) -> str:
    match = re.search(r" - at `\$(\.[^`]*|\[[^`]*)?`", str(exc))
    path = (match.group(1) or "") if match else ""
    return path.lstrip(".") or "definition"


def decode(data: bytes | str | dict[str, Any], *, fmt: str = "json") -> Journey:
    """A journey from JSON text, TOML text or already parsed data; shape errors name their path."""
    try:
        if isinstance(data, dict):
            return msgspec.convert(data, Journey)
        if fmt == "toml":
            text = data.decode() if isinstance(data, bytes) else data
            return msgspec.convert(tomllib.loads(text), Journey)
        return msgspec.json.decode(data, type=Journey)
    except msgspec.ValidationError as exc:
        message = str(exc).split(" - at ")[0]
        raise JourneyError(f"{message} at {_path(exc)}", field=_path(exc)) from None
    except (msgspec.DecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JourneyError(f"the definition is not valid {fmt.upper()}: {exc}", field="definition") from None


def check(
    journey: Journey,
    *,
    channels: Collection[str] | None = None,
    actions: Collection[str] | None = None,
    allowed_hosts: Collection[str] | None = None,
) -> Journey:
    """Refuse what the shape allows but the journey cannot run (see the module docstring).
    ``channels``/``actions``/``allowed_hosts``: what the tenant may use (None: not checked)."""
    index: dict[str, int] = {}
    for i, step in enumerate(journey.steps):
        if step.id in index:
            raise JourneyError(f"step id {step.id!r} is used twice (steps[{index[step.id]}] and steps[{i}])", field=f"steps[{i}].id")
        index[step.id] = i
    for i, _step in enumerate(journey.steps):
        for target in exits(journey.steps, i):
            if target is not None and target not in index:
                raise JourneyError(f"steps[{i}] goes to step {target!r}, which does not exist", field=f"steps[{i}]")
    for i, step in enumerate(journey.steps):
        if isinstance(step, Send) and channels is not None and step.channel not in channels:
            enabled = ", ".join(sorted(channels)) or "none"
            raise JourneyError(
                f"steps[{i}] sends on channel {step.channel!r}, which the tenant has not enabled (enabled: {enabled})",
                field=f"steps[{i}].channel",
            )
        if isinstance(step, Action) and actions is not None and step.action not in actions:
            raise JourneyError(f"steps[{i}] runs action {step.action!r}, which no enabled plugin offers", field=f"steps[{i}].action")
        if isinstance(step, Webhook):
            url = urlsplit(step.url)
            if url.scheme != "https" or not url.hostname:
                raise JourneyError(f"steps[{i}] webhook URL must be https://host/…", field=f"steps[{i}].url")
            if allowed_hosts is not None and url.hostname.lower() not in {h.lower() for h in allowed_hosts}:
                raise JourneyError(
                    f"steps[{i}] calls host {url.hostname!r}, which is not among the tenant's allowed webhook hosts",
                    field=f"steps[{i}].url",
                )
    _check_cycles(journey, index)
    return journey


def _check_cycles(journey: Journey, index: dict[str, int]) -> None:
    """A cycle through steps none of which waits would run for ever in one go: refused, naming
    the step where the cycle closes. Such a cycle exists exactly when the steps that do not wait
    hold a cycle among themselves."""
    steps = journey.steps
    moving = [i for i, s in enumerate(steps) if not isinstance(s, WAITS)]
    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def visit(i: int, path: list[int]) -> None:
        state[i] = 1
        for target in exits(steps, i):
            if target is None or isinstance(steps[index[target]], WAITS):
                continue
            j = index[target]
            if state.get(j) == 1:
                names = " → ".join(steps[k].id for k in [*path[path.index(j) :], j])
                raise JourneyError(f"steps[{i}] closes a cycle without a wait ({names})", field=f"steps[{i}]")
            if state.get(j) is None:
                visit(j, [*path, j])
        state[i] = 2

    for i in moving:
        if i not in state:
            visit(i, [i])
