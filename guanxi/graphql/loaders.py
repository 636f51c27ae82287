"""Per-request DataLoaders: each nested list on a page of customers costs one SQL statement,
whatever the page size."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from strawberry.dataloader import DataLoader

from guanxi.core import models as m
from guanxi.core.queries import CUSTOMER_COLUMNS

if TYPE_CHECKING:
    from guanxi.graphql.context import GraphQLContext

InteractionKey = tuple[uuid.UUID, int, tuple[str, ...] | None]


class Loaders:
    """Created lazily once per request (``info.context.loaders``)."""

    def __init__(self, context: GraphQLContext) -> None:
        self._context = context
        self.lock = asyncio.Lock()
        self._stages: asyncio.Future[dict[uuid.UUID, m.Stage]] | None = None
        self.users = DataLoader(self._load_users)
        self.customers = DataLoader(self._load_customers)
        self.tags = DataLoader(self._load_tags)
        self.identities = DataLoader(self._load_identities)
        self.stage_history = DataLoader(self._load_stage_history)
        self.open_tasks = DataLoader(self._load_open_tasks)
        self.recent_interactions: DataLoader[InteractionKey, list[Any]] = DataLoader(self._load_recent_interactions)

    async def execute(self, stmt: Any) -> Any:
        """Run a statement on the request session; loaders dispatch concurrently, the session
        takes one statement at a time."""
        async with self.lock:
            return await self._context.session.execute(stmt)

    async def stages(self) -> dict[uuid.UUID, m.Stage]:
        """Every stage of the tenant (a handful), loaded once per request."""
        if self._stages is None:
            self._stages = asyncio.ensure_future(self._load_stages())
        return await self._stages

    async def _load_stages(self) -> dict[uuid.UUID, m.Stage]:
        rows = (await self.execute(select(m.Stage).order_by(m.Stage.pipeline_id, m.Stage.position))).scalars().all()
        return {s.id: s for s in rows}

    async def _load_users(self, ids: Sequence[uuid.UUID]) -> list[m.User | None]:
        rows = (await self.execute(select(m.User).where(m.User.id.in_(set(ids))))).scalars().all()
        by_id = {u.id: u for u in rows}
        return [by_id.get(i) for i in ids]

    async def _load_customers(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        rows = (await self.execute(select(*CUSTOMER_COLUMNS).where(m.Customer.id.in_(set(ids))))).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    async def _load_tags(self, ids: Sequence[uuid.UUID]) -> list[list[m.Tag]]:
        stmt = (
            select(m.CustomerTag.customer_id, m.Tag)
            .join(m.Tag, (m.Tag.tenant_id == m.CustomerTag.tenant_id) & (m.Tag.id == m.CustomerTag.tag_id))
            .where(m.CustomerTag.customer_id.in_(set(ids)))
            .order_by(m.Tag.group_name, m.Tag.name)
        )
        out: dict[uuid.UUID, list[m.Tag]] = defaultdict(list)
        for customer_id, tag in (await self.execute(stmt)).all():
            out[customer_id].append(tag)
        return [out.get(i, []) for i in ids]

    async def _load_identities(self, ids: Sequence[uuid.UUID]) -> list[list[m.Identity]]:
        stmt = select(m.Identity).where(m.Identity.customer_id.in_(set(ids))).order_by(m.Identity.created_at, m.Identity.id)
        out: dict[uuid.UUID, list[m.Identity]] = defaultdict(list)
        for identity in (await self.execute(stmt)).scalars():
            out[identity.customer_id].append(identity)
        return [out.get(i, []) for i in ids]

    async def _load_stage_history(self, ids: Sequence[uuid.UUID]) -> list[list[m.StageChange]]:
        stmt = select(m.StageChange).where(m.StageChange.customer_id.in_(set(ids))).order_by(m.StageChange.changed_at, m.StageChange.id)
        out: dict[uuid.UUID, list[m.StageChange]] = defaultdict(list)
        for change in (await self.execute(stmt)).scalars():
            out[change.customer_id].append(change)
        return [out.get(i, []) for i in ids]

    async def _load_open_tasks(self, ids: Sequence[uuid.UUID]) -> list[list[m.Task]]:
        stmt = select(m.Task).where(m.Task.customer_id.in_(set(ids))).order_by(m.Task.due_at, m.Task.id)
        out: dict[uuid.UUID, list[m.Task]] = defaultdict(list)
        for task in (await self.execute(stmt)).scalars():
            out[task.customer_id].append(task)
        return [out.get(i, []) for i in ids]

    async def _load_recent_interactions(self, keys: Sequence[InteractionKey]) -> list[list[Any]]:
        """The newest ``first + 1`` interactions of many customers in one statement per
        distinct (first, kinds) pair, using ROW_NUMBER() (SQLite 3.25+ and PostgreSQL)."""
        groups: dict[tuple[int, tuple[str, ...] | None], set[uuid.UUID]] = defaultdict(set)
        for customer_id, first, kinds in keys:
            groups[(first, kinds)].add(customer_id)
        found: dict[InteractionKey, list[Any]] = {}
        for (first, kinds), customer_ids in groups.items():
            rn = func.row_number().over(
                partition_by=m.Interaction.customer_id, order_by=(m.Interaction.occurred_at.desc(), m.Interaction.id.desc())
            )
            inner = select(m.Interaction, rn.label("rn")).where(m.Interaction.customer_id.in_(customer_ids))
            if kinds:
                inner = inner.where(m.Interaction.kind.in_(kinds))
            sub = inner.subquery()
            alias = m.aliased_interaction(sub)
            stmt = select(alias).where(sub.c.rn <= first + 1).order_by(sub.c.customer_id, sub.c.rn)
            per: dict[uuid.UUID, list[Any]] = defaultdict(list)
            for row in (await self.execute(stmt)).scalars():
                per[row.customer_id].append(row)
            for customer_id in customer_ids:
                found[(customer_id, first, kinds)] = per.get(customer_id, [])
        return [found[k] for k in keys]
