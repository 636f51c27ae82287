"""The journeys section of docs/plugins/automation.md cannot fall behind the code: its TOML
definition passes the checks, its GraphQL examples run in order with their JSON variables and
answer as the text says, and its settings block names exactly the journey settings."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import msgspec
import pytest

from guanxi import RequestContext, Runtime
from guanxi.core.services import consent, identities, tags
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.automation.journeys.settings import JourneySettings
from guanxi.plugins.automation.journeys.validate import check, decode
from tests.plugins.automation.channels import ChannelsPlugin
from tests.plugins.automation.journey_kit import drain
from tests.plugins.automation.test_docs import TEXT, examples

SECTION = TEXT[TEXT.index("## Journeys") : TEXT.index("## Permissions")]

pytestmark = pytest.mark.plugins("automation", "chans")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chans": ChannelsPlugin()}


def test_the_journey_settings_block_lists_every_setting() -> None:
    block = SECTION[SECTION.index("[plugins.automation.journeys]") : SECTION.index("```", SECTION.index("[plugins.automation.journeys]"))]
    assert set(re.findall(r"^([a-z_]+) =", block, re.MULTILINE)) == {f.name for f in msgspec.structs.fields(JourneySettings)}


def test_the_toml_definition_passes_the_checks() -> None:
    toml = re.search(r"```toml\n(# welcome\.toml.*?)```", SECTION, re.DOTALL)
    assert toml is not None
    journey = check(decode(toml.group(1), fmt="toml"), channels={"broadcast"})
    assert [s.id for s in journey.steps] == ["hello", "reply", "call", "check", "thanks"]


async def test_the_journey_examples_answer_as_described(runtime: Runtime, tenant_id: uuid.UUID, graphql: Any) -> None:
    ex = {name: value for name, value in examples().items() if "Journey" in name}
    assert set(ex) == {"SaveJourney", "ActivateJourney", "JourneyDryRun", "JourneyReport"}

    async def run(name: str, **variables: Any) -> dict[str, Any]:
        op, documented = ex[name]
        body = await graphql(op, {**documented, **variables})
        return dict(body["data"])

    saved = (await run("SaveJourney"))["saveJourney"]
    assert saved == {"journey": {"key": "welcome", "version": 1, "status": "DRAFT"}, "errors": []}
    assert (await run("ActivateJourney"))["setJourneyStatus"] == {"journey": {"status": "ACTIVE", "version": 1}, "errors": []}
    from tests.plugins.automation.journey_kit import make_customers

    ann, bo = await make_customers(runtime, tenant_id, 2, channel="broadcast")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await consent.set_consent(tx, bo, "broadcast", "opted_out")
        await identities.attach_identity(tx, ann, identities.IdentityInput(channel="onetoone", external_id="ann-1"))
    dry = (await run("JourneyDryRun", customerIds=[to_global_id("Customer", c) for c in (ann, bo)]))["journeyDryRun"]
    outcomes = {d["customerId"]: [s["outcome"] for s in d["steps"]] for d in dry}
    assert outcomes[to_global_id("Customer", ann)] == ["WOULD_SEND", "WOULD_WAIT", "WOULD_BRANCH_NO"]
    assert outcomes[to_global_id("Customer", bo)] == ["WOULD_SKIP", "WOULD_WAIT", "WOULD_BRANCH_NO"]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:  # the trigger: a tag added
        for c in (ann, bo):
            await tags.change_tags(tx, c, add=["vip"])
    await drain(runtime, tenant_id)
    report = (await run("JourneyReport"))["journey"]["report"]
    assert (report["entered"], report["waiting"]) == (2, 2)
    assert report["channels"] == [{"channel": "broadcast", "sent": 1, "skipped": 1}]
    hello = next(s for s in report["steps"] if s["step"] == "hello")
    assert hello["outcomes"] == [{"outcome": "sent", "count": 1}, {"outcome": "skipped", "count": 1}]
    assert json.dumps(report)  # plain data
