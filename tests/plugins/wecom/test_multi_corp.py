"""Several corps in one deployment (SaaS): one callback URL per corp, each feeding its tenant."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from guanxi import Runtime
from guanxi.core.domain.models import ChannelAccount, Identity
from guanxi.core.queues import inbox
from guanxi.core.services.accounts import import_config_accounts
from guanxi.core.services.pipelines import create_tenant
from tests.plugins.wecom.conftest import AES_KEY, TOKEN, Sender, event_xml
from tests.plugins.wecom.fake_wecom import FakeWecom

pytestmark = pytest.mark.plugins("wecom")
SLUGS = (f"corp-a-{secrets.token_hex(4)}", f"corp-b-{secrets.token_hex(4)}")
KEY_B = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    return {
        "wecom": {
            "api_base_url": fake_wecom.url,
            "corps": [
                {"key": "alpha", "corp_id": "wwALPHA", "token": TOKEN, "encoding_aes_key": AES_KEY, "tenant": SLUGS[0]},
                {"key": "beta", "corp_id": "wwBETA", "token": "beta-token", "encoding_aes_key": KEY_B, "tenant": SLUGS[1]},
            ],
        }
    }


async def test_each_corp_url_checks_its_own_keys_and_feeds_its_own_tenant(runtime: Runtime, client: httpx.AsyncClient) -> None:
    async with runtime.write_session(None) as session:
        tenants = [await create_tenant(session, slug, slug) for slug in SLUGS]
    imported, _ = await import_config_accounts(runtime)  # as `guanxi db upgrade` does once the tenants exist
    assert imported == ["wecom/alpha", "wecom/beta"]
    try:
        await _callbacks_reach_their_tenants(runtime, client, tenants)
    finally:  # the keys and corp ids are unique across tenants: free them for other tests
        for tenant in tenants:
            async with runtime.write_session(tenant) as session:
                await session.execute(delete(ChannelAccount))


async def _callbacks_reach_their_tenants(runtime: Runtime, client: httpx.AsyncClient, tenants: list[Any]) -> None:
    alpha, beta = Sender(client, corp_id="wwALPHA"), Sender(client, corp_id="wwBETA", token="beta-token", key=KEY_B)
    assert (
        await alpha.post(*alpha.envelope(event_xml("add_external_contact", external="wmA")), path="/wecom/callback/alpha")
    ).status_code == 200
    query, body = beta.envelope(event_xml("add_external_contact", external="wmB"))
    assert (await beta.post(query, body, path="/wecom/callback/beta")).status_code == 200
    assert (await beta.post(query, body, path="/wecom/callback/alpha")).status_code == 401  # beta's callback at alpha's URL
    for tenant in tenants:
        await inbox.run_once(runtime, tenant_id=tenant)
    found = []
    for tenant in tenants:
        async with runtime.session(tenant) as s:
            found.append((await s.execute(select(Identity.external_id, Identity.profile))).all())
    assert [[(e, p["corp_id"]) for e, p in rows] for rows in found] == [[("wmA", "wwALPHA")], [("wmB", "wwBETA")]]
