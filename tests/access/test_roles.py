"""Roles and record ownership: what each role sees and may change, through GraphQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import strawberry

from guanxi.core.base.errors import PluginError
from guanxi.core.domain.access import Permission
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.graphql.ids import to_global_id
from tests.access.conftest import Caller, World, key_for, seed_world

NAMES = "{ customers(first: 50) { totalCount edges { node { displayName } } } }"


@pytest.fixture
async def world(runtime: Runtime, tenant_id: uuid.UUID) -> World:
    return await seed_world(runtime, tenant_id)


async def caller(runtime: Runtime, world: World, as_key: Callable[[str], Caller], role: str, user: str | None = None) -> Caller:
    return as_key(await key_for(runtime, world.tenant_id, role, world.users[user] if user else None))


def names(body: dict[str, Any]) -> list[str]:
    assert "errors" not in body, body
    return sorted(e["node"]["displayName"] for e in body["data"]["customers"]["edges"])


async def test_a_salesperson_sees_only_their_customers_and_their_count(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    ann = await caller(runtime, world, as_key, "sales", "ann")
    body = await ann(NAMES)
    assert names(body) == ["Customer of ann"] and body["data"]["customers"]["totalCount"] == 1
    funnel = await ann("{ funnel { steps { current } } }")
    assert sum(s["current"] for s in funnel["data"]["funnel"]["steps"]) == 1  # counts are scoped too
    tags = await ann('{ customers(filter: {tagsAny: ["vip/bo", "vip/ann"]}) { totalCount } }')
    assert tags["data"]["customers"]["totalCount"] == 1  # a filter does not widen the scope


async def test_a_salesperson_cannot_read_or_change_another_salespersons_customer(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    ann = await caller(runtime, world, as_key, "sales", "ann")
    bo_customer = to_global_id("Customer", world.customers["bo"])
    assert (await ann("query($id: ID!) { customer(id: $id) { displayName } }", {"id": bo_customer}))["data"] == {"customer": None}
    for mutation in (
        'mutation($id: ID!) { updateCustomer(id: $id, input: {company: "x"}) { errors { code } } }',
        'mutation($id: ID!) { tagCustomer(id: $id, add: ["stolen"]) { errors { code } } }',
        'mutation($id: ID!) { moveCustomerStage(id: $id, stage: "won") { errors { code } } }',
        'mutation($id: ID!) { recordInteraction(input: {customerId: $id, channel: "note", kind: "note", text: "x"}) { errors { code } } }',
        'mutation($id: ID!) { createTask(input: {customerId: $id, title: "x"}) { errors { code } } }',
    ):
        body = await ann(mutation, {"id": bo_customer})
        payload = next(iter(body["data"].values()))
        assert payload["errors"] == [{"code": "NOT_FOUND"}], (mutation, body)
    task = to_global_id("Task", world.tasks["bo"])
    body = await ann("mutation($id: ID!) { completeTask(id: $id) { errors { code } } }", {"id": task})
    assert body["data"]["completeTask"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_node_respects_record_ownership_and_the_guards_of_each_type(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    """node(id:) is another way to read: a salesperson's node of another's customer (or of its
    task or interaction) is null, their own is there; a type whose list needs a permission
    (the audit trail) is null without it; a field a role may not use is refused as anywhere."""
    ann = await caller(runtime, world, as_key, "sales", "ann")
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Customer { displayName } ... on Task { title } } }"
    mine, theirs = to_global_id("Customer", world.customers["ann"]), to_global_id("Customer", world.customers["bo"])
    ids = [mine, theirs, to_global_id("Task", world.tasks["bo"]), to_global_id("Interaction", world.interactions["bo"])]
    assert (await ann(query, {"ids": ids}))["data"]["nodes"] == [{"id": mine, "displayName": "Customer of ann"}, None, None, None]
    admin = await caller(runtime, world, as_key, "admin")
    audit_id = (await admin("{ auditEvents(first: 1) { id } }"))["data"]["auditEvents"][0]["id"]
    assert (await admin("query($id: ID!) { node(id: $id) { id } }", {"id": audit_id}))["data"]["node"] == {"id": audit_id}
    assert (await ann("query($id: ID!) { node(id: $id) { id } }", {"id": audit_id}))["data"]["node"] is None
    marketing = await caller(runtime, world, as_key, "marketing")
    body = await marketing("query($id: ID!) { node(id: $id) { ... on Customer { displayName } } }", {"id": mine})
    assert body["data"]["node"] == {"displayName": "Customer of ann"}


async def test_a_salespersons_new_customer_is_theirs(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    ann = await caller(runtime, world, as_key, "sales", "ann")
    body = await ann('mutation { createCustomer(input: {displayName: "New lead"}) { customer { owner { email } } } }')
    assert body["data"]["createCustomer"]["customer"]["owner"]["email"] == "ann@corp.cn"
    assert names(await ann(NAMES)) == ["Customer of ann", "New lead"]


async def test_a_manager_sees_their_team_and_nobody_elses(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    max_ = await caller(runtime, world, as_key, "manager", "max")
    assert names(await max_(NAMES)) == ["Customer of ann", "Customer of bo"]


@pytest.mark.parametrize("role", ["admin", "marketing", "service", "readonly"])
async def test_roles_without_ownership_limits_see_every_customer(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller], role: str
) -> None:
    call = await caller(runtime, world, as_key, role)
    assert names(await call(NAMES)) == ["Customer of ann", "Customer of bo", "Customer of cy", "Customer of nobody"]


async def test_marketing_reads_and_tags_but_cannot_export_or_create(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    mkt = await caller(runtime, world, as_key, "marketing")
    cid = to_global_id("Customer", world.customers["ann"])
    tagged = await mkt('mutation($id: ID!) { tagCustomer(id: $id, add: ["campaign/spring"]) { errors { code } } }', {"id": cid})
    assert tagged["data"]["tagCustomer"]["errors"] == []
    for query in (
        "query($id: ID!) { exportCustomerData(id: $id) }",
        'mutation { createCustomer(input: {displayName: "x"}) { errors { code } } }',
    ):
        body = await mkt(query, {"id": cid} if "$id" in query else None)
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


async def test_readonly_cannot_change_anything(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    ro = await caller(runtime, world, as_key, "readonly")
    cid = to_global_id("Customer", world.customers["ann"])
    body = await ro('mutation($id: ID!) { tagCustomer(id: $id, add: ["x"]) { errors { code } } }', {"id": cid})
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "permission customers.tag" in body["errors"][0]["message"]


async def test_a_forbidden_field_refuses_the_whole_operation_without_partial_data(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    """An allowed field next to a forbidden one (here hidden in a fragment) returns nothing."""
    ann = await caller(runtime, world, as_key, "sales", "ann")
    body = await ann("query { customers { totalCount } ...Audit } fragment Audit on Query { auditEvents { action } }")
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert "Query.auditEvents" in body["errors"][0]["message"]


async def test_admin_only_operations(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    max_ = await caller(runtime, world, as_key, "manager", "max")
    cid = to_global_id("Customer", world.customers["ann"])
    for query in (
        "{ apiKeys { keyId } }",
        "{ auditEvents { action } }",
        "{ inboxEvents { id } }",
        'mutation { createApiKey(input: {name: "x", role: ADMIN}) { key } }',
        'mutation { createUser(input: {email: "e@x.cn", name: "E", role: ADMIN}) { errors { code } } }',
        "mutation($id: ID!) { eraseCustomer(id: $id) { errors { code } } }",
    ):
        body = await max_(query, {"id": cid} if "$id" in query else None)
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", query
    export = await max_("query($id: ID!) { exportCustomerData(id: $id) }", {"id": cid})
    assert export["data"]["exportCustomerData"]["customer"]["displayName"] == "Customer of ann"  # managers may export their team's


@strawberry.type
class BadgeMutation:
    @strawberry.mutation
    def award_badge(self, name: str) -> str:
        return f"awarded {name}"

    @strawberry.mutation
    def reset_badges(self) -> bool:
        return True


class BadgePlugin:
    @hookimpl
    def guanxi_graphql(self) -> GraphQLContribution:
        return GraphQLContribution(mutation=BadgeMutation)

    @hookimpl
    def guanxi_permissions(self) -> list[Permission]:
        return [Permission(name="badges.award", roles=("admin", "marketing"), fields=("Mutation.awardBadge",))]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"badges": BadgePlugin()}


@pytest.mark.plugins("badges")
async def test_plugin_fields_follow_the_permissions_the_plugin_declares(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    """A declared plugin mutation is open to its roles; an undeclared one is admin-only."""
    mkt = await caller(runtime, world, as_key, "marketing")
    ann = await caller(runtime, world, as_key, "sales", "ann")
    admin = await caller(runtime, world, as_key, "admin")
    assert (await mkt('mutation { awardBadge(name: "top") }'))["data"] == {"awardBadge": "awarded top"}
    assert (await ann('mutation { awardBadge(name: "top") }'))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await mkt("mutation { resetBadges }"))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await admin("mutation { resetBadges }"))["data"] == {"resetBadges": True}


class TypoPlugin:
    @hookimpl
    def guanxi_permissions(self) -> list[Permission]:
        return [Permission(name="typo.x", roles=("admin",), fields=("Mutation.awardBadgee",))]


def test_a_permission_for_a_field_that_does_not_exist_fails_start_up(runtime: Runtime) -> None:
    from guanxi.graphql.schema import build_schema

    runtime.pm.register(TypoPlugin(), name="typo")
    with pytest.raises(PluginError, match=r"plugin 'typo': permission 'typo.x' guards 'Mutation.awardBadgee', which is not in the schema"):
        build_schema(runtime)


async def test_an_account_held_by_anothers_customer_is_a_conflict_not_a_crash(
    runtime: Runtime, world: World, as_key: Callable[[str], Caller]
) -> None:
    """The (channel, account) pair is unique per tenant: a salesperson attaching an account that
    another salesperson's customer holds gets CONFLICT, and learns nothing about that customer."""
    ann = await caller(runtime, world, as_key, "sales", "ann")
    body = await ann(
        'mutation($id: ID!) { attachIdentity(customerId: $id, input: {channel: "wecom", externalId: "wm-bo"})'
        " { errors { code message } } }",
        {"id": to_global_id("Customer", world.customers["ann"])},
    )
    error = body["data"]["attachIdentity"]["errors"][0]
    assert error["code"] == "CONFLICT" and "Customer of bo" not in error["message"]
