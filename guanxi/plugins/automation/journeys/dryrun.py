"""A dry run: who would get what. Each customer's path through the current version is walked
without writing anything: branches are evaluated now (the same SQL as a run), sends are screened
for consent and channel policy (and the frequency cap) as a run would, waits are noted and passed
(a ``wait_event`` follows its timeout path, the path taken when nothing happens)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import select

from guanxi import GuanxiError, Runtime, screen_outbound
from guanxi.models import Customer
from guanxi.plugins.automation.journeys.conditions import audience, matching
from guanxi.plugins.automation.journeys.definition import Branch, Journey, Schedule, Send, Wait, WaitEvent, WaitUntil, exits, successor


class DryStep(msgspec.Struct, kw_only=True):
    step: str
    step_type: str
    #: would_send | would_skip | would_wait | would_branch_yes | would_branch_no | would_do
    outcome: str
    detail: str | None = None
    channel: str | None = None


class DryRun(msgspec.Struct, kw_only=True):
    customer_id: uuid.UUID
    steps: list[DryStep]


async def dry_run(
    runtime: Runtime, session: Any, journey: Journey, customer_ids: list[uuid.UUID] | None, *, first: int = 20
) -> list[DryRun]:
    """The path of each customer (given, else the first ``first`` of the trigger's audience: a
    scheduled trigger's condition, else all customers)."""
    if customer_ids is None:
        cond = journey.trigger.audience if isinstance(journey.trigger, Schedule) else None
        customer_ids = []
        async for ids in audience(session, cond, batch=first):
            customer_ids = ids[:first]
            break
    else:
        found = set(
            (await session.execute(select(Customer.id).where(Customer.id.in_(customer_ids), Customer.merged_into_id.is_(None)))).scalars()
        )
        customer_ids = [c for c in customer_ids if c in found]
    index = {s.id: i for i, s in enumerate(journey.steps)}
    paths: dict[uuid.UUID, list[DryStep]] = {cid: [] for cid in customer_ids}
    position: dict[uuid.UUID, int | None] = {cid: 0 for cid in customer_ids}
    seen: dict[uuid.UUID, set[int]] = {cid: set() for cid in customer_ids}
    while True:
        groups: dict[int, list[uuid.UUID]] = {}
        for cid, pos in position.items():
            if pos is not None:
                if pos in seen[cid]:  # the path loops (through a wait): shown once
                    position[cid] = None
                    continue
                seen[cid].add(pos)
                groups.setdefault(pos, []).append(cid)
        if not groups:
            break
        for pos, members in groups.items():
            step = journey.steps[pos]
            kind = str(type(step).__struct_config__.tag)
            after = successor(journey.steps, pos)
            targets: dict[uuid.UUID, str | None] = {}
            if isinstance(step, Branch):
                yes = await matching(session, step.condition, members)
                for cid in members:
                    hit = cid in yes
                    paths[cid].append(DryStep(step=step.id, step_type=kind, outcome="would_branch_yes" if hit else "would_branch_no"))
                    targets[cid] = exits(journey.steps, pos)[0 if hit else 1]
            elif isinstance(step, Send):
                refused: dict[uuid.UUID, str] = {}
                try:
                    screening = await screen_outbound(runtime, session, step.channel, members, text=step.text)
                    refused = {r.customer_id: f"{r.code}: {r.reason}" for r in screening.refused}
                except GuanxiError as exc:
                    refused = {cid: f"{exc.code}: {exc.message}" for cid in members}
                for cid in members:
                    if cid in refused:
                        paths[cid].append(
                            DryStep(step=step.id, step_type=kind, outcome="would_skip", detail=refused[cid], channel=step.channel)
                        )
                    else:
                        paths[cid].append(
                            DryStep(step=step.id, step_type=kind, outcome="would_send", detail=step.text, channel=step.channel)
                        )
                    targets[cid] = after
            elif isinstance(step, (Wait, WaitUntil, WaitEvent)):
                detail = (
                    f"{step.seconds} s"
                    if isinstance(step, Wait)
                    else f"until {step.time}"
                    if isinstance(step, WaitUntil)
                    else f"for {step.kind} up to {step.timeout_s} s; shown: the timeout path"
                )
                for cid in members:
                    paths[cid].append(DryStep(step=step.id, step_type=kind, outcome="would_wait", detail=detail))
                    targets[cid] = exits(journey.steps, pos)[1] if isinstance(step, WaitEvent) else after
            else:
                for cid in members:
                    paths[cid].append(DryStep(step=step.id, step_type=kind, outcome="would_do"))
                    targets[cid] = after
            for cid, target in targets.items():
                position[cid] = index[target] if target is not None else None
    return [DryRun(customer_id=cid, steps=paths[cid]) for cid in customer_ids]
