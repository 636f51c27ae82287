"""The platform operator's tenant lifecycle through /operator/graphql: an operator key (not a
tenant's) creates a tenant, hands it an admin key, suspends it (its keys get 403, its webhooks
are stored and wait), resumes it (they are processed) and deletes it (exported first, then every
row of it gone: every table of the database is read to prove it). The end-to-end check of the
issue: a second tenant created through the operator API connects its own WeCom corp through
GraphQL, gets its callbacks, and cannot see or use the first tenant's corp."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
from sqlalchemy import inspect, select, text

from guanxi.core import auth
from guanxi.core.domain.models import Identity, InboxEvent
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.testing.plugin import TEST_SECRET
from tests.plugins.wecom.conftest import CORP_KEY, Sender, corp_config, event_xml

pytestmark = pytest.mark.plugins("wecom", "scoring", "referral")

KEY_B = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
OP = "/operator/graphql"
CREATE = """mutation($input: CreateTenantInput!) {
  createTenant(input: $input) { tenant { id slug status timeZone currency locale enabledPlugins } errors { field code message } } }"""


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    return {"wecom": {"api_base_url": "http://127.0.0.1:9/cgi-bin", "max_retries": 0, "corps": [corp_config()]}}


@pytest.fixture
async def operator_key(runtime: Runtime) -> str:
    _, key = await auth.create_operator_key(runtime, TEST_SECRET.encode(), name="platform team")
    return key


async def op(client: httpx.AsyncClient, key: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post(OP, json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body = cast(dict[str, Any], response.json())
    assert not body.get("errors"), body
    return body["data"]


async def gql(client: httpx.AsyncClient, key: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {key}"})


async def provision(client: httpx.AsyncClient, operator_key: str, **extra: Any) -> tuple[str, str, uuid.UUID]:
    slug = f"beta-{secrets.token_hex(4)}"
    created = (await op(client, operator_key, CREATE, {"input": {"slug": slug, "name": "Beta 贸易", **extra}}))["createTenant"]
    assert created["errors"] == [], created
    key = await op(client, operator_key, f'mutation {{ createTenantApiKey(slug: "{slug}", name: "owner") {{ key errors {{ code }} }} }}')
    return slug, key["createTenantApiKey"]["key"], uuid.UUID(created["tenant"]["id"])


async def test_a_tenant_created_by_the_operator_connects_its_corp_gets_its_callbacks_and_cannot_use_the_first(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, operator_key: str
) -> None:
    slug, key, beta = await provision(anonymous_client, operator_key, timeZone="Europe/Berlin", currency="EUR", locale="de-DE")
    tenants = (await op(anonymous_client, operator_key, "{ tenants { slug status timeZone currency locale enabledPlugins } }"))["tenants"]
    mine = next(t for t in tenants if t["slug"] == slug)
    assert mine == {
        "slug": slug,
        "status": "ACTIVE",
        "timeZone": "Europe/Berlin",
        "currency": "EUR",
        "locale": "de-DE",
        "enabledPlugins": ["wecom", "scoring", "referral"],
    }
    save = """mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { account { key } errors { code message } } }"""
    account = {
        "channel": "wecom",
        "key": f"corp-{slug}",
        "settings": {"corp_id": f"ww{slug}"},
        "secrets": {"token": "beta-token", "encoding_aes_key": KEY_B, "secret": "beta-secret"},
    }
    saved = (await gql(anonymous_client, key, save, {"i": account})).json()["data"]["saveChannelAccount"]
    assert saved["errors"] == []
    sender = Sender(anonymous_client, corp_id=f"ww{slug}", token="beta-token", key=KEY_B)
    query, body = sender.envelope(event_xml("add_external_contact", external="wmNEW"))
    assert (await sender.post(query, body, path=f"/wecom/callback/corp-{slug}")).status_code == 200
    await inbox.run_once(runtime, tenant_id=beta)
    await inbox.run_once(runtime, tenant_id=tenant_id)
    async with runtime.session(beta) as s:
        assert (await s.execute(select(Identity.external_id))).scalars().all() == ["wmNEW"]
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(Identity.external_id))).scalars().all() == []
    listed = (await gql(anonymous_client, key, "{ channelAccounts { key } }")).json()["data"]["channelAccounts"]
    assert listed == [{"key": f"corp-{slug}"}]
    use = f'mutation {{ createWecomContactWay(userid: "zhangsan", corp: "{CORP_KEY}") {{ errors {{ code }} }} }}'
    assert (await gql(anonymous_client, key, use)).json()["data"]["createWecomContactWay"]["errors"] == [{"code": "NOT_FOUND"}]
    await op(anonymous_client, operator_key, f'mutation {{ deleteTenant(slug: "{slug}", confirm: "{slug}") {{ errors {{ code }} }} }}')


async def test_the_operator_endpoint_takes_operator_keys_only_and_tenant_endpoints_refuse_them(
    anonymous_client: httpx.AsyncClient, operator_key: str, admin_key: str
) -> None:
    query = {"query": "{ tenants { slug } }"}
    assert (await anonymous_client.post(OP, json=query)).status_code == 401
    refused = await anonymous_client.post(OP, json=query, headers={"Authorization": f"Bearer {admin_key}"})
    assert refused.status_code == 403 and refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    forged = await anonymous_client.post(OP, json=query, headers={"Authorization": f"Bearer {operator_key[:-3]}xyz"})
    assert forged.status_code == 401
    on_tenant_api = await gql(anonymous_client, operator_key, "{ enabledPlugins }")
    assert on_tenant_api.status_code == 401  # an operator key is no tenant credential
    assert operator_key not in refused.text + forged.text + on_tenant_api.text


async def test_a_suspended_tenants_keys_get_403_and_its_webhooks_wait_until_it_is_resumed(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, operator_key: str, admin_key: str
) -> None:
    sender = Sender(anonymous_client)
    slug = await _slug(runtime, tenant_id)
    suspended = await op(anonymous_client, operator_key, f'mutation {{ suspendTenant(slug: "{slug}") {{ tenant {{ status }} }} }}')
    assert suspended["suspendTenant"]["tenant"]["status"] == "SUSPENDED"
    refused = await gql(anonymous_client, admin_key, "{ enabledPlugins }")
    assert refused.status_code == 403 and refused.json()["errors"][0]["extensions"]["code"] == "TENANT_SUSPENDED"
    assert (await sender.send(event_xml("add_external_contact", external="wmWAIT"))).status_code == 200  # stored
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 0  # not processed
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(InboxEvent.status))).scalars().all() == ["pending"]
    await op(anonymous_client, operator_key, f'mutation {{ resumeTenant(slug: "{slug}") {{ tenant {{ status }} }} }}')
    assert (await gql(anonymous_client, admin_key, "{ enabledPlugins }")).status_code == 200
    assert await inbox.run_once(runtime, tenant_id=tenant_id) == 1
    async with runtime.session(tenant_id) as s:
        assert (await s.execute(select(Identity.external_id))).scalars().all() == ["wmWAIT"]


async def _slug(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    from guanxi.core.domain.models import Tenant
    from guanxi.core.storage.tenancy import unscoped

    async with runtime.session(None) as s, unscoped(s):
        return cast(str, (await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one())


async def rows_of(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, int]:
    """Rows of the tenant in every table of the database (``tenant_id`` column, or the tenants
    table's own ``id``), read with plain SQL."""

    def tables(conn: Any) -> dict[str, list[str]]:
        inspector = inspect(conn)
        return {name: [c["name"] for c in inspector.get_columns(name)] for name in inspector.get_table_names()}

    async with runtime.engine.connect() as conn:
        found = await conn.run_sync(tables)
        counts = {}
        for name, columns in found.items():
            column = "tenant_id" if "tenant_id" in columns else "id" if name == "tenants" else None
            if column is None:
                continue
            value = tenant_id.hex if runtime.engine.dialect.name == "sqlite" else str(tenant_id)
            counts[name] = (await conn.execute(text(f'SELECT count(*) FROM "{name}" WHERE {column} = :t'), {"t": value})).scalar_one()
    return counts


async def test_delete_exports_every_plugins_data_first_then_no_table_holds_a_row_of_the_tenant(
    runtime: Runtime, anonymous_client: httpx.AsyncClient, operator_key: str, tmp_path: Path
) -> None:
    runtime.settings = msgspec.structs.replace(
        runtime.settings, server=msgspec.structs.replace(runtime.settings.server, export_dir=str(tmp_path))
    )
    slug, key, beta = await provision(anonymous_client, operator_key)
    # data in core and in every plugin: a customer with a timeline (scores), a referral campaign, a corp
    created = await gql(
        anonymous_client, key, 'mutation { createCustomer(input: {displayName: "Zhao Lei", phones: ["13900001111"]}) { customer { id } } }'
    )
    cid = created.json()["data"]["createCustomer"]["customer"]["id"]
    assert (
        await gql(
            anonymous_client,
            key,
            'mutation($id: ID!) { recordInteraction(input: {customerId: $id, channel: "web", kind: "visit"}) { errors { code } } }',
            {"id": cid},
        )
    ).status_code == 200
    campaign = (
        'mutation { createReferralCampaign(input: {key: "spring", name: "Spring", landingUrl: "https://shop.example.com/spring"})'
        " { errors { code message } } }"
    )
    assert (await gql(anonymous_client, key, campaign)).json()["data"]["createReferralCampaign"]["errors"] == []
    account = {"channel": "wecom", "key": f"c-{slug}", "settings": {"corp_id": f"ww-{slug}"}, "secrets": {"secret": "plain-secret-Q42"}}
    save = "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { errors { code } } }"
    assert (await gql(anonymous_client, key, save, {"i": account})).json()["data"]["saveChannelAccount"]["errors"] == []
    before = await rows_of(runtime, beta)
    for table in (
        "customers",
        "interactions",
        "audit_events",
        "api_keys",
        "channel_accounts",
        "scoring_scores",
        "referral_campaigns",
        "tenants",
    ):
        assert before[table] > 0, table
    refused = await op(
        anonymous_client, operator_key, f'mutation {{ deleteTenant(slug: "{slug}", confirm: "nope") {{ errors {{ field }} }} }}'
    )
    assert refused["deleteTenant"]["errors"] == [{"field": "confirm"}]
    deleted = (
        await op(
            anonymous_client,
            operator_key,
            f'mutation {{ deleteTenant(slug: "{slug}", confirm: "{slug}") {{ exportPath deletedRows errors {{ code }} }} }}',
        )
    )["deleteTenant"]
    # all but the tenant row and the maintained customer count (derived, not reported)
    assert deleted["errors"] == [] and deleted["deletedRows"] == sum(before.values()) - 1 - before.get("customer_counts", 0)
    after = await rows_of(runtime, beta)
    assert set(after) == set(before) and all(n == 0 for n in after.values()), {k: v for k, v in after.items() if v}
    export_file = Path(deleted["exportPath"])
    export = json.loads(export_file.read_text(encoding="utf-8"))  # noqa: ASYNC240 - a test reading a small file
    assert export_file.stat().st_mode & 0o777 == 0o600  # noqa: ASYNC240
    assert export["tenant"]["slug"] == slug
    assert [c["display_name"] for c in export["core"]["customers"]] == ["Zhao Lei"]
    assert export["core"]["channel_accounts"][0]["key"] == f"c-{slug}"
    assert export["core"]["channel_accounts"][0]["secrets"].startswith("v1:")  # sealed, as at rest
    assert "plain-secret-Q42" not in json.dumps(export)
    assert [c["key"] for c in export["plugins"]["referral"]["referral_campaigns"]] == ["spring"]
    assert len(export["plugins"]["scoring"]["scoring_scores"]) == 1
    assert set(export["plugins"]) == {"wecom", "scoring", "referral"}
    gone = await gql(anonymous_client, key, "{ enabledPlugins }")
    assert gone.status_code == 401  # its keys are gone with it


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"timeZone": "Mars/Olympus"}, "timeZone"),
        ({"currency": "yuan"}, "currency"),
        ({"locale": "中文"}, "locale"),
        ({"plugins": ["douyin"]}, "plugins"),
    ],
)
async def test_bad_tenant_input_is_refused_naming_the_field(
    anonymous_client: httpx.AsyncClient, operator_key: str, change: dict[str, Any], field: str
) -> None:
    tenant = {"slug": f"x-{secrets.token_hex(3)}", "name": "X", **change}
    [error] = (await op(anonymous_client, operator_key, CREATE, {"input": tenant}))["createTenant"]["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION", field)


async def test_a_tenant_created_with_a_plugin_subset_enables_only_those(anonymous_client: httpx.AsyncClient, operator_key: str) -> None:
    key = (await provision(anonymous_client, operator_key, plugins=["wecom"]))[1]
    assert (await gql(anonymous_client, key, "{ enabledPlugins }")).json()["data"] == {"enabledPlugins": ["wecom"]}
    refused = (await gql(anonymous_client, key, "{ customers(orderBy: SCORE_DESC) { totalCount } }")).json()
    assert refused["errors"][0]["extensions"]["code"] == "PLUGIN_DISABLED"
