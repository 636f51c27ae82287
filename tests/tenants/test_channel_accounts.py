"""Channel accounts as tenant data, through WeCom: a second tenant connects its own corp through
GraphQL, gets its callbacks, and can neither see nor use the first tenant's corp; secrets are
sealed at rest (the raw column never holds them) and write-only; one corp cannot be connected
by two tenants; an account whose secrets do not open is broken, alone; the server secret can
be rotated; a tenant that disabled WeCom gets 404 on its callback URL."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select, text

from guanxi.app import create_app
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import ChannelAccount, Identity
from guanxi.core.queues import inbox
from guanxi.core.runtime import Runtime
from guanxi.core.services import accounts
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.services.tenant_plugins import set_plugin_enabled
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, api_key
from tests.plugins.wecom.conftest import CORP_KEY, TOKEN, Sender, corp_config, event_xml
from tests.plugins.wecom.fake_wecom import CORP_ID, SECRET

pytestmark = pytest.mark.plugins("wecom")

KEY_B = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TOKEN_B = "beta-callback-token"
SECRET_B = "beta-contact-secret-Z9"
SAVE = """mutation($input: ChannelAccountInput!) {
  saveChannelAccount(input: $input) {
    account { channel key providerId settings secretFingerprints broken } errors { field code message } } }"""
LIST = "{ channelAccounts { channel key providerId settings secretFingerprints broken } }"


def corp_b(key: str = "beta", corp_id: str = "wwBETA") -> dict[str, Any]:
    return {
        "channel": "wecom",
        "key": key,
        "settings": {"corp_id": corp_id, "staff": {"lisi": "lisi@beta.example"}},
        "secrets": {"token": TOKEN_B, "encoding_aes_key": KEY_B, "secret": SECRET_B},
    }


@pytest.fixture
def plugin_config() -> dict[str, dict[str, Any]]:
    """The first tenant's corp ``acme`` is in the config file (imported into the test's tenant);
    no WeCom API is reached in these tests (the base URL goes nowhere)."""
    return {"wecom": {"api_base_url": "http://127.0.0.1:9/cgi-bin", "max_retries": 0, "corps": [corp_config()]}}


class Caller:
    def __init__(self, tenant_id: uuid.UUID, client: httpx.AsyncClient) -> None:
        self.tenant_id = tenant_id
        self.client = client

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        return cast(dict[str, Any], response.json())


@pytest.fixture
async def beta(runtime: Runtime, app: Any) -> AsyncIterator[Caller]:
    """A second tenant on the deployment, with an admin key (the first is the test's tenant,
    which holds the configured corp ``acme``)."""
    async with runtime.write_session(None) as session:
        tid = await create_tenant(session, f"beta-{secrets.token_hex(4)}", "Beta")
    key = await api_key(runtime, tid, "admin")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cast(Any, app)), base_url=BASE_URL, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        try:
            yield Caller(tid, client)
        finally:
            async with runtime.write_session(tid) as session:
                for row in (await session.execute(select(ChannelAccount))).scalars():
                    await session.delete(row)


async def test_a_second_tenant_connects_its_corp_gets_its_callbacks_and_cannot_use_the_first_ones(
    runtime: Runtime, tenant_id: uuid.UUID, beta: Caller, anonymous_client: httpx.AsyncClient, graphql: Any
) -> None:
    saved = (await beta.gql(SAVE, {"input": corp_b()}))["data"]["saveChannelAccount"]
    assert saved["errors"] == []
    account = saved["account"]
    assert (account["key"], account["providerId"], account["broken"]) == ("beta", "wwBETA", None)
    assert set(account["secretFingerprints"]) == {"token", "encoding_aes_key", "secret", "agent_secret"}
    assert account["secretFingerprints"].pop("agent_secret") is None  # not given: no notifying app
    assert all(f.startswith("hmac:") for f in account["secretFingerprints"].values())
    # the callback at beta's URL lands in beta's tenant, never in the configured (first) tenant
    sender = Sender(anonymous_client, corp_id="wwBETA", token=TOKEN_B, key=KEY_B)
    query, body = sender.envelope(event_xml("add_external_contact", external="wmBETA1"))
    assert (await sender.post(query, body, path="/wecom/callback/beta")).status_code == 200
    assert (await sender.post(query, body, path=f"/wecom/callback/{CORP_KEY}")).status_code == 401  # beta's callback at acme's URL
    for tenant in (tenant_id, beta.tenant_id):
        await inbox.run_once(runtime, tenant_id=tenant)
    found = {}
    for tenant in (tenant_id, beta.tenant_id):
        async with runtime.session(tenant) as s:
            found[tenant] = (await s.execute(select(Identity.external_id))).scalars().all()
    assert found == {tenant_id: [], beta.tenant_id: ["wmBETA1"]}
    # each tenant lists only its own corp
    assert [a["key"] for a in (await beta.gql(LIST))["data"]["channelAccounts"]] == ["beta"]
    assert [a["key"] for a in (await graphql(LIST))["data"]["channelAccounts"]] == [CORP_KEY]
    # beta cannot use acme, nor change or delete it: it answers like a corp that does not exist
    use = 'mutation { createWecomContactWay(userid: "zhangsan", corp: "acme") { errors { code } } }'
    assert (await beta.gql(use))["data"]["createWecomContactWay"]["errors"] == [{"code": "NOT_FOUND"}]
    delete = 'mutation { deleteChannelAccount(channel: "wecom", key: "acme") { errors { code } } }'
    assert (await beta.gql(delete))["data"]["deleteChannelAccount"]["errors"] == [{"code": "NOT_FOUND"}]
    taken = (await beta.gql(SAVE, {"input": {**corp_b(), "key": CORP_KEY}}))["data"]["saveChannelAccount"]["errors"]
    assert [e["code"] for e in taken] == ["CONFLICT"]
    assert [a["key"] for a in (await graphql(LIST))["data"]["channelAccounts"]] == [CORP_KEY]


async def test_two_tenants_cannot_connect_the_same_corp(beta: Caller) -> None:
    [error] = (await beta.gql(SAVE, {"input": corp_b(corp_id=CORP_ID)}))["data"]["saveChannelAccount"]["errors"]
    assert (error["code"], error["field"]) == ("CONFLICT", "settings.corp_id")
    assert CORP_ID in error["message"] and "already connected" in error["message"]


async def test_secrets_are_sealed_at_rest_and_never_read_back(runtime: Runtime, tenant_id: uuid.UUID, beta: Caller) -> None:
    body = await beta.gql(SAVE, {"input": corp_b()})
    assert body["data"]["saveChannelAccount"]["errors"] == []
    listed = str(await beta.gql(LIST))
    async with runtime.engine.connect() as conn:
        query = text("SELECT key, settings, secrets, fingerprints FROM channel_accounts")
        raw = [tuple(r) for r in (await conn.execute(query)).all() if r[0] in (CORP_KEY, "beta")]
    assert sorted(r[0] for r in raw) == [CORP_KEY, "beta"]  # the first tenant's (imported from the config) and beta's
    for plaintext in (TOKEN_B, KEY_B, SECRET_B, TOKEN, SECRET):
        assert plaintext not in str(raw), "a secret is stored in plaintext"
        assert plaintext not in listed
    assert all(str(secrets_col).startswith("v1:") for _, _, secrets_col, _ in raw)


async def test_updating_settings_keeps_the_secrets_and_a_new_secret_changes_its_fingerprint(beta: Caller) -> None:
    first = (await beta.gql(SAVE, {"input": corp_b()}))["data"]["saveChannelAccount"]["account"]
    update = {"channel": "wecom", "key": "beta", "settings": {"corp_id": "wwBETA", "welcome": {"*": "你好"}}}
    second = (await beta.gql(SAVE, {"input": update}))["data"]["saveChannelAccount"]["account"]
    assert second["secretFingerprints"] == first["secretFingerprints"]
    assert second["settings"]["welcome"] == {"*": "你好"}
    third = (await beta.gql(SAVE, {"input": {"channel": "wecom", "key": "beta", "secrets": {"secret": "rotated-secret"}}}))["data"]
    fingerprints = third["saveChannelAccount"]["account"]["secretFingerprints"]
    assert fingerprints["secret"] != first["secretFingerprints"]["secret"]
    assert fingerprints["token"] == first["secretFingerprints"]["token"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"settings": {"corp_id": 5}}, "settings.corp_id", "Expected `str`"),
        ({"settings": {"corp_id": "wwX", "homepage": "http://169.254.169.254/"}}, "settings", "unknown field `homepage`"),
        ({"secrets": {"token": "t", "encoding_aes_key": "short"}}, "secrets.encoding_aes_key", "43"),
        ({"secrets": {"token": "t"}}, "secrets.token", "set both token and encoding_aes_key"),
        ({"secrets": {"password": "x"}}, "secrets.password", "unknown secret field"),
        ({"key": "Bad Key!"}, "key", "key must be"),
        ({"channel": "douyin"}, "channel", "'douyin' has no accounts"),
    ],
)
async def test_bad_account_input_is_refused_with_its_key_path(beta: Caller, change: dict[str, Any], field: str, words: str) -> None:
    account = {"channel": "wecom", "key": "beta", "settings": {"corp_id": "wwBETA"}}
    [error] = (await beta.gql(SAVE, {"input": {**account, **change}}))["data"]["saveChannelAccount"]["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION", field), error
    assert words in error["message"]
    assert (await beta.gql(LIST))["data"]["channelAccounts"] == []


def _runtime(database_url: str, tmp_path: Path, secret: str, previous: list[str] | None = None) -> Runtime:
    config = tmp_path / f"rt-{secrets.token_hex(3)}.toml"
    config.write_text("", encoding="utf-8")
    environ = {"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "wecom", "GUANXI__AUTH__SECRET": secret}
    if previous:
        environ["GUANXI__AUTH__PREVIOUS_SECRETS"] = "[" + ", ".join(f'"{p}"' for p in previous) + "]"
    return Runtime.from_config(config, environ=environ)


async def test_a_lost_key_breaks_only_that_account_and_rotation_with_the_old_secret_keeps_every_account(
    runtime: Runtime, tenant_id: uuid.UUID, beta: Caller, database_url: str, tmp_path: Path
) -> None:
    assert (await beta.gql(SAVE, {"input": corp_b()}))["data"]["saveChannelAccount"]["errors"] == []
    new_secret = "rotated-server-secret-" + "1" * 32
    # a server that lost the old secret: both accounts are broken, each with a clear message
    lost = _runtime(database_url, tmp_path, new_secret)
    try:
        [broken] = await accounts.tenant_accounts(lost, beta.tenant_id, "wecom")
        assert broken.secrets is None and broken.broken is not None
        assert "auth.previous_secrets" in broken.broken and TOKEN_B not in broken.broken
    finally:
        await lost.stop()
    # rotation: the new secret, the old one kept as previous; rekey; then the old one can go
    rotating = _runtime(database_url, tmp_path, new_secret, previous=[TEST_SECRET])
    try:
        [opened] = await accounts.tenant_accounts(rotating, beta.tenant_id, "wecom")
        assert opened.broken is None and opened.secrets.token == TOKEN_B
        resealed, still_broken = await accounts.rekey(rotating)
        assert resealed >= 2 and still_broken == 0
    finally:
        await rotating.stop()
    rotated = _runtime(database_url, tmp_path, new_secret)
    try:
        for tenant in (tenant_id, beta.tenant_id):
            [account] = await accounts.tenant_accounts(rotated, tenant, "wecom")
            assert account.broken is None
    finally:
        await rotated.stop()
    # the test runtime still holds only the old secret: now its accounts are broken, alone
    [mine] = await accounts.tenant_accounts(runtime, beta.tenant_id, "wecom")
    assert mine.broken is not None
    # and a broken account's callback is refused without processing (503: WeCom retries later)
    sender = Sender(beta.client, corp_id="wwBETA", token=TOKEN_B, key=KEY_B)
    query, body = sender.envelope(event_xml("add_external_contact", external="wmX"))
    assert (await sender.post(query, body, path="/wecom/callback/beta")).status_code == 503
    # the other tenant's account, sealed again under the old secret, works
    async with runtime.transaction(RequestContext(tenant_id=beta.tenant_id)) as tx:
        await accounts.save_account(tx, "wecom", "beta", secrets={"token": TOKEN_B, "encoding_aes_key": KEY_B, "secret": SECRET_B})
    [repaired] = await accounts.tenant_accounts(runtime, beta.tenant_id, "wecom")
    assert repaired.broken is None


async def test_a_tenant_that_disabled_wecom_gets_404_on_its_callback_and_cannot_connect_a_corp(runtime: Runtime, beta: Caller) -> None:
    assert (await beta.gql(SAVE, {"input": corp_b()}))["data"]["saveChannelAccount"]["errors"] == []
    async with runtime.transaction(RequestContext(tenant_id=beta.tenant_id)) as tx:
        await set_plugin_enabled(tx, "wecom", False)
    sender = Sender(beta.client, corp_id="wwBETA", token=TOKEN_B, key=KEY_B)
    query, body = sender.envelope(event_xml("add_external_contact", external="wmOFF"))
    assert (await sender.post(query, body, path="/wecom/callback/beta")).status_code == 404
    [error] = (await beta.gql(SAVE, {"input": corp_b(key="beta2", corp_id="wwBETA2")}))["data"]["saveChannelAccount"]["errors"]
    assert error["code"] == "PLUGIN_DISABLED"
    refused = await beta.gql("mutation { syncWecomTags { errors { code } } }")
    assert refused["errors"][0]["extensions"]["code"] == "PLUGIN_DISABLED"
    assert await inbox.run_once(runtime, tenant_id=beta.tenant_id) == 0  # nothing was stored


async def test_config_corps_are_imported_once_and_rows_are_the_truth_afterwards(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    [acme] = await accounts.tenant_accounts(runtime, tenant_id, "wecom")
    assert (acme.key, acme.provider_id, acme.secrets.token) == (CORP_KEY, CORP_ID, TOKEN)
    imported, skipped = await accounts.import_config_accounts(runtime, tenant_id=tenant_id)
    assert (imported, skipped) == ([], [])


async def test_the_webhook_finds_the_account_without_the_configured_tenant(runtime: Runtime, beta: Caller) -> None:
    """Even a deployment whose configured tenant does not exist routes callbacks by URL."""
    import msgspec

    assert (await beta.gql(SAVE, {"input": corp_b()}))["data"]["saveChannelAccount"]["errors"] == []
    runtime.settings = msgspec.structs.replace(runtime.settings, tenant="no-such-tenant")
    app = create_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, app)), base_url=BASE_URL) as client:
        sender = Sender(client, corp_id="wwBETA", token=TOKEN_B, key=KEY_B)
        query, body = sender.envelope(event_xml("add_external_contact", external="wmNOCFG"))
        assert (await sender.post(query, body, path="/wecom/callback/beta")).status_code == 200
    assert await inbox.run_once(runtime, tenant_id=beta.tenant_id) == 1
