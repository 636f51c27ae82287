"""The referral graph: who brought whom, any depth, in one recursive SQL query each.

Every query here is a single ``WITH RECURSIVE`` statement (SQLite and PostgreSQL). Each person
has at most one inviter (one attribution row per customer) and attribution refuses cycles, so
the graph is a forest; the depth bound stops the recursion in any case. Only ``active``
attributions are edges: an invitee who left within the reversal window is no referral.
ORM attributes are selected so that the tenant filter of :mod:`guanxi.core.storage.tenancy` applies.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, Select, and_, case, func, literal, literal_column, or_, select
from sqlalchemy.orm import aliased

from guanxi.core.domain.models import Customer, Stage
from guanxi.core.services.queries import CUSTOMER_COLUMNS
from guanxi.plugins.referral.models import ReferralAttribution

A = ReferralAttribution
#: How far up a cycle check looks: the whole chain in practice (a bound only against bad data).
ANCESTOR_LIMIT = 1000


def descendants(roots: Sequence[uuid.UUID], max_depth: int, *, name: str = "referral_tree") -> CTE:
    """A recursive CTE of ``(root, id, depth)``: everyone brought in by each root, directly
    (depth 1) or through others, down to ``max_depth``."""
    seed = select(A.inviter_customer_id.label("root"), A.customer_id.label("id"), literal(1).label("depth")).where(
        A.inviter_customer_id.in_(list(roots)), A.status == "active"
    )
    tree = seed.cte(name, recursive=True)
    child = aliased(A, name="child")
    step = (
        select(tree.c.root, child.customer_id, tree.c.depth + 1)
        .join(tree, child.inviter_customer_id == tree.c.id)
        .where(child.status == "active", tree.c.depth < max_depth)
    )
    return tree.union_all(step)


def ancestors(start: uuid.UUID, max_depth: int) -> CTE:
    """A recursive CTE of ``(id, depth)``: the inviter of ``start`` (depth 1), their inviter,
    and so on (customers only)."""
    seed = select(A.inviter_customer_id.label("id"), literal(1).label("depth")).where(
        A.customer_id == start, A.inviter_customer_id.is_not(None), A.status == "active"
    )
    up = seed.cte("referral_up", recursive=True)
    parent = aliased(A, name="parent")
    step = (
        select(parent.inviter_customer_id, up.c.depth + 1)
        .join(up, parent.customer_id == up.c.id)
        .where(parent.inviter_customer_id.is_not(None), parent.status == "active", up.c.depth < max_depth)
    )
    return up.union_all(step)


async def would_cycle(session: Any, invitee: uuid.UUID, inviter: uuid.UUID) -> bool:
    """Whether making ``inviter`` the inviter of ``invitee`` closes a loop: the invitee is the
    inviter or one of the inviter's ancestors (one query)."""
    if invitee == inviter:
        return True
    up = ancestors(inviter, ANCESTOR_LIMIT)
    found = await session.execute(select(up.c.id).where(up.c.id == invitee).limit(1))
    return found.first() is not None


def referrals_page(root: uuid.UUID, depth: int, size: int, after: tuple[int, uuid.UUID] | None) -> Select[Any]:
    """One page of a customer's referrals down to ``depth``, ordered by depth then customer id
    (UUIDv7: arrival order), keyset-paginated after ``(depth, id)``; ``size + 1`` rows tell
    whether there is a next page.

    The tree's ids are ordered and cut to the page first; only the page's rows are then joined to
    their customers and attributions (joining every descendant first, then sorting the wide rows,
    cost twice as much for an inviter with thousands of descendants)."""
    tree = descendants([root], depth)
    # the limit written into the SQL (an int): SQLite then plans the page as the small driving
    # table; as a bound parameter it scanned every customer of the tenant against the page
    page = select(tree.c.id, tree.c.depth).order_by(tree.c.depth, tree.c.id).limit(literal_column(str(int(size) + 1)))
    if after is not None:
        d, last = after
        page = page.where(or_(tree.c.depth > d, and_(tree.c.depth == d, tree.c.id > last)))
    cut = page.subquery("referral_page")
    return (
        select(*CUSTOMER_COLUMNS, cut.c.depth.label("referral_depth"), A.channel.label("referral_channel"), A.first_at.label("referred_at"))
        .select_from(cut)
        .join(Customer, Customer.id == cut.c.id)
        .join(A, A.customer_id == cut.c.id)
        .order_by(cut.c.depth, cut.c.id)
    )


def stats_query(roots: Sequence[uuid.UUID], max_depth: int, converted_stage: str) -> Select[Any]:
    """Per root: ``direct`` (depth 1), ``indirect`` (deeper) and ``converted`` (any depth, in
    the configured stage) referrals, in one statement."""
    tree = descendants(roots, max_depth)
    converted = case((Stage.key == converted_stage, 1), else_=0)
    return (
        select(
            tree.c.root,
            func.sum(case((tree.c.depth == 1, 1), else_=0)).label("direct"),
            func.sum(case((tree.c.depth > 1, 1), else_=0)).label("indirect"),
            func.sum(converted).label("converted"),
            func.sum(case((tree.c.depth == 1, converted), else_=0)).label("converted_direct"),
        )
        .select_from(tree)
        .join(Customer, Customer.id == tree.c.id)
        .outerjoin(Stage, and_(Stage.tenant_id == Customer.tenant_id, Stage.id == Customer.stage_id))
        .group_by(tree.c.root)
    )


class Stats:
    __slots__ = ("converted", "converted_direct", "direct", "indirect")

    def __init__(self, direct: int = 0, indirect: int = 0, converted: int = 0, converted_direct: int = 0) -> None:
        self.direct, self.indirect, self.converted, self.converted_direct = direct, indirect, converted, converted_direct


async def stats_of(session: Any, roots: Sequence[uuid.UUID], max_depth: int, converted_stage: str) -> dict[uuid.UUID, Stats]:
    if not roots:
        return {}
    rows = (await session.execute(stats_query(roots, max_depth, converted_stage))).all()
    return {r.root: Stats(int(r.direct), int(r.indirect), int(r.converted), int(r.converted_direct)) for r in rows}
