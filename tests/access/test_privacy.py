"""Personal-data rights: export everything held on a person, erase it everywhere, keep the counts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import ForeignKeyConstraint, String, Text, inspect, select, text, update
from sqlalchemy.orm import Mapped, mapped_column

from guanxi.cli import build_cli
from guanxi.core.domain.models import PERSONAL, Base, Customer, CustomerOwned, InboxEvent, OutboxMessage, TenantScoped
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.ids import to_global_id
from guanxi.testing.plugin import GraphQL
from tests.access.conftest import World, seed_world


class DiaryEntry(CustomerOwned, TenantScoped, Base):
    """A test plugin's table holding personal data (a salesperson's diary about a customer)."""

    __tablename__ = "diary_entries"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID]
    note: Mapped[str | None] = mapped_column(Text, info=PERSONAL)


class LeakyNote(TenantScoped, Base):
    """A table of a plugin that stores personal data and implements neither hook."""

    __tablename__ = "leaky_notes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    wechat_id: Mapped[str] = mapped_column(String(64), info=PERSONAL)


class DiaryPlugin:
    @hookimpl
    async def guanxi_export_customer_data(self, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
        notes = (await session.scalars(select(DiaryEntry.note).where(DiaryEntry.customer_id == customer_id))).all()
        return {"entries": list(notes)} if notes else None

    @hookimpl
    async def guanxi_erase_customer(self, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
        result = await session.execute(
            update(DiaryEntry).where(DiaryEntry.customer_id == customer_id, DiaryEntry.note.is_not(None)).values(note=None)
        )
        return {"entries": result.rowcount}  # type: ignore[attr-defined]


class LeakyPlugin:
    @hookimpl
    def guanxi_startup(self) -> None:
        return None


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"diary": DiaryPlugin(), "leaky": LeakyPlugin()}


@pytest.fixture
async def world(runtime: Runtime, tenant_id: uuid.UUID) -> World:
    async with runtime.engine.begin() as conn:
        await conn.run_sync(lambda c: DiaryEntry.__table__.create(c, checkfirst=True))  # type: ignore[attr-defined]
    w = await seed_world(runtime, tenant_id)
    async with runtime.write_session(tenant_id) as s:
        ann = await s.get(Customer, (tenant_id, w.customers["ann"]))
        assert ann is not None
        s.add(DiaryEntry(customer_id=ann.id, note="ann's client hates cold calls"))
        s.add(
            OutboxMessage(customer_id=ann.id, channel="wecom", recipient="wm-ann", text="your contract, Mr Customer", idempotency_key="m1")
        )
        # a raw provider payload that was never linked to the customer (it failed before resolution)
        s.add(InboxEvent(channel="wecom", provider_event_id="e1", status="failed", event={"from": ann.phones[0], "text": "hello"}))
    return w


async def personal_strings(runtime: Runtime, w: World) -> list[str]:
    async with runtime.session(w.tenant_id) as s:
        ann = await s.get(Customer, (w.tenant_id, w.customers["ann"]))
        assert ann is not None
        return [
            ann.display_name,
            *ann.phones,
            *ann.emails,
            "secret note of ann",
            "ann nick",
            "wm-ann",
            "hates cold calls",
            "Mr Customer",
            "call ann",
        ]


async def every_row_of_the_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, str]:
    """Each tenant-owned table's rows of the tenant, as text (what a database dump would show)."""
    out = {}
    async with runtime.engine.connect() as conn:
        existing = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        for table in Base.metadata.sorted_tables:
            if "tenant_id" not in table.c or table.name not in existing:
                continue
            rows = (
                await conn.execute(
                    text(f"SELECT * FROM {table.name} WHERE tenant_id = :t"),
                    {"t": tenant_id if conn.dialect.name == "postgresql" else tenant_id.hex},
                )
            ).all()
            out[table.name] = repr([tuple(r) for r in rows])
    return out


async def funnel(graphql: GraphQL) -> Any:
    return (await graphql("{ funnel { steps { stage { key } current reached } } customers { totalCount } }"))["data"]


@pytest.mark.plugins("diary")
async def test_erasure_removes_the_person_from_every_table_and_keeps_the_counts(runtime: Runtime, world: World, graphql: GraphQL) -> None:
    needles = await personal_strings(runtime, world)
    before_rows = await every_row_of_the_tenant(runtime, world.tenant_id)
    assert any(n in dump for dump in before_rows.values() for n in needles)  # the scan sees them before
    before = await funnel(graphql)
    body = await graphql(
        "mutation($id: ID!) { eraseCustomer(id: $id) { erased customer { displayName phones emails } errors { code } } }",
        {"id": to_global_id("Customer", world.customers["ann"])},
    )
    payload = body["data"]["eraseCustomer"]
    assert payload["customer"] == {"displayName": "Erased customer", "phones": [], "emails": []}
    assert payload["erased"]["diary.entries"] == 1 and payload["erased"]["interactions"] == 1 and payload["erased"]["inbox_events"] == 1
    after_rows = await every_row_of_the_tenant(runtime, world.tenant_id)
    leaks = {(table, n) for table, dump in after_rows.items() for n in needles if n in dump}
    assert leaks == set()
    assert await funnel(graphql) == before
    trail = (await graphql('{ auditEvents(action: "customer.erase") { objectId changes } }'))["data"]["auditEvents"]
    assert trail[0]["objectId"] == to_global_id("Customer", world.customers["ann"]) and trail[0]["changes"]["erased"]["customers"] == 1
    other = await graphql("query($id: ID!) { customer(id: $id) { displayName } }", {"id": to_global_id("Customer", world.customers["bo"])})
    assert other["data"]["customer"]["displayName"] == "Customer of bo"  # nobody else is touched


@pytest.mark.plugins("diary")
async def test_export_holds_core_data_and_each_plugins_section(world: World, graphql: GraphQL) -> None:
    data = (await graphql("query($id: ID!) { exportCustomerData(id: $id) }", {"id": to_global_id("Customer", world.customers["ann"])}))[
        "data"
    ]
    export = data["exportCustomerData"]
    assert export["customer"]["displayName"] == "Customer of ann" and export["customer"]["emails"] == ["ann.client@mail.cn"]
    assert [i["externalId"] for i in export["identities"]] == ["wm-ann"]
    assert [i["text"] for i in export["interactions"]] == ["secret note of ann"]
    assert export["tags"] == ["vip/ann"] and [t["title"] for t in export["tasks"]] == ["call ann's client"]
    assert [m["text"] for m in export["messages"]] == ["your contract, Mr Customer"]
    assert export["stageHistory"][0]["to"] == "lead"
    assert export["plugins"] == {"diary": {"entries": ["ann's client hates cold calls"]}}


@pytest.mark.plugins("diary", "leaky")
def test_plugins_check_reports_a_plugin_storing_personal_data_without_the_hooks(runtime: Runtime) -> None:
    result = CliRunner().invoke(build_cli(runtime), ["plugins", "--check"], obj=runtime)
    assert result.exit_code == 1
    expected = "plugin 'leaky' stores personal data (leaky_notes.wechat_id) but does not implement "
    assert expected + "guanxi_export_customer_data, guanxi_erase_customer" in result.output
    assert "diary" not in result.output


@pytest.mark.plugins("diary")
def test_plugins_check_passes_when_every_plugin_can_export_and_erase(runtime: Runtime) -> None:
    result = CliRunner().invoke(build_cli(runtime), ["plugins", "--check"], obj=runtime)
    assert result.exit_code == 0 and result.output.startswith("ok:")


@pytest.mark.plugins("diary")
async def test_erasing_an_erased_customer_again_reports_zero_everywhere_but_erases_what_came_since(
    runtime: Runtime, world: World, graphql: GraphQL
) -> None:
    erase = "mutation($id: ID!) { eraseCustomer(id: $id) { erased errors { code message } } }"
    ann = to_global_id("Customer", world.customers["ann"])
    first = (await graphql(erase, {"id": ann}))["data"]["eraseCustomer"]
    assert first["errors"] == [] and first["erased"]["customers"] == 1 and first["erased"]["interactions"] == 1
    again = (await graphql(erase, {"id": ann}))["data"]["eraseCustomer"]
    assert again["errors"] == [] and again["erased"] and set(again["erased"].values()) == {0}, again["erased"]
    recorded = await graphql(
        'mutation($c: ID!) { recordInteraction(input: {customerId: $c, channel: "web", kind: "note", text: "call me"}) { created } }',
        {"c": ann},
    )
    assert recorded["data"]["recordInteraction"]["created"] is True
    third = (await graphql(erase, {"id": ann}))["data"]["eraseCustomer"]["erased"]
    assert third["interactions"] == 1 and {k: v for k, v in third.items() if k not in ("interactions", "audit_events")} == {
        k: 0 for k in third if k not in ("interactions", "audit_events")
    }
