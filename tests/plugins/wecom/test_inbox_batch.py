"""WeCom events in a batch of the inbox: the plugin's work for a batch (corp accounts, staff
mappings, follow rows, owners) costs a fixed number of statements, not some per event."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer
from guanxi.core.queues import inbox
from guanxi.core.services import users
from guanxi.plugins.wecom import callbacks
from guanxi.plugins.wecom.models import WecomFollow, WecomStaff
from guanxi.testing.sql import count_statements
from tests.plugins.wecom.conftest import corp_config, event_xml
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

pytestmark = pytest.mark.plugins("wecom")


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    # no profile fetch after the commit: only the batch's own statements are counted
    return {"wecom": {"api_base_url": fake_wecom.url, "fetch_profiles": False, "corps": [corp_config()]}}


async def _ingest(runtime: Runtime, tenant_id: uuid.UUID, externals: list[str], userid: str = "zhangsan") -> None:
    for n, external in enumerate(externals):
        xml = event_xml("add_external_contact", external=external, userid=userid, create_time=1765000000 + n, State="fair")
        await inbox.ingest(runtime, tenant_id, callbacks.to_inbound(CORP_ID, callbacks.parse_xml(xml)))


async def _statements_of_one_batch(runtime: Runtime, tenant_id: uuid.UUID, expected: int) -> list[str]:
    with count_statements(runtime.engine) as seen:
        assert await inbox.run_once(runtime, tenant_id=tenant_id, limit=100) == expected
    return [s for s in seen if not s.lstrip().startswith(("SELECT tenants.", "SELECT tenant_plugins."))]


async def test_a_batch_of_new_wecom_contacts_costs_the_same_statements_whatever_its_size(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Per batch, besides core's (see tests/core/test_inbox_batch.py): the corp accounts (read
    and unsealed once per transaction), the staff mappings and the follow rows the events name
    (``guanxi_inbound_prefetch``: one statement each), the owner the staff mapping gives (read
    once) and one multi-row INSERT of the new follow rows. Before: 16 statements per new contact
    (the corps read twice, the staff mapping twice, the follow row looked up, inserted, read back
    and updated, and core's 8 of a new person)."""
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        zhang = await users.create_user(tx, email="zhangsan@acme.example", name="张三", role="sales")
    await _ingest(runtime, tenant_id, ["wmWARM"])
    await inbox.run_once(runtime, tenant_id=tenant_id)  # the member's mapping is remembered
    counts = {}
    for n in (4, 8):
        await _ingest(runtime, tenant_id, [f"wm{n}x{i}" for i in range(n)])
        counts[n] = await _statements_of_one_batch(runtime, tenant_id, n)
    assert len(counts[8]) == len(counts[4])
    # core: claim, rows, accounts, dedupe keys, pipeline, stage, customers, audit rows,
    # identities, stage history, interactions, last interaction times, done marks; WeCom: corp
    # accounts, staff mappings, follow rows, the owner (checked active once per batch), the new
    # follow rows
    assert len(counts[4]) == 13 + 5, counts[4]
    async with runtime.session(tenant_id) as s:
        owners = set((await s.execute(select(Customer.owner_id))).scalars())
        follows = (await s.execute(select(WecomFollow.status, WecomFollow.state, WecomFollow.arrived_at))).all()
        staff = (await s.execute(select(WecomStaff.userid, WecomStaff.user_id))).all()
    assert owners == {zhang.id}  # each new customer is the mapped member's user's
    assert len(follows) == 13 and all(st == "active" and state == "fair" and at is not None for st, state, at in follows)
    assert staff == [("zhangsan", zhang.id)]


async def test_an_add_and_a_removal_of_one_contact_in_one_batch_end_as_one_removed_follow_row(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """The batch's follow row created by the first event is the one the second event changes."""
    for n, change in enumerate(["add_external_contact", "del_follow_user"]):
        xml = event_xml(change, external="wmTWICE", userid="lisi", create_time=1765000000 + n)
        await inbox.ingest(runtime, tenant_id, callbacks.to_inbound(CORP_ID, callbacks.parse_xml(xml)))
    assert await inbox.run_once(runtime, tenant_id=tenant_id, limit=10) == 2
    async with runtime.session(tenant_id) as s:
        follows = (await s.execute(select(WecomFollow.status, WecomFollow.removed_at))).all()
        customers = (await s.execute(select(Customer.id))).scalars().all()
    assert len(customers) == 1 and len(follows) == 1 and follows[0][0] == "removed_staff" and follows[0][1] is not None


async def test_the_batch_finds_staff_and_follow_rows_by_their_key_not_the_tenant(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """The prefetch names the corp with ``=`` and the member / contact with ``IN``, a range of
    each table's key: the tuple ``IN (VALUES …)`` it sent before walked every staff and follow row
    of the tenant on SQLite, so a WeCom batch cost more as the tenant grew."""
    from tests.core.test_lookup_plans import plans

    await _ingest(runtime, tenant_id, ["wmPLAN1", "wmPLAN2"])

    async def drain() -> None:
        while await inbox.run_once(runtime, tenant_id=tenant_id):
            pass

    staff = await plans(runtime, "SELECT wecom_staff.", drain)
    await _ingest(runtime, tenant_id, ["wmPLAN3"])
    follows = await plans(runtime, "SELECT wecom_follows.", drain)
    for plan in staff:
        assert "(tenant_id=? AND corp_id=? AND userid=?)" in plan, plan
    for plan in follows:
        assert "(tenant_id=? AND corp_id=? AND external_userid=?)" in plan, plan
