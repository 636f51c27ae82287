"""Shared helpers of the referral tests: the Pigeon webhook (the example channel) as the way
people arrive, GraphQL for campaigns and tokens."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import httpx
import msgspec
import pytest

from guanxi import Runtime, sign
from guanxi.core.queues import inbox
from guanxi.testing import GraphQL

SECRET = "referral-test-secret"
VISITOR_SECRET = "visitor-test-secret"
PUBLIC_URL = "https://crm.example.com"
_events = itertools.count()


@pytest.fixture
def plugin_config(tmp_path: Any, plugin_names: list[str]) -> dict[str, dict[str, Any]]:
    sections = {
        "pigeon": {"webhook_secret": SECRET, "invite_url": "https://pigeon.example/follow"},
        "referral": {
            "public_url": PUBLIC_URL,
            "cooldown_hours": 1.0,
            "poster_cache_dir": str(tmp_path / "posters"),
            "poster_backgrounds_dir": str(tmp_path / "backgrounds"),
            "visitor_secret": VISITOR_SECRET,
        },
    }
    return {name: section for name, section in sections.items() if name in plugin_names}


class Pigeon:
    """Sends signed Pigeon webhooks through the real route and runs the inbox."""

    def __init__(self, client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID) -> None:
        self.client, self.runtime, self.tenant_id = client, runtime, tenant_id

    async def send(self, kind: str, sender: str, *, state: str | None = None, at: str = "2026-05-01T08:00:00Z", **extra: Any) -> None:
        event: dict[str, Any] = {"event_id": f"e{next(_events)}", "type": kind, "sent_at": at, "from": {"id": sender, **extra}}
        if state is not None:
            event["state"] = state
        body = msgspec.json.encode(event)
        ts = str(int(time.time()))
        headers = {"X-Pigeon-Timestamp": ts, "X-Pigeon-Signature": sign(SECRET, body, timestamp=ts, prefix="sha256=")}
        response = await self.client.post("/webhooks/pigeon/main", content=body, headers=headers)
        assert response.status_code == 200, response.text
        await inbox.run_once(self.runtime, tenant_id=self.tenant_id)

    async def follow(self, sender: str, state: str | None = None, *, at: str = "2026-05-01T08:00:00Z", **extra: Any) -> None:
        await self.send("follow", sender, state=state, at=at, **extra)

    async def unfollow(self, sender: str, *, at: str = "2026-05-02T08:00:00Z") -> None:
        await self.send("unfollow", sender, at=at)


@pytest.fixture
def pigeon(client: httpx.AsyncClient, runtime: Runtime, tenant_id: uuid.UUID) -> Pigeon:
    return Pigeon(client, runtime, tenant_id)


CREATE = """
mutation($input: CreateReferralCampaignInput!) {
  createReferralCampaign(input: $input) { campaign { id key goal } errors { field code message } }
}"""

MINT = """
mutation($campaign: String!, $customer: ID, $user: ID) {
  mintReferralToken(campaign: $campaign, inviterCustomerId: $customer, inviterUserId: $user) {
    share { token url qrPngUrl qrSvgUrl posterUrl entryPoints { channel kind url } }
    errors { field code message }
  }
}"""


async def create_campaign(graphql: GraphQL, **fields: Any) -> dict[str, Any]:
    data = {"key": "spring", "name": "Spring invite", "landingUrl": "https://shop.example.com/spring", **fields}
    body = await graphql(CREATE, {"input": data})
    payload = body["data"]["createReferralCampaign"]
    assert payload["errors"] == [], payload["errors"]
    return payload["campaign"]


async def mint(graphql: GraphQL, campaign: str = "spring", *, customer: str | None = None, user: str | None = None) -> dict[str, Any]:
    body = await graphql(MINT, {"campaign": campaign, "customer": customer, "user": user})
    payload = body["data"]["mintReferralToken"]
    assert payload["errors"] == [], payload["errors"]
    return payload["share"]


async def customer_id_of(runtime: Runtime, tenant_id: uuid.UUID, external_id: str, channel: str = "pigeon") -> str:
    """The global id of the customer behind a channel account."""
    from sqlalchemy import select

    from guanxi.core.domain.models import Identity
    from guanxi.graphql.ids import to_global_id

    async with runtime.session(tenant_id) as s:
        cid = (
            await s.execute(select(Identity.customer_id).where(Identity.channel == channel, Identity.external_id == external_id))
        ).scalar_one()
    return to_global_id("Customer", cid)


async def staff(runtime: Runtime, tenant_id: uuid.UUID, email: str = "li@example.com", name: str = "Li Wei") -> str:
    from guanxi.core.base.context import RequestContext
    from guanxi.core.services.users import create_user
    from guanxi.graphql.ids import to_global_id

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        user = await create_user(tx, email=email, name=name)
    return to_global_id("User", user.id)
