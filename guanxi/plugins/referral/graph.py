"""The referral graph: who brought whom, any depth.

Each person has at most one inviter (one attribution row per customer) and attribution refuses
cycles, so the graph is a forest. Only ``active`` attributions with a customer inviter are edges:
an invitee who left within the reversal window is no referral. Trees, counts and the cycle check
read ``referral_closure`` (:mod:`guanxi.plugins.referral.closure` keeps it): a customer's tree
down to ``depth`` is one range of its primary key, ordered as the page is.

An ownership-limited caller (a salesperson) sees a tree only as far as the customers they may
see: a descendant reached through someone else's customer is not theirs to count. That view walks
the attributions with one ``WITH RECURSIVE`` statement (the owner predicate applies to every
step), as before the closure; sales trees are small.
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
from guanxi.plugins.referral.models import ReferralAttribution, ReferralClosure

A = ReferralAttribution
C = ReferralClosure


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


async def would_cycle(session: Any, invitee: uuid.UUID, inviter: uuid.UUID) -> bool:
    """Whether making ``inviter`` the inviter of ``invitee`` closes a loop: the invitee is the
    inviter or one of the inviter's ancestors (one lookup in the closure)."""
    if invitee == inviter:
        return True
    found = await session.execute(select(C.depth).where(C.ancestor_id == invitee, C.descendant_id == inviter).limit(1))
    return found.first() is not None


def _tree(roots: Sequence[uuid.UUID], max_depth: int, limited: bool) -> Any:
    """``(root, id, depth)`` rows of the trees of ``roots``: the closure, or for an
    ownership-limited caller the recursive walk that stops at customers they may not see."""
    if limited:
        return descendants(roots, max_depth)
    return (
        select(C.ancestor_id.label("root"), C.descendant_id.label("id"), C.depth.label("depth"))
        .where(C.ancestor_id.in_(list(roots)), C.depth <= max_depth)
        .subquery("referral_tree")
    )


def referrals_page(root: uuid.UUID, depth: int, size: int, after: tuple[int, uuid.UUID] | None, *, limited: bool = False) -> Select[Any]:
    """One page of a customer's referrals down to ``depth``, ordered by depth then customer id
    (UUIDv7: arrival order), keyset-paginated after ``(depth, id)``; ``size + 1`` rows tell
    whether there is a next page.

    The tree's ids are ordered and cut to the page first; only the page's rows are then joined to
    their customers and attributions (joining every descendant first, then sorting the wide rows,
    cost twice as much for an inviter with thousands of descendants). From the closure, the page
    is a range of its primary key ``(tenant, ancestor, depth, descendant)`` read in order."""
    tree = _tree([root], depth, limited)
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


def stats_query(roots: Sequence[uuid.UUID], max_depth: int, converted_stage: str, *, limited: bool = False) -> Select[Any]:
    """Per root: ``direct`` (depth 1), ``indirect`` (deeper) and ``converted`` (any depth, in
    the configured stage) referrals, in one statement."""
    tree = _tree(roots, max_depth, limited)
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
    limited = getattr(session, "owners", None) is not None
    rows = (await session.execute(stats_query(roots, max_depth, converted_stage, limited=limited))).all()
    return {r.root: Stats(int(r.direct), int(r.indirect), int(r.converted), int(r.converted_direct)) for r in rows}
