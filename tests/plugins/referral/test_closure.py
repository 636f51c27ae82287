"""``referral_closure`` stays the transitive closure of the referral edges through every path
that writes attributions: arrivals (first and last touch), a later touch moving an inviter, an
invitee leaving within the reversal window, merges of customers and their undo, erasure.

A property test: hypothesis draws sequences of those writes over a handful of customers; after
each write the closure must equal the closure computed in Python from the edges (active
attributions with a customer inviter), and the edges must stay a forest."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConflictError, NotFoundError, ValidationError
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.merge import merge_customers
from guanxi.core.services.merge_undo import undo_merge
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.services.privacy import erase_customer
from guanxi.plugins.referral import attribution, ledger
from guanxi.plugins.referral.campaigns import mint_token
from guanxi.plugins.referral.models import ReferralAttribution, ReferralCampaign, ReferralClosure

pytestmark = pytest.mark.plugins("referral")

PEOPLE = 7
START = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)

person = st.integers(0, PEOPLE - 1)
operation = st.one_of(
    st.tuples(st.just("arrive"), person, person),
    st.tuples(st.just("arrive"), person, person),
    st.tuples(st.just("leave"), person),
    st.tuples(st.just("merge"), person, person),
    st.tuples(st.just("undo"), person),
    st.tuples(st.just("erase"), person),
)


def transitive_closure(edges: dict[uuid.UUID, uuid.UUID]) -> set[tuple[uuid.UUID, uuid.UUID, int]]:
    """(ancestor, descendant, steps) of a child -> inviter map; fails on a cycle."""
    out = set()
    for child in edges:
        node, steps, seen = child, 0, {child}
        while node in edges:
            node, steps = edges[node], steps + 1
            assert node not in seen, "the referral edges have a cycle"
            seen.add(node)
            out.add((node, child, steps))
    return out


class World:
    def __init__(self, runtime: Runtime, tenant_id: uuid.UUID, people: list[uuid.UUID], campaign: ReferralCampaign, model: str) -> None:
        self.runtime, self.tenant_id, self.people, self.campaign = runtime, tenant_id, people, campaign
        self.settings = msgspec.structs.replace(runtime.plugin_settings("referral", tenant_id), attribution_model=model, cooldown_hours=0.0)
        self.clock = START

    def ctx(self) -> RequestContext:
        return RequestContext(tenant_id=self.tenant_id)

    async def apply(self, op: tuple[Any, ...]) -> None:
        self.clock += dt.timedelta(hours=2)
        kind, *args = op
        who = [self.people[i] for i in args]
        try:
            async with self.runtime.transaction(self.ctx()) as tx:
                if kind == "arrive":
                    token = await mint_token(tx, self.campaign, customer_id=who[1])
                    arrival = attribution.Arrival(
                        customer_id=who[0], channel="pigeon", external_id=f"x{args[0]}", state=token.token,
                        new_customer=True, occurred_at=self.clock,
                    )  # fmt: skip
                    await attribution.attribute(tx, arrival, self.settings)
                elif kind == "leave":
                    found = await tx.session.get(ReferralAttribution, (self.tenant_id, who[0]))
                    if found is not None:
                        await ledger.reverse(tx, found, self.clock)
                elif kind == "merge":
                    await merge_customers(tx, who[0], who[1])
                elif kind == "undo":
                    await undo_merge(tx, who[0])
                else:
                    await erase_customer(tx, who[0])
        except (ValidationError, ConflictError, NotFoundError):
            pass  # refused (a tombstone, merged into itself, nothing to undo): nothing changed

    async def check(self) -> None:
        async with self.runtime.session(self.tenant_id) as s:
            rows = (
                await s.execute(
                    select(ReferralAttribution.customer_id, ReferralAttribution.inviter_customer_id).where(
                        ReferralAttribution.status == "active", ReferralAttribution.inviter_customer_id.is_not(None)
                    )
                )
            ).all()
            closure = set(
                (await s.execute(select(ReferralClosure.ancestor_id, ReferralClosure.descendant_id, ReferralClosure.depth))).all()
            )
        assert closure == transitive_closure({child: inviter for child, inviter in rows})


async def world(runtime: Runtime, model: str) -> World:
    async with runtime.write_session(None) as session:
        tid = await create_tenant(session, f"t-{secrets.token_hex(6)}", "Closure tenant")
    async with runtime.transaction(RequestContext(tenant_id=tid)) as tx:
        people = [(await create_customer(tx, CustomerInput(display_name=f"P{i}"))).id for i in range(PEOPLE)]
        campaign = ReferralCampaign(
            key="c", name="C", landing_url="https://shop.example.com", goal=2, reversal_days=100_000, reward_kind="points", reward_points=5
        )
        tx.session.add(campaign)
        await tx.session.flush()
    return World(runtime, tid, people, campaign, model)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=14), model=st.sampled_from(["first_touch", "last_touch"]))
async def test_the_closure_equals_the_transitive_closure_of_the_edges_after_any_writes(
    runtime: Runtime, ops: list[tuple[Any, ...]], model: str
) -> None:
    w = await world(runtime, model)
    for op in ops:
        await w.apply(op)
        await w.check()


async def test_a_subtree_moves_with_its_root_when_a_later_touch_changes_its_inviter(runtime: Runtime) -> None:
    """Under last touch, B (who brought C, who brought D) arrives again through E's link: C and D
    are now E's descendants at depths 2 and 3, and no longer A's."""
    w = await world(runtime, "last_touch")
    a, b, c, d, e = range(5)
    for op in (("arrive", b, a), ("arrive", c, b), ("arrive", d, c), ("arrive", b, e)):
        await w.apply(op)
    await w.check()
    async with runtime.session(w.tenant_id) as s:
        rows = (
            await s.execute(select(ReferralClosure.descendant_id, ReferralClosure.depth).where(ReferralClosure.ancestor_id == w.people[e]))
        ).all()
        from_a = (await s.execute(select(ReferralClosure.descendant_id).where(ReferralClosure.ancestor_id == w.people[a]))).all()
    assert sorted(rows, key=lambda r: r[1]) == [(w.people[b], 1), (w.people[c], 2), (w.people[d], 3)]
    assert from_a == []


async def test_undoing_a_merge_gives_the_merged_customer_back_its_invitees_and_its_inviter(runtime: Runtime) -> None:
    """A brought M; M brought X and Y; M is merged into S, then the merge is undone: M is A's
    referral again, with X and Y under it, and S has no referrals."""
    w = await world(runtime, "first_touch")
    a, m, x, y, s_ = range(5)
    for op in (("arrive", m, a), ("arrive", x, m), ("arrive", y, m), ("merge", s_, m)):
        await w.apply(op)
    await w.check()
    async with runtime.session(w.tenant_id) as s:
        under_s = set((await s.execute(select(ReferralClosure.descendant_id).where(ReferralClosure.ancestor_id == w.people[s_]))).scalars())
    assert under_s == {w.people[x], w.people[y]}
    await w.apply(("undo", m))
    await w.check()
    async with runtime.session(w.tenant_id) as s:
        under_a = set(
            (
                await s.execute(
                    select(ReferralClosure.descendant_id, ReferralClosure.depth).where(ReferralClosure.ancestor_id == w.people[a])
                )
            ).all()
        )
        under_s = set((await s.execute(select(ReferralClosure.descendant_id).where(ReferralClosure.ancestor_id == w.people[s_]))).scalars())
    assert under_a == {(w.people[m], 1), (w.people[x], 2), (w.people[y], 2)}
    assert under_s == set()
