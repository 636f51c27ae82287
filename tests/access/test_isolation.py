"""Tenant isolation: an admin of tenant A tries to reach tenant B's data by every route.

Tenant B's personal strings all start with ``B-``; no answer to tenant A may contain one, and
after every attack B's data must be exactly as before. The attacks: every query field (with B's
global ids, B's names, phones and e-mails as search terms, B's tags and user ids as filters),
every mutation aimed at B's customers, tasks, identities, users and API keys, global ids of every
type, a subscription to a B customer, and a credential of A presented while B's tenant is the
configured one. A test checks that every Query, Mutation and Subscription field of the schema
is attacked here, so a new field cannot skip the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import (
    Customer,
    CustomerFieldValue,
    CustomerTag,
    FieldDefinition,
    InboxEvent,
    Interaction,
    Notification,
    OutboxMessage,
    Pipeline,
    ScheduledJob,
    Stage,
    Task,
    TenantPlugin,
    User,
    utcnow,
)
from guanxi.core.runtime import Runtime
from guanxi.core.services import fields, stages
from guanxi.core.services.pipelines import StageSpec, create_tenant
from guanxi.graphql.ids import to_global_id
from tests.access.conftest import Caller, World, key_for, seed_world


class Victim:
    def __init__(self, world: World, message_id: uuid.UUID, identity_id: uuid.UUID, key_id: str) -> None:
        self.world = world
        self.notification_id = uuid.uuid4()
        self.job_id = uuid.uuid4()
        self.message_id = message_id
        self.identity_id = identity_id
        self.key_id = key_id

    def gid(self, kind: str, owner: str = "ann") -> str:
        table = {
            "Customer": self.world.customers,
            "Task": self.world.tasks,
            "Interaction": self.world.interactions,
            "User": self.world.users,
        }
        return to_global_id(kind, table[kind][owner])


@pytest.fixture
async def victim(runtime: Runtime) -> Victim:
    """Tenant B with customers, users, tasks, tags, an identity, an outbox message, an inbox
    event and an API key."""
    async with runtime.write_session(None) as session:
        tenant_b = await create_tenant(session, f"b-{uuid.uuid4().hex[:8]}", "Tenant B")
    world = await seed_world(runtime, tenant_b, prefix="B-", mobile="139")
    async with runtime.write_session(tenant_b) as s:
        message = OutboxMessage(
            customer_id=world.customers["ann"], channel="wecom", recipient="B-wm-ann", text="B-outbound secret", idempotency_key="B-1"
        )
        s.add(message)
        s.add(InboxEvent(channel="wecom", provider_event_id="B-evt-1", event={"text": "B-raw webhook"}, status="failed"))
        identity_id = (await s.execute(select(Interaction.identity_id).limit(1))).scalar()
    key = await key_for(runtime, tenant_b, "admin")
    from guanxi.core.domain.models import Identity

    async with runtime.session(tenant_b) as s:
        identity_id = (await s.scalars(select(Identity.id).where(Identity.customer_id == world.customers["ann"]))).one()
    found = Victim(world, message.id, identity_id, key.split("_")[1])
    async with runtime.transaction(RequestContext(tenant_id=tenant_b)) as tx:
        await fields.define_field(tx, fields.FieldInput(key="tier", label="B-Tier", kind="single_choice", choices=["B-gold"]))
        await fields.set_customer_fields(tx, world.customers["ann"], {"tier": "B-gold"})
        await stages.create_pipeline(
            tx, stages.PipelineInput(key="b_renewal", name="B-Renewal", sources=["B-src"], stages=[StageSpec("b_due", "B-Due")])
        )
    async with runtime.write_session(tenant_b) as s:
        s.add(
            Notification(
                id=found.notification_id,
                user_id=world.users["ann"],
                kind="task.due_soon",
                title="B-reminder",
                dedupe_key="B-n1",
                body="B-body",
            )
        )
        s.add(
            ScheduledJob(
                id=found.job_id,
                kind="core.task_due_soon",
                key="B-job",
                payload={"task_id": str(world.tasks["ann"]), "secret": "B-payload"},
                slot_at=utcnow(),
            )
        )
    return found


@pytest.fixture
async def attacker(runtime: Runtime, tenant_id: uuid.UUID, as_key: Callable[[str], Caller]) -> Caller:
    await seed_world(runtime, tenant_id, prefix="A-")
    return as_key(await key_for(runtime, tenant_id, "admin"))


async def snapshot(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Everything an attack could change in tenant B."""
    async with runtime.session(tenant_id) as s:
        customers = [
            (c.id, c.display_name, c.phones, c.emails, c.company, c.stage_id, c.owner_id, c.merged_into_id, c.erased_at)
            for c in (await s.scalars(select(Customer).order_by(Customer.id))).all()
        ]
        return {
            "customers": customers,
            "tags": (await s.execute(select(func.count()).select_from(CustomerTag))).scalar(),
            "tasks": [(t.title, t.done_at) for t in (await s.scalars(select(Task).order_by(Task.id))).all()],
            "interactions": (await s.execute(select(func.count()).select_from(Interaction))).scalar(),
            "messages": (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar(),
            "notifications": [(n.title, n.read_at) for n in (await s.scalars(select(Notification).order_by(Notification.id))).all()],
            "jobs": [(j.key, j.status) for j in (await s.scalars(select(ScheduledJob).order_by(ScheduledJob.id))).all()],
            "users": [(u.name, u.email, u.active) for u in (await s.scalars(select(User).order_by(User.id))).all()],
            "plugins": [
                (p.plugin, p.enabled, p.settings) for p in (await s.scalars(select(TenantPlugin).order_by(TenantPlugin.plugin))).all()
            ],
            "fields": [(d.key, d.label, d.choices, d.archived_at) for d in (await s.scalars(select(FieldDefinition))).all()],
            "pipelines": [
                (p.key, p.name, p.sources, p.is_default) for p in (await s.scalars(select(Pipeline).order_by(Pipeline.key))).all()
            ],
            "stages": sorted((st.key, st.name, st.position, st.archived_at is None) for st in (await s.scalars(select(Stage))).all()),
            "field_values": sorted((str(v.customer_id), v.text_value) for v in (await s.scalars(select(CustomerFieldValue))).all()),
        }


def no_leak(body: dict[str, Any]) -> None:
    """No B- string in the answer, and the attack itself was a valid operation (a typo in an
    attack would otherwise pass for isolation)."""
    text = json.dumps(body, ensure_ascii=False)
    assert "B-" not in text, text
    assert not [e for e in body.get("errors", []) if e["extensions"]["code"] == "GRAPHQL_VALIDATION"], body


#: (schema coordinate, operation, variables from the victim)
QUERIES: list[tuple[str, str, Callable[[Victim], dict[str, Any]]]] = [
    ("Query.enabledPlugins", "{ enabledPlugins }", lambda v: {}),
    ("Query.tenantPlugins", "{ tenantPlugins { name enabled } }", lambda v: {}),
    ("Query.quotaUsage", "{ quotaUsage { name limit used window } }", lambda v: {}),
    ("Query.pluginSettings", '{ pluginSettings(plugin: "scoring") { overrides } }', lambda v: {}),
    ("Query.channelAccounts", "{ channelAccounts { key providerId settings secretFingerprints } }", lambda v: {}),
    ("Query.myTasks", "{ myTasks(status: ALL) { title notes customer { displayName } } }", lambda v: {}),
    (
        "Query.teamTasks",
        "query($ids: [ID!]) { teamTasks(status: ALL, assigneeIds: $ids) { title notes assignee { name } customer { displayName } } }",
        lambda v: {"ids": [v.gid("User")]},
    ),
    ("Query.teamTasks", "{ teamTasks(status: ALL) { title customer { displayName } } }", lambda v: {}),
    ("Query.customFields", "{ customFields(includeArchived: true) { key label choices } }", lambda v: {}),
    (
        "Query.customers",
        '{ customers(filter: {fields: [{field: "tier", eq: "B-gold"}]}) { totalCount edges { node { fields { key value } } } } }',
        lambda v: {},
    ),
    ("Query.customers", '{ customers(orderByField: {field: "tier"}) { edges { node { displayName fields { value } } } } }', lambda v: {}),
    ("Query.customers", "{ customers(first: 100) { totalCount edges { node { displayName phones emails } } } }", lambda v: {}),
    (
        "Query.customers",
        "query($s: String!) { customers(filter: {search: $s}) { totalCount edges { node { displayName } } } }",
        lambda v: {"s": "B-Customer"},
    ),
    ("Query.customers", "query($s: String!) { customers(filter: {search: $s}) { totalCount } }", lambda v: {"s": "B-ann.client@mail.cn"}),
    ("Query.customers", "query($s: String!) { customers(filter: {search: $s}) { totalCount } }", lambda v: {"s": "139 0000 0000"}),
    (
        "Query.customers",
        '{ customers(filter: {tagsAny: ["vip/ann"], tagsAll: ["vip/ann"]}) { edges { node { displayName tags { name } } } } }',
        lambda v: {},
    ),
    (
        "Query.customers",
        "query($o: [ID!]) { customers(filter: {ownerIds: $o}) { totalCount edges { node { displayName } } } }",
        lambda v: {"o": [v.gid("User")]},
    ),
    (
        "Query.customer",
        "query($id: ID!) { customer(id: $id) { displayName interactions { edges { node { text } } } tasks { title } } }",
        lambda v: {"id": v.gid("Customer")},
    ),
    ("Query.pipelines", "{ pipelines { key stages { key name } } }", lambda v: {}),
    ("Query.funnel", "{ funnel { steps { stage { key } current reached } } }", lambda v: {}),
    ("Query.users", "{ users { email name team } }", lambda v: {}),
    ("Query.tags", "{ tags { name group } }", lambda v: {}),
    ("Query.inboxEvents", "{ inboxEvents(status: FAILED) { id event } }", lambda v: {}),
    ("Query.outboxMessages", "{ outboxMessages { id text attachments } }", lambda v: {}),
    ("Query.message", "query($id: ID!) { message(id: $id) { text status } }", lambda v: {"id": to_global_id("Message", v.message_id)}),
    ("Query.queues", "{ queues { inbox { waiting failed } outbox { waiting failed } } }", lambda v: {}),
    (
        "Query.auditEvents",
        "query($id: ID) { auditEvents(objectId: $id, first: 100) { action changes actor } }",
        lambda v: {"id": v.gid("Customer")},
    ),
    ("Query.auditEvents", "{ auditEvents(first: 100) { action changes actor } }", lambda v: {}),
    ("Query.apiKeys", "{ apiKeys { keyId name } }", lambda v: {}),
    (
        "Query.node",
        "query($id: ID!) { node(id: $id) { id ... on Customer { displayName phones emails } } }",
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Query.nodes",
        "query($ids: [ID!]!) { nodes(ids: $ids) { id ...on Customer { displayName } ...on Task { title } ...on Interaction { text }"
        " ...on User { email name } ...on Message { text } ...on Identity { externalId nickname } } }",
        lambda v: {
            "ids": [
                v.gid("Customer"),
                v.gid("Customer", "bo"),
                v.gid("Task"),
                v.gid("Interaction"),
                v.gid("User"),
                to_global_id("Message", v.message_id),
                to_global_id("Identity", v.identity_id),
            ]
        },
    ),
    ("Query.exportCustomerData", "query($id: ID!) { exportCustomerData(id: $id) }", lambda v: {"id": v.gid("Customer")}),
    ("Query.exportUserData", "query($id: ID!) { exportUserData(id: $id) }", lambda v: {"id": v.gid("User")}),
    ("Query.scheduledJobs", "{ scheduledJobs(first: 100) { id key kind payload lastError } }", lambda v: {}),
    ("Query.scheduledJobs", '{ scheduledJobs(kind: "core.task_due_soon") { id key payload } }', lambda v: {}),
    ("Query.myNotifications", "{ myNotifications(first: 100) { unreadCount items { title body } } }", lambda v: {}),
    ("Query.myNotificationPreferences", "{ myNotificationPreferences { channels kinds } }", lambda v: {}),
]

MUTATIONS: list[tuple[str, str, Callable[[Victim], dict[str, Any]]]] = [
    (
        "Mutation.createPipeline",
        'mutation { createPipeline(input: {key: "b_renewal", name: "Mine", sources: ["B-src"]}) { pipeline { key } errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.updatePipeline",
        'mutation($k: String!) { updatePipeline(key: $k, input: {name: "x", isDefault: true}) { pipeline { name } errors { code } } }',
        lambda v: {"k": "b_renewal"},
    ),
    (
        "Mutation.createStage",
        'mutation($k: String!) { createStage(pipeline: $k, input: {key: "x", name: "x"}) { stage { key } errors { code } } }',
        lambda v: {"k": "b_renewal"},
    ),
    (
        "Mutation.updateStage",
        'mutation($k: String!) { updateStage(pipeline: $k, stage: "b_due", name: "x") { stage { name } errors { code } } }',
        lambda v: {"k": "b_renewal"},
    ),
    (
        "Mutation.reorderStages",
        'mutation($k: String!) { reorderStages(pipeline: $k, keys: ["b_due"]) { pipeline { key } errors { code } } }',
        lambda v: {"k": "b_renewal"},
    ),
    (
        "Mutation.archiveStage",
        'mutation($k: String!) { archiveStage(pipeline: $k, stage: "b_due", moveTo: "lead") { result { moved } errors { code } } }',
        lambda v: {"k": "b_renewal"},
    ),
    (
        "Mutation.deleteStage",
        'mutation($k: String!) { deleteStage(pipeline: $k, stage: "lead", moveTo: "b_due") { result { moved } errors { code } } }',
        lambda v: {"k": "default"},
    ),
    (
        "Mutation.undoMerge",
        "mutation($id: ID!) { undoMerge(mergedId: $id) { customer { id } survivor { id } errors { code } } }",
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.moveCustomerStage",
        'mutation($id: ID!) { moveCustomerStage(id: $id, stage: "b_due", pipeline: "b_renewal") { customer { id } errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.defineCustomField",
        'mutation { defineCustomField(input: {key: "tier", label: "Tier", kind: TEXT}) { field { key label choices } errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.updateCustomField",
        'mutation($k: String!) { updateCustomField(key: $k, input: {label: "x", archived: true}) { field { label } errors { code } } }',
        lambda v: {"k": "tier"},
    ),
    (
        "Mutation.setCustomerFields",
        "mutation($id: ID!, $v: JSON!) { setCustomerFields(customerId: $id, values: $v) { changed errors { code } } }",
        lambda v: {"id": v.gid("Customer"), "v": {"tier": None}},
    ),
    (
        "Mutation.createCustomer",
        'mutation($o: ID!) { createCustomer(input: {displayName: "x", ownerId: $o}) { customer { id } errors { code } } }',
        lambda v: {"o": v.gid("User")},
    ),
    (
        "Mutation.createCustomer",
        'mutation { createCustomer(input: {displayName: "dup", phones: ["+86 139 0000 0000"], emails: ["B-ann.client@mail.cn"]})'
        " { customer { displayName identities { externalId } } errors { code } } }",
        lambda v: {},
    ),
    (
        "Mutation.updateCustomer",
        'mutation($id: ID!) { updateCustomer(id: $id, input: {company: "pwned"}) { customer { displayName } errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.moveCustomerStage",
        'mutation($id: ID!) { moveCustomerStage(id: $id, stage: "won") { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.tagCustomer",
        'mutation($id: ID!) { tagCustomer(id: $id, add: ["x"], remove: ["vip/ann"]) { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.attachIdentity",
        'mutation($id: ID!) { attachIdentity(customerId: $id, input: {channel: "wecom", externalId: "zz"}) { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.recordInteraction",
        'mutation($id: ID!) { recordInteraction(input: {customerId: $id, channel: "note", kind: "note", text: "x"}) { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.mergeCustomers",
        "mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b) { errors { code } } }",
        lambda v: {"a": v.gid("Customer", "bo"), "b": v.gid("Customer")},
    ),
    (
        "Mutation.createTask",
        'mutation($id: ID!) { createTask(input: {customerId: $id, title: "x"}) { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    ("Mutation.completeTask", "mutation($id: ID!) { completeTask(id: $id) { errors { code } } }", lambda v: {"id": v.gid("Task")}),
    (
        "Mutation.setConsent",
        'mutation($id: ID!) { setConsent(customerId: $id, channel: "wecom", status: OPTED_OUT) { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.createUser",
        'mutation { createUser(input: {email: "B-ann@corp.cn", name: "dup"}) { user { email } errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.sendMessage",
        'mutation($id: ID!) { sendMessage(customerId: $id, channel: "wecom", idempotencyKey: "B-1", text: "x") { errors { code } } }',
        lambda v: {"id": v.gid("Customer")},
    ),
    (
        "Mutation.refreshIdentityProfile",
        "mutation($id: ID!) { refreshIdentityProfile(identityId: $id) { errors { code } } }",
        lambda v: {"id": to_global_id("Identity", v.identity_id)},
    ),
    (
        "Mutation.createApiKey",
        'mutation($u: ID!) { createApiKey(input: {name: "x", role: SALES, userId: $u}) { key errors { code } } }',
        lambda v: {"u": v.gid("User")},
    ),
    ("Mutation.revokeApiKey", "mutation($k: String!) { revokeApiKey(keyId: $k) { errors { code } } }", lambda v: {"k": v.key_id}),
    ("Mutation.eraseCustomer", "mutation($id: ID!) { eraseCustomer(id: $id) { errors { code } } }", lambda v: {"id": v.gid("Customer")}),
    ("Mutation.eraseUserData", "mutation($id: ID!) { eraseUserData(id: $id) { erased errors { code } } }", lambda v: {"id": v.gid("User")}),
    (
        "Mutation.cancelScheduledJob",
        "mutation($id: ID!) { cancelScheduledJob(id: $id) { job { key } errors { code } } }",
        lambda v: {"id": to_global_id("ScheduledJob", v.job_id)},
    ),
    (
        "Mutation.markNotificationsRead",
        "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) { count errors { code } } }",
        lambda v: {"ids": [to_global_id("Notification", v.notification_id)]},
    ),
    (
        "Mutation.updateMyNotificationPreferences",
        'mutation { updateMyNotificationPreferences(input: {digestAt: "06:00"}) { errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.setPluginSettings",
        'mutation { setPluginSettings(plugin: "scoring", settings: {history_limit: 1}) { errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.saveChannelAccount",
        'mutation { saveChannelAccount(input: {channel: "wecom", key: "B-corp", settings: {corp_id: "B-ww"}}) { errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.deleteChannelAccount",
        'mutation { deleteChannelAccount(channel: "wecom", key: "B-corp") { errors { code } } }',
        lambda v: {},
    ),
    (
        "Mutation.setPluginEnabled",
        'mutation { setPluginEnabled(plugin: "scoring", enabled: false) { plugin { name } errors { code } } }',
        lambda v: {},
    ),
]

#: attacked in the tests below
SUBSCRIPTIONS = ["Subscription.interactionRecorded", "Subscription.messageStatusChanged", "Subscription.notificationReceived"]


@pytest.mark.parametrize(("coordinate", "query", "variables"), QUERIES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(QUERIES)])
async def test_no_query_returns_another_tenants_data(
    runtime: Runtime, victim: Victim, attacker: Caller, coordinate: str, query: str, variables: Callable[[Victim], dict[str, Any]]
) -> None:
    body = await attacker(query, variables(victim))
    no_leak(body)
    if coordinate in ("Query.customer", "Query.message", "Query.node"):
        assert next(iter(body["data"].values())) is None
    if coordinate == "Query.nodes":
        assert body["data"]["nodes"] == [None] * len(variables(victim)["ids"])
    if coordinate == "Query.queues":  # B has a failed inbox event and a waiting message: not counted for A
        assert body["data"]["queues"] == {"inbox": {"waiting": 0, "failed": 0}, "outbox": {"waiting": 0, "failed": 0}}
    if coordinate == "Query.exportCustomerData":
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    if "totalCount" in query and "search" in query and any(ch.isdigit() or ch == "@" for ch in str(variables(victim))):
        assert body["data"]["customers"]["totalCount"] == 0  # B's phone or e-mail finds nothing


@pytest.mark.parametrize(("coordinate", "query", "variables"), MUTATIONS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(MUTATIONS)])
async def test_no_mutation_reaches_another_tenants_data(
    runtime: Runtime, victim: Victim, attacker: Caller, coordinate: str, query: str, variables: Callable[[Victim], dict[str, Any]]
) -> None:
    before = await snapshot(runtime, victim.world.tenant_id)
    body = await attacker(query, variables(victim))
    no_leak(body)
    assert await snapshot(runtime, victim.world.tenant_id) == before
    payload = next(iter((body.get("data") or {}).values()), None)
    aimed_at_b = any(isinstance(v, str | list) and v != "B-1" for v in variables(victim).values()) or "keyId" in query
    if coordinate == "Mutation.markNotificationsRead":
        aimed_at_b = False  # an admin key without a user is refused; a user of A is tried below
    if aimed_at_b and payload is not None:
        assert payload["errors"], body  # refused (NOT_FOUND, or a check that comes first)


async def test_a_subscription_to_another_tenants_customer_receives_nothing(
    runtime: Runtime, tenant_id: uuid.UUID, victim: Victim, attacker: Caller
) -> None:
    from guanxi.core.services import interactions
    from guanxi.graphql.context import GraphQLContext
    from guanxi.graphql.schema import build_schema

    schema = build_schema(runtime)
    context = GraphQLContext(runtime=runtime, request_context=RequestContext(tenant_id=tenant_id))
    for field in ("interactionRecorded", "messageStatusChanged"):
        stream = await schema.subscribe(
            f"subscription($c: ID) {{ {field}(customerId: $c) {{ __typename }} }}", {"c": victim.gid("Customer")}, context
        )
        receive = asyncio.ensure_future(stream.__anext__())  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        async with runtime.transaction(RequestContext(tenant_id=victim.world.tenant_id)) as tx:
            await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=victim.world.customers["ann"], channel="wecom", kind="message", text="B-live")
            )
        await asyncio.sleep(0.2)
        assert not receive.done()
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await receive


async def test_a_key_acts_in_its_own_tenant_whatever_tenant_is_configured(
    runtime: Runtime, tenant_id: uuid.UUID, victim: Victim, attacker: Caller
) -> None:
    from guanxi.testing.plugin import use_tenant

    await use_tenant(runtime, victim.world.tenant_id)  # the server's default tenant is B now
    body = await attacker("{ customers(first: 100) { edges { node { displayName } } } }")
    no_leak(body)
    assert len(body["data"]["customers"]["edges"]) == 4


def test_the_suite_attacks_every_root_field(runtime: Runtime) -> None:
    from guanxi.graphql.schema import build_schema

    schema = build_schema(runtime)._schema
    fields = {f"{t.name}.{f}" for t in (schema.query_type, schema.mutation_type, schema.subscription_type) if t for f in t.fields}
    attacked = {c for c, _, _ in QUERIES} | {c for c, _, _ in MUTATIONS} | set(SUBSCRIPTIONS)
    assert fields - attacked == set(), "add an attack for each new root field"


async def test_a_user_of_another_tenant_neither_sees_nor_marks_nor_hears_notifications(
    runtime: Runtime, tenant_id: uuid.UUID, victim: Victim, as_key: Callable[[str], Caller]
) -> None:
    """A user key of tenant A (whose user id is looked up in A only) against B's notification."""
    from guanxi.core.services.notifications import NotificationInput, notify
    from guanxi.graphql.context import GraphQLContext
    from guanxi.graphql.schema import build_schema
    from tests.access.conftest import make_user

    me = await make_user(runtime, tenant_id, "a-user@corp.cn", "sales")
    caller = as_key(await key_for(runtime, tenant_id, "sales", me))
    before = await snapshot(runtime, victim.world.tenant_id)
    listed = await caller("{ myNotifications(first: 100) { unreadCount items { title } } }")
    no_leak(listed)
    assert listed["data"]["myNotifications"] == {"unreadCount": 0, "items": []}
    marked = await caller(
        "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) { count } }",
        {"ids": [to_global_id("Notification", victim.notification_id)]},
    )
    assert marked["data"]["markNotificationsRead"]["count"] == 0
    assert (await caller("mutation { markNotificationsRead(all: true) { count } }"))["data"]["markNotificationsRead"]["count"] == 0
    assert await snapshot(runtime, victim.world.tenant_id) == before

    from guanxi.core.base.context import Actor

    schema = build_schema(runtime)
    # the same user id in another tenant's event must not reach A's caller (tenant checked, not only the user)
    ctx = RequestContext(tenant_id=tenant_id, actor=Actor(kind="user", user_id=victim.world.users["ann"], name="x", roles=("sales",)))
    stream = await schema.subscribe(
        "subscription { notificationReceived { title } }", context_value=GraphQLContext(runtime=runtime, request_context=ctx)
    )
    receive = asyncio.ensure_future(stream.__anext__())  # type: ignore[union-attr]
    await asyncio.sleep(0.05)
    async with runtime.transaction(RequestContext(tenant_id=victim.world.tenant_id)) as tx:
        await notify(tx, NotificationInput(user_id=victim.world.users["ann"], kind="test.live", title="B-live", dedupe_key="B-live"))
    await asyncio.sleep(0.2)
    assert not receive.done()
    receive.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await receive


#: every root field of the operator endpoint, as a tenant's admin would try it against tenant B
OPERATOR_ATTACKS = [
    ("tenants", "{ tenants { slug name } }"),
    ("tenant", '{ tenant(slug: "b") { slug } }'),
    ("createTenant", 'mutation { createTenant(input: {slug: "mine", name: "x"}) { errors { code } } }'),
    ("updateTenant", 'mutation { updateTenant(slug: "b", input: {name: "x"}) { errors { code } } }'),
    ("suspendTenant", 'mutation { suspendTenant(slug: "b") { errors { code } } }'),
    ("resumeTenant", 'mutation { resumeTenant(slug: "b") { errors { code } } }'),
    ("deleteTenant", 'mutation { deleteTenant(slug: "b", confirm: "b") { errors { code } } }'),
    ("createTenantApiKey", 'mutation { createTenantApiKey(slug: "b", name: "x") { key } }'),
    ("setTenantQuotas", 'mutation { setTenantQuotas(slug: "b", quotas: {customers: 1}) { errors { code } } }'),
]


def test_every_operator_root_field_is_attacked() -> None:
    from guanxi.graphql.operator import OperatorMutation, OperatorQuery

    fields = {f.name or f.python_name for t in (OperatorQuery, OperatorMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel == {name for name, _ in OPERATOR_ATTACKS}


@pytest.mark.parametrize(("field", "operation"), OPERATOR_ATTACKS, ids=[name for name, _ in OPERATOR_ATTACKS])
async def test_a_tenant_admin_key_cannot_use_the_operator_api(
    runtime: Runtime, http: Any, tenant_id: uuid.UUID, victim: Victim, field: str, operation: str
) -> None:
    """The operator endpoint refuses a tenant's credentials (403) before anything runs: no
    tenant is listed, created, suspended or deleted, and tenant B is untouched."""
    from guanxi.core.services.tenants import list_tenants

    key = await key_for(runtime, tenant_id, "admin")
    before, tenants_before = await snapshot(runtime, victim.world.tenant_id), await list_tenants(runtime)
    response = await http.post("/operator/graphql", json={"query": operation}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "B-" not in response.text and "Tenant B" not in response.text
    assert await snapshot(runtime, victim.world.tenant_id) == before
    assert await list_tenants(runtime) == tenants_before


class TestPluginSettingsAndChannelAccounts:
    """With a plugin that has tenant settings and channel accounts: tenant A's admin cannot
    see, change, take over or delete tenant B's account, nor touch B's plugin choices."""

    @pytest.fixture
    def plugin_names(self) -> list[str]:
        return ["chat"]

    @pytest.fixture
    def extra_plugins(self) -> dict[str, object]:
        from tests.access.test_audit import ChatPlugin

        return {"chat": ChatPlugin()}

    async def test_another_tenants_account_and_settings_are_out_of_reach(self, runtime: Runtime, victim: Victim, attacker: Caller) -> None:
        from guanxi.core.services import accounts
        from guanxi.core.services.tenant_plugins import set_plugin_settings

        b = victim.world.tenant_id
        async with runtime.transaction(RequestContext(tenant_id=b)) as tx:
            await accounts.save_account(tx, "chat", "b-main", settings={"handle": "B-handle"}, secrets={"api_key": "B-secret-key"})
            await set_plugin_settings(tx, "chat", {"greeting": "B-hello"})
        before = await snapshot(runtime, b)
        listed = await attacker("{ channelAccounts { key providerId settings secretFingerprints } }")
        assert listed["data"]["channelAccounts"] == []
        take = "mutation($i: ChannelAccountInput!) { saveChannelAccount(input: $i) { errors { code field } } }"
        same_key = await attacker(take, {"i": {"channel": "chat", "key": "b-main", "settings": {"handle": "mine"}}})
        assert same_key["data"]["saveChannelAccount"]["errors"] == [{"code": "CONFLICT", "field": "key"}]
        same_handle = await attacker(take, {"i": {"channel": "chat", "key": "a-main", "settings": {"handle": "B-handle"}}})
        assert same_handle["data"]["saveChannelAccount"]["errors"] == [{"code": "CONFLICT", "field": "settings.handle"}]
        gone = await attacker('mutation { deleteChannelAccount(channel: "chat", key: "b-main") { errors { code } } }')
        assert gone["data"]["deleteChannelAccount"]["errors"] == [{"code": "NOT_FOUND"}]
        mine = await attacker('mutation { setPluginSettings(plugin: "chat", settings: {greeting: "A-hi"}) { errors { code } } }')
        assert mine["data"]["setPluginSettings"]["errors"] == []
        view = await attacker('{ pluginSettings(plugin: "chat") { overrides effective } }')
        assert view["data"]["pluginSettings"] == {"overrides": {"greeting": "A-hi"}, "effective": {"greeting": "A-hi"}}
        await attacker('mutation { setPluginEnabled(plugin: "chat", enabled: false) { errors { code } } }')
        for body in (listed, same_key, same_handle, gone, view):
            no_leak(body)
        assert await snapshot(runtime, b) == before
        assert await runtime.plugin_enabled("chat", b)
        await runtime.tenant_plugins(b)
        assert runtime.plugin_settings("chat", b).greeting == "B-hello"
