"""Journey definitions: shape, checks with the path of the bad step, the published JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guanxi.plugins.automation.journeys import publish
from guanxi.plugins.automation.journeys.definition import Journey
from guanxi.plugins.automation.journeys.validate import JourneyError, check, decode


def _journey(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"key": "welcome", "name": "Welcome", "trigger": {"type": "tag_added", "tag": "vip"}, "steps": steps, **extra}


def _refused(data: dict[str, Any], **kw: Any) -> JourneyError:
    with pytest.raises(JourneyError) as info:
        check(decode(json.dumps(data)), **kw)
    assert info.value.code == "BAD_JOURNEY"
    return info.value


def test_published_schema_is_current() -> None:
    """docs/plugins/automation-journey.schema.json is what the structs generate (regenerate with
    ``python -m guanxi.plugins.automation.journeys.publish``)."""
    assert publish.TARGET.read_text(encoding="utf-8") == publish.render()


def test_unknown_step_type_is_refused_with_its_path() -> None:
    error = _refused(_journey([{"id": "a", "type": "wait", "seconds": 5}, {"id": "b", "type": "teleport"}]))
    assert error.field == "steps[1].type"
    assert "teleport" in error.message


def test_send_on_a_channel_the_tenant_has_not_enabled_is_refused() -> None:
    data = _journey([{"id": "a", "type": "wait", "seconds": 5}, {"id": "hi", "type": "send", "channel": "douyin", "text": "hi"}])
    error = _refused(data, channels={"email", "wecom"})
    assert error.field == "steps[1].channel"
    check(decode(json.dumps(data)), channels={"douyin"})


def test_a_cycle_without_a_wait_is_refused_and_one_with_a_wait_is_not() -> None:
    cond = {"tags_any": ["vip"]}
    loop = _journey(
        [
            {"id": "tag", "type": "tag", "add": ["x"]},
            {"id": "check", "type": "branch", "condition": cond, "then": "tag", "otherwise": None},
        ]
    )
    error = _refused(loop)
    assert error.field == "steps[1]"
    assert "tag → check → tag" in error.message
    waited = _journey(
        [
            {"id": "tag", "type": "tag", "add": ["x"]},
            {"id": "pause", "type": "wait", "seconds": 3600},
            {"id": "check", "type": "branch", "condition": cond, "then": "tag"},
        ]
    )
    check(decode(json.dumps(waited)))


def test_a_cycle_hidden_behind_a_waiting_cycle_is_still_found() -> None:
    """Two loops share a branch; one passes a wait, the other does not: refused."""
    data = _journey(
        [
            {"id": "a", "type": "branch", "condition": {"stages": ["lead"]}, "then": "w", "otherwise": "b"},
            {"id": "w", "type": "wait", "seconds": 10, "next": "a"},
            {"id": "b", "type": "tag", "add": ["t"], "next": "a"},
        ]
    )
    assert _refused(data).field in {"steps[0]", "steps[2]"}


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"id": "a", "type": "wait", "seconds": 5}, {"id": "a", "type": "wait", "seconds": 5}], "steps[1].id"),
        ([{"id": "a", "type": "wait", "seconds": 5, "next": "nowhere"}], "steps[0]"),
        ([{"id": "a", "type": "wait", "seconds": 0}], "steps[0].seconds"),
        ([{"id": "a", "type": "wait_until", "time": "25:00"}], "steps[0].time"),
        ([{"id": "a", "type": "webhook", "url": "http://example.com/x"}], "steps[0].url"),
        ([{"id": "a", "type": "send", "channel": "email", "text": "x", "colour": "red"}], "steps[0]"),
    ],
)
def test_bad_steps_name_their_path(steps: list[dict[str, Any]], field: str) -> None:
    error = _refused(_journey(steps))
    assert error.field == field or error.field.startswith(field), (error.field, error.message)


def test_webhook_to_a_host_the_tenant_does_not_allow_is_refused() -> None:
    data = _journey([{"id": "hook", "type": "webhook", "url": "https://evil.example/x"}])
    assert _refused(data, allowed_hosts={"hooks.example.com"}).field == "steps[0].url"
    check(decode(json.dumps(data)), allowed_hosts={"EVIL.example"})


def test_toml_definitions_decode_like_json() -> None:
    text = """
key = "birthday"
name = "Birthday wishes"
trigger = { type = "date_field", field = "birthday", annual = true, at = "09:30" }
goal = { interaction_kind = "purchase" }

[[steps]]
id = "wish"
type = "send"
channel = "email"
text = "Happy birthday!"
"""
    journey = decode(text, fmt="toml")
    assert isinstance(journey, Journey)
    assert journey.trigger.field == "birthday"  # type: ignore[union-attr]
    with pytest.raises(JourneyError) as info:
        decode("key = ", fmt="toml")
    assert info.value.field == "definition"
