"""The referral plugin's collection hooks (social-value score component, export and erasure),
its permissions and its settings."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from guanxi import ConfigError, RequestContext, Runtime
from guanxi.core.hooks.manager import collect, per_plugin
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.testing import GraphQL
from guanxi.testing.plugin import write_config
from tests.plugins.referral.conftest import Pigeon, create_campaign, customer_id_of, mint, staff

pytestmark = pytest.mark.plugins("pigeon", "referral")

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


async def grow(graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Ann brings Bo and Cy; Bo brings Di (who buys: stage won). Eve brings nobody."""
    await create_campaign(graphql)
    await pigeon.follow("ann", (await mint(graphql, user=await staff(runtime, tenant_id)))["token"], name="Ann")
    ann = await customer_id_of(runtime, tenant_id, "ann")
    ann_token = (await mint(graphql, customer=ann))["token"]
    await pigeon.follow("bo", ann_token, name="Bo")
    await pigeon.follow("cy", ann_token, name="Cy")
    bo = await customer_id_of(runtime, tenant_id, "bo")
    await pigeon.follow("di", (await mint(graphql, customer=bo))["token"], name="Di")
    di = await customer_id_of(runtime, tenant_id, "di")
    await graphql('mutation($id: ID!) { moveCustomerStage(id: $id, stage: "won") { errors { message } } }', {"id": di})
    await pigeon.follow("eve", name="Eve")
    names = {"ann": ann, "bo": bo, "di": di, "eve": await customer_id_of(runtime, tenant_id, "eve")}
    return {k: from_global_id(v, "Customer") for k, v in names.items()}


async def test_social_value_weighs_direct_indirect_and_converted_referrals(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    ids = await grow(graphql, pigeon, runtime, tenant_id)
    async with runtime.session(tenant_id) as session:
        answers = await collect(
            runtime.pm.hook.guanxi_score_components, runtime=runtime, session=session, customer_ids=list(ids.values()), as_of=NOW
        )
    ((plugin, components),) = answers
    assert plugin == "referral"
    by_customer = {c.customer_id: c for c in components}
    assert set(by_customer) == {ids["ann"], ids["bo"]}  # Di and Eve brought nobody in
    ann = by_customer[ids["ann"]]
    assert (ann.name, ann.value) == ("referral.social", 2 * 5.0 + 1 * 1.0 + 1 * 10.0)
    assert ann.reasons == ["2 direct referrals x 5", "1 indirect referrals x 1", "1 referrals who reached won x 10"]
    assert by_customer[ids["bo"]].value == 5.0 + 10.0


async def test_export_lists_the_attribution_tokens_and_erasure_keeps_the_counts(
    graphql: GraphQL, pigeon: Pigeon, runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    ids = await grow(graphql, pigeon, runtime, tenant_id)
    share = await mint(graphql, customer=to_global_id("Customer", ids["bo"]))  # Bo's poster shows Bo's name
    assert (await client.get(urlsplit(share["posterUrl"]).path)).status_code == 200
    assert len(list((tmp_path / "posters").glob("*.png"))) == 1
    async with runtime.session(tenant_id) as session:
        ((_, bo),) = await collect(runtime.pm.hook.guanxi_export_customer_data, runtime=runtime, session=session, customer_id=ids["bo"])
        nothing = await collect(runtime.pm.hook.guanxi_export_customer_data, runtime=runtime, session=session, customer_id=ids["eve"])
    assert bo["referred_by"]["inviter_customer_id"] == str(ids["ann"])
    assert bo["referred_by"]["external_id"] == "bo"
    assert [t["campaign"] for t in bo["tokens"]] == ["spring"]
    assert nothing == []
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        ((_, erased),) = await collect(runtime.pm.hook.guanxi_erase_customer, runtime=runtime, session=tx.session, customer_id=ids["bo"])
    assert erased == {"attributions": 1, "posters": 1}
    assert list((tmp_path / "posters").glob("*.png")) == []
    async with runtime.session(tenant_id) as session:
        ((_, after),) = await collect(runtime.pm.hook.guanxi_export_customer_data, runtime=runtime, session=session, customer_id=ids["bo"])
    assert after["referred_by"]["external_id"] is None
    stats = "query($id: ID!) { customer(id: $id) { referralStats { direct indirect converted } } }"

    found = (await graphql(stats, {"id": to_global_id("Customer", ids["ann"])}))["data"]["customer"]["referralStats"]
    assert found == {"direct": 2, "indirect": 1, "converted": 1}


def test_permissions_cover_every_referral_field_with_the_roles_of_the_issue(runtime: Runtime) -> None:
    ((_, permissions),) = [p for p in per_plugin(runtime.pm.hook.guanxi_permissions) if p[0] == "referral"]
    by_name = {p.name: p for p in permissions}
    assert set(by_name["referral.manage"].roles) == {"admin", "manager", "marketing"}
    assert set(by_name["referral.redeem"].roles) == {"admin", "manager", "service"}
    assert set(by_name["referral.read"].roles) == {"admin", "manager", "marketing", "sales", "service", "readonly"}
    assert "Mutation.createReferralCampaign" in by_name["referral.manage"].fields
    assert "Mutation.redeemReferralReward" in by_name["referral.redeem"].fields
    assert {"Customer.referredBy", "Customer.referrals", "Customer.referralStats"} <= set(by_name["referral.read"].fields)


def test_a_bad_setting_fails_start_up_with_its_path(tmp_path: Path) -> None:
    config = write_config(tmp_path / "guanxi.toml", {"referral": {"attribution_model": "random"}})
    with pytest.raises(ConfigError, match=r"plugins\.referral\.attribution_model"):
        Runtime.from_config(config, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "referral"})
    config = write_config(tmp_path / "guanxi.toml", {"referral": {"public_url": "ftp://x"}})
    with pytest.raises(ConfigError, match="public_url"):
        Runtime.from_config(config, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "referral"})


def test_tokens_are_short_and_distinct() -> None:
    from guanxi.plugins.referral.tokens import is_token, new_token

    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_token(t) and len(t) <= 30 for t in tokens)
