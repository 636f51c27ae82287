"""Keeping ``referral_closure`` equal to the transitive closure of the referral forest.

An edge is an attribution that is ``active`` and has a customer inviter. Every code path that
changes edges (attribution, a later touch under last-touch, an invitee leaving, a merge and its
undo) wraps its change in :func:`rewiring` with the customers whose own attribution (their edge
to their inviter) it may change, in the same transaction:

1. before the change, each of them is cut from its ancestors: every (ancestor of X,
   X or a descendant of X) pair goes (:func:`detach`);
2. the change is made;
3. each of them that has an edge now is hung under its inviter: every (the inviter or one of its
   ancestors, X or one of X's descendants) pair is added, the depths summed (:func:`attach`).

At each step the table is the closure of the edges it has seen, so the order of the nodes does
not matter, and a subtree moves with its root. Attaching a new invitee (no descendants) writes
as many rows as the inviter has ancestors, plus one. All statements go through the tenant
session (rows are inserted through the model; the chokepoint refuses ``INSERT … SELECT``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import aliased

from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.referral.models import ReferralAttribution, ReferralClosure

C = ReferralClosure
A = ReferralAttribution
_CHUNK = 2000


async def detach(session: TenantSession, node: uuid.UUID) -> int:
    """Cut ``node`` (with its subtree) from its ancestors; returns the rows deleted."""
    up = aliased(C, name="up")
    down = aliased(C, name="down")
    ancestors = select(up.ancestor_id).where(up.descendant_id == node)
    subtree = select(down.descendant_id).where(down.ancestor_id == node)
    stmt = delete(C).where(C.ancestor_id.in_(ancestors), or_(C.descendant_id == node, C.descendant_id.in_(subtree)))
    result: Any = await session.execute(stmt, execution_options={"synchronize_session": False})
    return int(result.rowcount or 0)


async def attach(session: TenantSession, parent: uuid.UUID, node: uuid.UUID) -> int:
    """Hang ``node`` (a root of the closure now, with its subtree) under ``parent``; returns the
    rows added."""
    ups = [(parent, 0), *(await session.execute(select(C.ancestor_id, C.depth).where(C.descendant_id == parent))).all()]
    downs = [(node, 0), *(await session.execute(select(C.descendant_id, C.depth).where(C.ancestor_id == node))).all()]
    rows = [
        {"tenant_id": session.tenant_id, "ancestor_id": a, "descendant_id": d, "depth": da + dd + 1} for a, da in ups for d, dd in downs
    ]
    for start in range(0, len(rows), _CHUNK):
        await session.execute(insert(C), rows[start : start + _CHUNK])
    return len(rows)


async def edges_of(session: TenantSession, nodes: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The inviter of each of ``nodes`` that has an edge (an active attribution by a customer)."""
    wanted = list(dict.fromkeys(nodes))
    out: dict[uuid.UUID, uuid.UUID] = {}
    for start in range(0, len(wanted), _CHUNK):
        stmt = select(A.customer_id, A.inviter_customer_id).where(
            A.customer_id.in_(wanted[start : start + _CHUNK]), A.status == "active", A.inviter_customer_id.is_not(None)
        )
        for customer, inviter in (await session.execute(stmt.execution_options(guanxi_all_owners=True))).all():
            if inviter is not None:
                out[customer] = inviter
    return out


@asynccontextmanager
async def rewiring(session: TenantSession, nodes: Iterable[uuid.UUID]) -> AsyncIterator[None]:
    """Around a change of the attributions of ``nodes`` (the customers whose edge to their
    inviter may change): cut them before, hang them under their inviters after."""
    wanted = list(dict.fromkeys(nodes))
    for node in wanted:
        await detach(session, node)
    yield
    await session.flush()
    for node, parent in (await edges_of(session, wanted)).items():
        await attach(session, parent, node)


async def is_ancestor(session: TenantSession, ancestor: uuid.UUID, descendant: uuid.UUID) -> bool:
    """Whether ``ancestor`` brought in ``descendant``, directly or through others (one lookup)."""
    stmt = select(C.depth).where(C.ancestor_id == ancestor, C.descendant_id == descendant).limit(1)
    return (await session.execute(stmt)).first() is not None
