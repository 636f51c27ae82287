"""Owner from the channel (issue 20 item 4): a customer who adds a staff member on WeCom gets
that member's Guanxi user as owner through ``guanxi_assign_owner``, unless a rule of another
plugin answers first; a member mapped to nobody leaves the customer unassigned."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from guanxi import Runtime, hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.contracts import Arrival
from guanxi.core.domain.models import Customer
from guanxi.core.services import users
from tests.plugins.wecom.conftest import Sender, event_xml, settle


class Rule:
    """A rule that says otherwise for customers arriving with the QR code state "vip"."""

    owner: uuid.UUID | None = None

    @hookimpl(tryfirst=True)
    def guanxi_assign_owner(self, arrival: Arrival | None) -> uuid.UUID | None:
        return self.owner if arrival is not None and arrival.payload.get("state") == "vip" else None


RULE = Rule()
pytestmark = pytest.mark.plugins("wecom", "rule")


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"rule": RULE}


async def test_a_customer_who_adds_a_mapped_member_is_that_users_unless_a_rule_says_otherwise(
    runtime: Runtime, tenant_id: uuid.UUID, sender: Sender
) -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        zhang = await users.create_user(tx, email="zhangsan@acme.example", name="张三", role="sales")
        boss = await users.create_user(tx, email="boss@acme.example", name="Boss", role="manager")
    RULE.owner = boss.id
    await sender.send(event_xml("add_external_contact", external="wmEXT001", userid="zhangsan"))
    await sender.send(event_xml("add_external_contact", external="wmEXT002", userid="zhangsan", State="vip"))
    await sender.send(event_xml("add_external_contact", external="wmEXT003", userid="nobody"))
    await settle(runtime, tenant_id)
    async with runtime.session(tenant_id) as s:
        rows = (await s.execute(select(Customer.display_name, Customer.owner_id))).all()
    owners = {name.removeprefix("wecom:"): owner for name, owner in rows}
    assert owners == {"wmEXT001": zhang.id, "wmEXT002": boss.id, "wmEXT003": None}
