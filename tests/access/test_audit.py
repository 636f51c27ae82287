"""The audit trail: every core mutation writes an entry (in its transaction), admins read it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from guanxi.core.domain.channels import AccountSpec, Capabilities, Channel, DeliveryResult, OutboundMessage, ProfileInput
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import GraphQL
from tests.access.conftest import Caller, World, key_for, seed_world


class Chat(Channel):
    name = "chat"
    capabilities = Capabilities(send_text=True, profile_fetch=True)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult(provider_message_id="m-1")

    async def fetch_profile(self, external_id: str, *, tenant_id: uuid.UUID) -> ProfileInput | None:
        return ProfileInput(external_id=external_id, nickname="Fresh", follower_count=7)


class ChatAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    handle: str


class ChatSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    api_key: str = ""


class ChatSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    greeting: str = "hi"


class ChatTenantSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    greeting: str = "hi"


class ChatPlugin:
    @hookimpl
    def guanxi_channels(self) -> list[Channel]:
        return [Chat()]

    @hookimpl
    def guanxi_config_schema(self) -> type[msgspec.Struct]:
        return ChatSettings

    @hookimpl
    def guanxi_tenant_settings(self) -> type[msgspec.Struct]:
        return ChatTenantSettings

    @hookimpl
    def guanxi_channel_accounts(self) -> list[AccountSpec]:
        return [AccountSpec(channel="chat", settings=ChatAccount, secrets=ChatSecrets, provider_id="handle")]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"chat": ChatPlugin()}


@pytest.fixture
async def world(runtime: Runtime, tenant_id: uuid.UUID) -> World:
    return await seed_world(runtime, tenant_id)


def cid(world: World, owner: str = "ann") -> str:
    return to_global_id("Customer", world.customers[owner])


#: each core mutation, how to call it, and the audit action it must write
CASES: list[tuple[str, str, Callable[[World, dict[str, Any]], dict[str, Any]], str]] = [
    (
        "createCustomer",
        'mutation { createCustomer(input: {displayName: "Wang Fang", phones: ["13912345678"]}) { errors { code } } }',
        lambda w, s: {},
        "customer.create",
    ),
    (
        "updateCustomer",
        'mutation($id: ID!) { updateCustomer(id: $id, input: {displayName: "Renamed"}) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "customer.update",
    ),
    (
        "moveCustomerStage",
        'mutation($id: ID!) { moveCustomerStage(id: $id, stage: "won", reason: "signed") { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "customer.stage",
    ),
    (
        "tagCustomer",
        'mutation($id: ID!) { tagCustomer(id: $id, add: ["spring"]) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "customer.tags",
    ),
    (
        "attachIdentity",
        'mutation($id: ID!) { attachIdentity(customerId: $id, input: {channel: "chat", externalId: "c-9"}) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "identity.attach",
    ),
    (
        "recordInteraction",
        'mutation($id: ID!) { recordInteraction(input: {customerId: $id, channel: "note", kind: "call", text: "hi"}) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "interaction.record",
    ),
    (
        "mergeCustomers",
        "mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b) { errors { code } } }",
        lambda w, s: {"a": cid(w), "b": cid(w, "bo")},
        "customer.merge",
    ),
    (
        "createTask",
        'mutation($id: ID!) { createTask(input: {customerId: $id, title: "call back"}) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "task.create",
    ),
    (
        "completeTask",
        "mutation($id: ID!) { completeTask(id: $id) { errors { code } } }",
        lambda w, s: {"id": to_global_id("Task", w.tasks["ann"])},
        "task.complete",
    ),
    (
        "setConsent",
        'mutation($id: ID!) { setConsent(customerId: $id, channel: "chat", status: OPTED_IN) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "consent.set",
    ),
    (
        "createUser",
        'mutation { createUser(input: {email: "new@corp.cn", name: "New"}) { errors { code } } }',
        lambda w, s: {},
        "user.create",
    ),
    (
        "sendMessage",
        'mutation($id: ID!) { sendMessage(customerId: $id, channel: "chat", idempotencyKey: "k1", text: "hi") { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "message.queue",
    ),
    (
        "refreshIdentityProfile",
        "mutation($id: ID!) { refreshIdentityProfile(identityId: $id) { errors { code } } }",
        lambda w, s: {"id": s["identity"]},
        "identity.refresh",
    ),
    (
        "createApiKey",
        'mutation { createApiKey(input: {name: "bi", role: READONLY}) { errors { code } } }',
        lambda w, s: {},
        "apikey.create",
    ),
    (
        "revokeApiKey",
        "mutation($k: String!) { revokeApiKey(keyId: $k) { errors { code } } }",
        lambda w, s: {"k": s["key_id"]},
        "apikey.revoke",
    ),
    (
        "eraseCustomer",
        "mutation($id: ID!) { eraseCustomer(id: $id) { errors { code } } }",
        lambda w, s: {"id": cid(w, "cy")},
        "customer.erase",
    ),
    (
        "cancelScheduledJob",
        "mutation($id: ID!) { cancelScheduledJob(id: $id) { errors { code } } }",
        lambda w, s: {"id": s["job"]},
        "job.cancel",
    ),
    (
        "eraseUserData",
        "mutation($id: ID!) { eraseUserData(id: $id) { errors { code } } }",
        lambda w, s: {"id": to_global_id("User", w.users["cy"])},
        "user.erase",
    ),
    ("markNotificationsRead", "mutation { markNotificationsRead(all: true) { errors { code } } }", lambda w, s: {}, "notification.read"),
    (
        "defineCustomField",
        'mutation { defineCustomField(input: {key: "budget", label: "Budget", kind: MONEY}) { errors { code } } }',
        lambda w, s: {},
        "field.define",
    ),
    (
        "updateCustomField",
        'mutation { updateCustomField(key: "grade", input: {label: "Grade"}) { errors { code } } }',
        lambda w, s: {},
        "field.update",
    ),
    (
        "setCustomerFields",
        'mutation($id: ID!) { setCustomerFields(customerId: $id, values: {grade: "A"}) { errors { code } } }',
        lambda w, s: {"id": cid(w)},
        "customer.fields",
    ),
    (
        "updateMyNotificationPreferences",
        'mutation { updateMyNotificationPreferences(input: {digestAt: "08:00"}) { errors { code } } }',
        lambda w, s: {},
        "notification.preferences",
    ),
    (
        "setPluginEnabled",
        'mutation { setPluginEnabled(plugin: "chat", enabled: false) { errors { code } } }',
        lambda w, s: {},
        "tenant.plugin_disable",
    ),
    (
        "setPluginSettings",
        'mutation { setPluginSettings(plugin: "chat", settings: {greeting: "你好"}) { errors { code } } }',
        lambda w, s: {},
        "tenant.plugin_settings",
    ),
    (
        "saveChannelAccount",
        "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { errors { code } } }",
        lambda w, s: {"i": {"channel": "chat", "key": s["account"], "settings": {"handle": s["account"]}, "secrets": {"api_key": "k-1"}}},
        "channel_account.create",
    ),
    (
        "deleteChannelAccount",
        'mutation($k: String!) { deleteChannelAccount(channel: "chat", key: $k) { errors { code } } }',
        lambda w, s: {"k": s["existing_account"]},
        "channel_account.delete",
    ),
    (
        "createPipeline",
        'mutation { createPipeline(input: {key: "renewal", name: "Renewal", sources: ["contract_end"]}) { errors { code } } }',
        lambda w, s: {},
        "pipeline.create",
    ),
    (
        "updatePipeline",
        'mutation { updatePipeline(key: "default", input: {name: "New business"}) { errors { code } } }',
        lambda w, s: {},
        "pipeline.update",
    ),
    (
        "createStage",
        'mutation { createStage(pipeline: "default", input: {key: "demo", name: "Demo"}) { errors { code } } }',
        lambda w, s: {},
        "stage.create",
    ),
    (
        "updateStage",
        'mutation { updateStage(pipeline: "default", stage: "mql", name: "Interested") { errors { code } } }',
        lambda w, s: {},
        "stage.update",
    ),
    (
        "reorderStages",
        'mutation($k: [String!]!) { reorderStages(pipeline: "default", keys: $k) { errors { code } } }',
        lambda w, s: {"k": ["lead", "sql", "mql", "opportunity", "won", "lost", "retained", "churned"]},
        "stage.reorder",
    ),
    (
        "archiveStage",
        'mutation { archiveStage(pipeline: "default", stage: "churned", moveTo: "lead") { errors { code } } }',
        lambda w, s: {},
        "stage.archive",
    ),
    (
        "deleteStage",
        'mutation { deleteStage(pipeline: "default", stage: "retained", moveTo: "lead") { errors { code } } }',
        lambda w, s: {},
        "stage.delete",
    ),
    (
        "undoMerge",
        "mutation($b: ID!) { undoMerge(mergedId: $b) { errors { code } } }",
        lambda w, s: {"b": cid(w, "bo")},
        "customer.unmerge",
    ),
]
#: mutations on the caller's own notifications: called with an admin key that acts for a user
AS_USER = ("markNotificationsRead", "updateMyNotificationPreferences")


@pytest.mark.plugins("chat")
@pytest.mark.parametrize(("field", "mutation", "variables", "action"), CASES, ids=[c[0] for c in CASES])
async def test_every_core_mutation_writes_an_audit_entry_with_its_actor(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    world: World,
    graphql: GraphQL,
    field: str,
    mutation: str,
    variables: Callable[[World, dict[str, Any]], dict[str, Any]],
    action: str,
    as_key: Callable[[str], Caller],
) -> None:
    setup: dict[str, Any] = {
        "key_id": (await key_for(runtime, tenant_id, "readonly")).split("_")[1],
        "account": f"a{uuid.uuid4().hex[:12]}",
    }
    if field == "deleteChannelAccount":
        setup["existing_account"] = f"a{uuid.uuid4().hex[:12]}"
        save = "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { errors { code } } }"
        account = {"channel": "chat", "key": setup["existing_account"], "settings": {"handle": setup["existing_account"]}}
        assert (await graphql(save, {"i": account}))["data"]["saveChannelAccount"]["errors"] == []
    if field in ("sendMessage", "refreshIdentityProfile"):
        attached = await graphql(
            'mutation($id: ID!) { attachIdentity(customerId: $id, input: {channel: "chat", externalId: "c-1"}) { identity { id } } }',
            {"id": cid(world)},
        )
        setup["identity"] = attached["data"]["attachIdentity"]["identity"]["id"]
    if field == "cancelScheduledJob":  # a task with a due time schedules its reminders
        await graphql(
            'mutation($id: ID!) { createTask(input: {customerId: $id, title: "call", dueAt: "2031-01-01T09:00:00+08:00"})'
            " { errors { code } } }",
            {"id": cid(world)},
        )
        jobs = await graphql("{ scheduledJobs(status: SCHEDULED) { id } }")
        setup["job"] = jobs["data"]["scheduledJobs"][0]["id"]
    if field in ("updateCustomField", "setCustomerFields"):
        await graphql(
            'mutation { defineCustomField(input: {key: "grade", label: "等级", kind: SINGLE_CHOICE, choices: ["A", "B"]})'
            " { field { key } } }"
        )
    if field == "undoMerge":
        merged = await graphql(
            "mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b) { errors { code } } }",
            {"a": cid(world), "b": cid(world, "bo")},
        )
        assert merged["data"]["mergeCustomers"]["errors"] == []
    if field in AS_USER:
        body = await as_key(await key_for(runtime, tenant_id, "admin", world.users["ann"]))(mutation, variables(world, setup))
    else:
        body = await graphql(mutation, variables(world, setup))
    assert next(iter(body["data"].values()))["errors"] == [], body
    trail = (await graphql("query($a: String) { auditEvents(action: $a) { action actor actorId objectType changes } }", {"a": action}))[
        "data"
    ]
    assert trail["auditEvents"], f"{field} wrote no {action} entry"
    entry = trail["auditEvents"][0]
    if field in AS_USER:  # the user the key acts for, and the key
        assert entry["actor"].startswith("ann@corp.cn (key ") and entry["actorId"] == to_global_id("User", world.users["ann"])
    else:
        assert entry["actor"].startswith("key ") and "(test admin)" in entry["actor"]  # the API key that did it


def test_every_core_mutation_is_covered_by_the_audit_test(runtime: Runtime) -> None:
    from guanxi.graphql.schema import build_schema

    mutation = build_schema(runtime)._schema.mutation_type
    assert mutation is not None
    assert set(mutation.fields) - {c[0] for c in CASES} == set()


async def test_personal_values_are_masked_in_the_trail_and_old_values_kept(graphql: GraphQL, world: World) -> None:
    await graphql(
        'mutation($id: ID!) { updateCustomer(id: $id, input: {displayName: "Zhang Wei", company: "Acme"}) { errors { code } } }',
        {"id": cid(world)},
    )
    entry = (await graphql('{ auditEvents(action: "customer.update") { changes objectId } }'))["data"]["auditEvents"][0]
    assert entry["objectId"] == cid(world)
    assert entry["changes"]["display_name"] == ["C*************n", "Z*******i"]  # old and new, masked
    assert "Zhang Wei" not in str(entry)


async def test_only_admins_read_the_trail(runtime: Runtime, world: World, as_key: Callable[[str], Caller]) -> None:
    for role in ("manager", "marketing", "sales", "service", "readonly"):
        user = world.users["max"] if role == "manager" else world.users["ann"] if role == "sales" else None
        body = await as_key(await key_for(runtime, world.tenant_id, role, user))("{ auditEvents { action } }")
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
