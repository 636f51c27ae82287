"""Core services: customers, identities, interactions, stages, tags, tasks, merge."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.domain.models import AuditEvent, Customer, StageChange
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, identities, interactions, merge, tags, tasks


async def test_create_customer_normalises_contacts_and_starts_in_first_stage(runtime: Runtime, ctx: RequestContext) -> None:
    async with runtime.transaction(ctx) as tx:
        c = await customers.create_customer(
            tx, customers.CustomerInput(display_name="  张  三 ", phones=["138-0013 8000", "13800138000"], emails=["Zhang@Example.COM"])
        )
    assert c.display_name == "张 三"
    assert c.phones == ["13800138000"]
    assert c.emails == ["zhang@example.com"]
    async with runtime.session(ctx.tenant_id) as s:
        history = (await s.execute(select(StageChange).where(StageChange.customer_id == c.id))).scalars().all()
        assert [h.reason for h in history] == ["created"]
        audits = (await s.execute(select(AuditEvent.action).where(AuditEvent.object_id == c.id))).scalars().all()
        assert "customer.create" in audits


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phones", ["12ab"], "is not a phone number"),
        ("emails", ["nope"], "is not an email address"),
        ("display_name", "   ", "must not be empty"),
    ],
)
async def test_create_customer_rejects_bad_input_with_the_field_named(
    runtime: Runtime, ctx: RequestContext, field: str, value: object, message: str
) -> None:
    data = {"display_name": "Ann", field: value}
    with pytest.raises(ValidationError, match=message) as err:
        async with runtime.transaction(ctx) as tx:
            await customers.create_customer(tx, customers.CustomerInput(**data))  # type: ignore[arg-type]
    assert err.value.field in {"phones", "emails", "displayName"}


async def test_interaction_with_same_dedupe_key_is_recorded_once(runtime: Runtime, ctx: RequestContext) -> None:
    async with runtime.transaction(ctx) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="Ann"))
    for _ in range(3):
        async with runtime.transaction(ctx) as tx:
            await interactions.record_interaction(
                tx, interactions.InteractionInput(customer_id=c.id, channel="wecom", kind="message_in", text="hi", dedupe_key="evt-1")
            )
    async with runtime.session(ctx.tenant_id) as s:
        from guanxi.core.domain.models import Interaction

        assert (await s.execute(select(func.count()).select_from(Interaction))).scalar_one() == 1
        assert (await s.get(Customer, (ctx.tenant_id, c.id))).last_interaction_at is not None  # type: ignore[union-attr]


async def test_identity_resolution_matches_email_then_union_id_then_creates(runtime: Runtime, ctx: RequestContext) -> None:
    async with runtime.transaction(ctx) as tx:
        ann = await customers.create_customer(tx, customers.CustomerInput(display_name="Ann", emails=["ann@example.com"]))
        by_email, _, created = await identities.resolve_identity(
            tx, identities.IdentityInput(channel="email", external_id="ann@example.com", email="ANN@example.com", union_id="u-1")
        )
        assert (by_email.id, created) == (ann.id, False)
        by_union, _, created = await identities.resolve_identity(
            tx, identities.IdentityInput(channel="wecom", external_id="wm-1", union_id="u-1")
        )
        assert (by_union.id, created) == (ann.id, False)
        new, _, created = await identities.resolve_identity(
            tx, identities.IdentityInput(channel="douyin", external_id="dy-1", nickname="小红")
        )
        assert created and new.display_name == "小红" and new.source == "douyin"


async def test_identity_of_another_customer_cannot_be_attached(runtime: Runtime, ctx: RequestContext) -> None:
    async with runtime.transaction(ctx) as tx:
        a = await customers.create_customer(tx, customers.CustomerInput(display_name="A"))
        b = await customers.create_customer(tx, customers.CustomerInput(display_name="B"))
        await identities.attach_identity(tx, a.id, identities.IdentityInput(channel="wecom", external_id="x"))
        with pytest.raises(ConflictError, match="merge"):
            await identities.attach_identity(tx, b.id, identities.IdentityInput(channel="wecom", external_id="x"))


async def test_merge_moves_everything_and_leaves_a_tombstone_that_resolves_to_the_survivor(runtime: Runtime, ctx: RequestContext) -> None:
    async with runtime.transaction(ctx) as tx:
        a = await customers.create_customer(tx, customers.CustomerInput(display_name="A", phones=["13800000001"]))
        b = await customers.create_customer(tx, customers.CustomerInput(display_name="B", company="ACME", emails=["b@x.com"]))
        await identities.attach_identity(tx, b.id, identities.IdentityInput(channel="wecom", external_id="wb"))
        await interactions.record_interaction(tx, interactions.InteractionInput(customer_id=b.id, channel="wecom", kind="message_in"))
        await tags.change_tags(tx, b.id, add=["vip"])
        await tasks.create_task(tx, tasks.TaskInput(customer_id=b.id, title="call", due_at=dt.datetime.now(dt.UTC)))
    async with runtime.transaction(ctx) as tx:
        plan = await merge.merge_customers(tx, a.id, b.id, dry_run=True)
    assert (plan.identities, plan.interactions, plan.tags, plan.tasks) == (1, 1, 1, 1)
    async with runtime.transaction(ctx) as tx:
        still = await customers.get_customer(tx.session, b.id)
        assert still.id == b.id  # the dry run changed nothing
        await merge.merge_customers(tx, a.id, b.id)
    async with runtime.transaction(ctx) as tx:
        survivor = await customers.get_customer(tx.session, b.id)
        assert survivor.id == a.id
        assert survivor.company == "ACME" and survivor.emails == ["b@x.com"] and survivor.phones == ["13800000001"]
        with pytest.raises(ValidationError, match="already merged"):
            await merge.merge_customers(tx, a.id, b.id)


async def test_another_tenant_cannot_see_a_customer(runtime: Runtime, ctx: RequestContext) -> None:
    from guanxi.core.services.pipelines import create_tenant

    async with runtime.transaction(ctx) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="Secret"))
    async with runtime.session(None) as s, s.begin():
        other = await create_tenant(s, "other-" + str(ctx.tenant_id)[:8], "Other")
    async with runtime.transaction(RequestContext(tenant_id=other)) as tx:
        with pytest.raises(NotFoundError):
            await customers.get_customer(tx.session, c.id)
        assert (await tx.session.execute(select(func.count()).select_from(Customer))).scalar_one() == 0


async def test_event_hooks_fire_after_commit_only(database_url: str) -> None:
    from guanxi import hookimpl
    from guanxi.core.migrate import upgrade
    from guanxi.core.services.pipelines import create_tenant

    seen: list[str] = []

    class Recorder:
        @hookimpl
        async def guanxi_customer_created(self, event):  # type: ignore[no-untyped-def]
            seen.append(event.customer.display_name)

    rt = Runtime.from_config(
        environ={"GUANXI_DATABASE_URL": database_url, "GUANXI_PLUGINS": "recorder"}, extra_plugins={"recorder": Recorder()}
    )
    await upgrade(rt)
    try:
        async with rt.session(None) as s, s.begin():
            tid = await create_tenant(s, "hooks-" + str(id(seen)), "T")
        ctx = RequestContext(tenant_id=tid)
        with pytest.raises(RuntimeError):
            async with rt.transaction(ctx) as tx:
                await customers.create_customer(tx, customers.CustomerInput(display_name="Rolled back"))
                raise RuntimeError("boom")
        async with rt.transaction(ctx) as tx:
            await customers.create_customer(tx, customers.CustomerInput(display_name="Kept"))
        assert seen == ["Kept"]
    finally:
        await rt.stop()
