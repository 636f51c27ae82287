"""The demo loader: deterministic, idempotent with ``if_empty``, and its rows keep the invariants
the services keep (stage history, contact points, search text, interaction times)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import secrets
import uuid
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi.core.base.errors import ConflictError
from guanxi.core.domain.models import (
    AuditEvent,
    Consent,
    ContactPoint,
    Customer,
    CustomerTag,
    Identity,
    Interaction,
    Stage,
    StageChange,
    Tag,
    Task,
    User,
)
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import search_text
from guanxi.core.services.queries import funnel
from guanxi.demo.generator import DemoSummary, load_demo

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
CJK = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


def _slug() -> str:
    return f"demo-{secrets.token_hex(5)}"


async def _fingerprint(runtime: Runtime, tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """Everything about the generated customers except row ids."""
    async with runtime.session(tenant_id) as s:
        stage_key = dict((await s.execute(select(Stage.id, Stage.key))).all())
        owner_email = dict((await s.execute(select(User.id, User.email))).all())
        counts = dict((await s.execute(select(Interaction.customer_id, func.count()).group_by(Interaction.customer_id))).all())
        texts: dict[uuid.UUID, list[str]] = defaultdict(list)
        for cid, text in await s.execute(select(Interaction.customer_id, Interaction.text).order_by(Interaction.occurred_at)):
            texts[cid].append(text or "")
        rows = (await s.execute(select(Customer))).scalars().all()
        return sorted(
            (
                c.display_name, c.company, tuple(c.phones), tuple(c.emails), c.source, stage_key.get(c.stage_id),  # type: ignore[arg-type]
                owner_email.get(c.owner_id), c.created_at, c.last_interaction_at, counts.get(c.id, 0), tuple(texts[c.id]), c.search_text,  # type: ignore[arg-type]
            )
            for c in rows
        )  # fmt: skip


async def test_demo_is_deterministic_for_a_seed_and_differs_between_seeds(runtime: Runtime) -> None:
    a = await load_demo(runtime, slug=_slug(), customers=60, seed=7, now=NOW)
    b = await load_demo(runtime, slug=_slug(), customers=60, seed=7, now=NOW)
    c = await load_demo(runtime, slug=_slug(), customers=60, seed=8, now=NOW)
    assert a.tenant_id != b.tenant_id
    assert (a.customers, a.interactions, a.identities, a.tasks) == (b.customers, b.interactions, b.identities, b.tasks)
    fa, fb, fc = [await _fingerprint(runtime, s.tenant_id) for s in (a, b, c)]
    assert fa == fb
    assert fa != fc


async def test_if_empty_loads_once_and_then_changes_nothing(runtime: Runtime) -> None:
    slug = _slug()
    first = await load_demo(runtime, slug=slug, customers=20, if_empty=True)
    assert first.loaded and first.tenant_created and first.customers == 20
    again = await load_demo(runtime, slug=slug, customers=20, if_empty=True)
    assert isinstance(again, DemoSummary)
    assert (again.loaded, again.tenant_created, again.customers, again.tenant_id) == (False, False, 0, first.tenant_id)
    assert "already has 20 customers" in again.message
    async with runtime.session(first.tenant_id) as s:
        assert (await s.execute(select(func.count()).select_from(Customer))).scalar_one() == 20
        assert (await s.execute(select(func.count()).select_from(User))).scalar_one() == 8
    with pytest.raises(ConflictError, match="already has 20 customers"):
        await load_demo(runtime, slug=slug, customers=20)


async def test_demo_fills_an_existing_empty_tenant_and_reuses_its_users(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    from guanxi.core.base.context import RequestContext
    from guanxi.core.domain.models import Tenant
    from guanxi.core.services.users import create_user
    from guanxi.core.storage.tenancy import unscoped

    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await create_user(tx, email="wang.lei@demo.guanxi.dev", name="王磊", role="sales")
    async with runtime.session(None) as s, unscoped(s):
        slug = (await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one()
    summary = await load_demo(runtime, slug=slug, customers=10)
    assert (summary.tenant_id, summary.tenant_created, summary.users) == (tenant_id, False, 7)


async def test_demo_rows_keep_the_service_invariants_and_look_like_a_real_funnel(runtime: Runtime) -> None:
    summary = await load_demo(runtime, slug=_slug(), customers=300, seed=7, now=NOW)
    assert summary.loaded and summary.customers == 300
    async with runtime.session(summary.tenant_id) as s:
        customers = (await s.execute(select(Customer))).scalars().all()
        stages = {st.id: st for st in (await s.execute(select(Stage))).scalars()}
        history: dict[uuid.UUID, list[StageChange]] = defaultdict(list)
        for ch in (await s.execute(select(StageChange).order_by(StageChange.changed_at, StageChange.id))).scalars():
            history[ch.customer_id].append(ch)
        points: dict[uuid.UUID, set[tuple[str, str]]] = defaultdict(set)
        for cp in (await s.execute(select(ContactPoint))).scalars():
            points[cp.customer_id].add((cp.kind, cp.value))
        times: dict[uuid.UUID, list[dt.datetime]] = defaultdict(list)
        for cid, at in await s.execute(select(Interaction.customer_id, Interaction.occurred_at)):
            times[cid].append(at)
        identities = (await s.execute(select(Identity))).scalars().all()
        nicknames: dict[uuid.UUID, list[str]] = defaultdict(list)
        for ident in identities:
            if ident.nickname:
                nicknames[ident.customer_id].append(ident.nickname)
        users = (await s.execute(select(User))).scalars().all()
        tags = {(t.group_name, t.name) for t in (await s.execute(select(Tag))).scalars()}
        tagged = (await s.execute(select(func.count()).select_from(CustomerTag))).scalar_one()
        tasks = (await s.execute(select(Task))).scalars().all()
        consents = (await s.execute(select(Consent))).scalars().all()
        kinds = set((await s.execute(select(Interaction.kind).distinct())).scalars())
        purchases = (await s.execute(select(Interaction.payload).where(Interaction.kind == "purchase"))).scalars().all()
        steps = {step.key: step for step in await funnel(s)}
        audits = (await s.execute(select(AuditEvent.action))).scalars().all()

    # staff: eight users, sales in two teams
    assert len(users) == 8
    assert {u.role for u in users} >= {"admin", "manager", "marketing", "sales", "service"}
    assert len({u.team for u in users if u.role == "sales"}) == 2
    sales = {u.id for u in users if u.role == "sales"}

    for c in customers:
        chain = history[c.id]
        assert c.stage_id is not None and chain, c.display_name
        assert chain[-1].to_stage_id == c.stage_id  # the latest change leads to the current stage
        assert chain[0].from_stage_id is None and chain[0].changed_at == c.created_at
        assert all(later.from_stage_id == earlier.to_stage_id for earlier, later in itertools.pairwise(chain))
        positions = [stages[ch.to_stage_id].position for ch in chain]
        assert positions == sorted(positions)  # the pipeline is walked in order
        assert points[c.id] == {("phone", p) for p in c.phones} | {("email", e) for e in c.emails}
        assert times[c.id] and c.last_interaction_at == max(times[c.id])
        assert c.created_at < min(times[c.id]) <= NOW
        # the nicknames in any order: the rows come back in whatever order the planner reads them
        assert c.search_text in {search_text(c, list(p)) for p in itertools.permutations(nicknames[c.id])}
        assert c.owner_id is None or c.owner_id in sales
        assert all(p.startswith("+") for p in c.phones)

    names = [c.display_name for c in customers]
    assert sum(bool(CJK.match(n)) for n in names) > 150
    assert sum(n.isascii() for n in names) > 40
    assert any(p.startswith("+861") for c in customers for p in c.phones)
    assert any(not p.startswith("+86") for c in customers for p in c.phones)
    assert {c.source for c in customers} == {"wecom", "douyin", "email", "referral", "web", "event"}

    # funnel-shaped: fewer customers get each step further
    reached = [steps[k].reached for k in ("lead", "mql", "sql", "opportunity", "won")]
    assert reached[0] == 300 and all(a > b > 0 for a, b in itertools.pairwise(reached))
    assert all(steps[k].current > 0 for k in ("lead", "mql", "sql", "opportunity", "won", "lost", "retained", "churned"))

    # identities on several channels, shared union ids, a few influencers
    assert {i.channel for i in identities} == {"wecom", "douyin", "email"}
    assert all(i.external_id.startswith("wm") for i in identities if i.channel == "wecom")
    union_channels: dict[str, set[str]] = defaultdict(set)
    for i in identities:
        if i.union_id:
            union_channels[i.union_id].add(i.channel)
    assert union_channels and all(chs == {"wecom", "douyin"} for chs in union_channels.values())
    assert any((i.follower_count or 0) >= 100_000 for i in identities)

    # timeline, tags, tasks, consents
    assert kinds >= {"message_in", "message_out", "comment", "follow", "scan", "email_open", "click", "purchase", "note", "call", "visit"}
    assert purchases and all(p["amount"] > 0 for p in purchases)
    assert {("行业", "教育"), ("行业", "零售"), ("意向", "高"), ("意向", "中"), ("", "vip"), ("", "流失风险")} <= tags
    assert tagged > 300
    assert any(t.done_at is None and t.due_at is not None and t.due_at < NOW for t in tasks)  # overdue
    assert any(t.done_at is not None for t in tasks)
    assert any(c.channel == "email" and c.status == "opted_out" for c in consents)
    assert audits == ["demo.load"]


async def test_demo_customers_are_graded_a_b_c_through_the_grade_custom_field(runtime: Runtime) -> None:
    """The demo defines the single-choice field `grade` and grades every customer with a stage:
    the won and retained ones A; all three grades occur and can be filtered on."""
    from guanxi.core.services import fields

    summary = await load_demo(runtime, slug=_slug(), customers=120, seed=7, now=NOW)
    assert summary.graded == 120
    async with runtime.session(summary.tenant_id) as s:
        grade = await fields.get_field(s, "grade")
        assert grade.kind == "single_choice" and grade.choices == ["A", "B", "C"]
        values = await fields.field_values_of(s, (await s.execute(select(Customer.id))).scalars().all())
        stages = {st.id: st for st in (await s.execute(select(Stage))).scalars()}
        by_customer = {c.id: c for c in (await s.execute(select(Customer))).scalars()}
    letters = {cid: dict((d.key, v) for d, v in found)["grade"] for cid, found in values.items()}
    assert set(letters.values()) == {"A", "B", "C"}
    for cid, letter in letters.items():
        won = stages[by_customer[cid].stage_id].category in ("won", "retained")
        assert (letter == "A") == won
