"""A bulk send over WeCom follows WeCom's own policy, which comes from its adapter: each recipient
becomes a mass-send task (add_msg_template) from the staff member who follows them, through the
outbox, consent checked and the message on the timeline; automation imports nothing of WeCom."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import RequestContext, Runtime
from guanxi.core.domain.models import Interaction
from guanxi.core.queues import outbox, scheduler
from guanxi.core.services import consent, identities
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.wecom.models import WecomFollow
from tests.plugins.automation.conftest import Team, new_customer
from tests.plugins.wecom.conftest import corp_config, fake_wecom, wecom_server
from tests.plugins.wecom.fake_wecom import CORP_ID, FakeWecom

pytestmark = pytest.mark.plugins("automation", "wecom")
TEMPLATE = "/externalcontact/add_msg_template"
__all__ = ["fake_wecom", "wecom_server"]  # the WeCom tests' fake server fixtures


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    return {"wecom": {"api_base_url": fake_wecom.url, "backoff_s": 0.01, "max_retries": 2, "corps": [corp_config()]}}


async def wecom_customer(runtime: Runtime, tenant_id: uuid.UUID, name: str, external: str, follower: str) -> uuid.UUID:
    cid = await new_customer(runtime, tenant_id, name)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await identities.attach_identity(tx, cid, identities.IdentityInput(channel="wecom", external_id=external))
        tx.session.add(
            WecomFollow(
                corp_id=CORP_ID, external_userid=external, userid=follower, customer_id=cid, status="active", remark_mobiles=[], tag_ids=[]
            )
        )
    return cid


async def test_a_bulk_send_over_wecom_is_a_mass_send_task_per_recipient_from_their_follower(
    runtime: Runtime, tenant_id: uuid.UUID, team: Team, fake_wecom: FakeWecom
) -> None:
    han = await wecom_customer(runtime, tenant_id, "韩梅梅", "wmHAN", "lisi")
    li = await wecom_customer(runtime, tenant_id, "李雷", "wmLI", "wangwu")
    out = await wecom_customer(runtime, tenant_id, "Opted", "wmOUT", "lisi")
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await consent.set_consent(tx, out, "wecom", "opted_out")
    made = await team.call["admin"](
        'mutation($ids: [ID!]!) { createSegment(input: {key: "wx", name: "WX", kind: STATIC, customerIds: $ids}) { segment { id } } }',
        {"ids": [to_global_id("Customer", c) for c in (han, li, out)]},
    )
    seg = made["data"]["createSegment"]["segment"]["id"]
    body = await team.call["admin"](
        'mutation($seg: ID!) { createBulkSend(input: {name: "新品", segmentId: $seg, channel: "wecom", text: "新品到了"}) '
        "{ bulkSend { id status } errors { code message } } }",
        {"seg": seg},
    )
    send = body["data"]["createBulkSend"]
    assert send["errors"] == [] and send["bulkSend"]["status"] == "SENDING"
    await scheduler.run_once(runtime, tenant_id=tenant_id)
    await outbox.run_once(runtime, tenant_id=tenant_id)
    tasks = sorted((b["sender"], b["external_userid"], b["text"]["content"]) for b in fake_wecom.called(TEMPLATE))
    assert tasks == [("lisi", ["wmHAN"], "新品到了"), ("wangwu", ["wmLI"], "新品到了")]
    report = await team.call["admin"](
        "query($id: ID!) { bulkSend(id: $id) { figures { queued sent skippedByReason { code count } } } }", {"id": send["bulkSend"]["id"]}
    )
    assert report["data"]["bulkSend"]["figures"] == {"queued": 2, "sent": 2, "skippedByReason": [{"code": "NO_CONSENT", "count": 1}]}
    async with runtime.session(tenant_id) as s:
        timeline = set((await s.execute(select(Interaction.customer_id).where(Interaction.direction == "out"))).scalars())
    assert timeline == {han, li}
