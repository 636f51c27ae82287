"""Per-request loading: bulk queries used both by DataLoaders (fields resolved one object at a
time) and by page prefetching (:mod:`guanxi.graphql.prefetch`). Each nested list on a page of
customers costs one SQL statement, whatever the page size.

Queries select ORM column attributes (so the tenant filter of :mod:`guanxi.core.storage.tenancy`
applies) and return plain rows, not ORM objects: no identity-map work per row.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, bindparam, func, inspect, null, or_, select
from sqlalchemy.orm import aliased
from strawberry.dataloader import DataLoader

from guanxi.core.domain import models as m
from guanxi.core.services import fields
from guanxi.core.services.queries import CUSTOMER_COLUMNS

if TYPE_CHECKING:
    from guanxi.graphql.context import GraphQLContext

InteractionKey = tuple[uuid.UUID, int, tuple[str, ...] | None]


def columns(entity: Any, *, skip: tuple[str, ...] = ()) -> list[Any]:
    """The mapped columns of an entity (or an alias of one) as ORM attributes, without
    ``tenant_id`` (the session filters on it; nothing reads it back) and ``skip``. Fewer columns
    means fewer UUIDs and JSON values decoded per row."""
    return [getattr(entity, a.key) for a in inspect(entity).mapper.column_attrs if a.key != "tenant_id" and a.key not in skip]


#: Interaction columns the API never shows.
INTERACTION_UNUSED = ("identity_id", "actor_id", "dedupe_key", "recorded_at")


# -- statements of the page lists, built once per process (an expanding ``ids`` parameter); the
# session adds the tenant (and owner) criteria per execution as for any other statement.


@functools.cache
def _stages_stmt() -> Select[Any]:
    return select(*columns(m.Stage)).order_by(m.Stage.pipeline_id, m.Stage.position)


@functools.cache
def _tags_stmt() -> Select[Any]:
    return (
        select(m.CustomerTag.customer_id, *columns(m.Tag))
        .join(m.Tag, (m.Tag.tenant_id == m.CustomerTag.tenant_id) & (m.Tag.id == m.CustomerTag.tag_id))
        .where(m.CustomerTag.customer_id.in_(bindparam("ids", expanding=True)))
        .order_by(m.Tag.group_name, m.Tag.name)
    )


@functools.cache
def _identities_stmt(lean: bool) -> Select[Any]:
    cols = [*columns(m.Identity, skip=("profile",)), null().label("profile")] if lean else columns(m.Identity)
    return select(*cols).where(m.Identity.customer_id.in_(bindparam("ids", expanding=True))).order_by(m.Identity.created_at, m.Identity.id)


@functools.cache
def _recent_interactions_stmt(lean: bool, by_kind: bool) -> Select[Any]:
    """Parameters: ``ids``, ``limit`` (first + 1) and, ``by_kind``, ``kinds``."""
    unused = (*INTERACTION_UNUSED, "payload") if lean else INTERACTION_UNUSED
    rn = func.row_number().over(
        partition_by=m.Interaction.customer_id, order_by=(m.Interaction.occurred_at.desc(), m.Interaction.id.desc())
    )
    inner = select(*columns(m.Interaction, skip=unused), m.Interaction.tenant_id, rn.label("rn")).where(
        m.Interaction.customer_id.in_(bindparam("ids", expanding=True))
    )
    if by_kind:
        inner = inner.where(m.Interaction.kind.in_(bindparam("kinds", expanding=True)))
    sub = inner.subquery()
    alias = aliased(m.Interaction, sub)
    cols = [*columns(alias, skip=unused), null().label("payload")] if lean else columns(alias, skip=unused)
    return select(*cols).where(sub.c.rn <= bindparam("limit")).order_by(sub.c.customer_id, sub.c.rn)


def group(rows: Iterable[Any], key: str) -> dict[uuid.UUID, list[Any]]:
    out: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in rows:
        out[getattr(row, key)].append(row)
    return out


class Loaders:
    """Created lazily once per request (``info.context.loaders``)."""

    def __init__(self, context: GraphQLContext) -> None:
        self._context = context
        self.lock = asyncio.Lock()
        self._stages: asyncio.Future[dict[uuid.UUID, m.Stage]] | None = None
        self.users = DataLoader(self.users_by_id)
        self.customers = DataLoader(self.customers_by_id)
        self.tags = DataLoader(self._aligned(self.tags_of))
        self.identities = DataLoader(self._aligned(self.identities_of))
        self.stage_history = DataLoader(self._aligned(self.stage_history_of))
        self.open_tasks = DataLoader(self._aligned(self.tasks_of))
        self.consents = DataLoader(self._aligned(self.consents_of))
        self.field_values = DataLoader(self._aligned(self.field_values_of))
        self.recent_interactions: DataLoader[InteractionKey, list[Any]] = DataLoader(self._load_recent_interactions)
        self.interaction_counts: DataLoader[tuple[uuid.UUID, tuple[str, ...] | None], int] = DataLoader(self._count_interactions)

    async def execute(self, stmt: Any, params: dict[str, Any] | None = None) -> Any:
        """Run a statement on the request session; loaders dispatch concurrently, the session
        takes one statement at a time."""
        async with self.lock:
            return await self._context.session.execute(stmt, params)

    @staticmethod
    def _aligned(fn: Any) -> Any:
        async def load(ids: Sequence[uuid.UUID]) -> list[list[Any]]:
            found = await fn(ids)
            return [found.get(i, []) for i in ids]

        return load

    async def stages(self) -> dict[uuid.UUID, m.Stage]:
        """Every stage of the tenant (a handful), loaded once per request."""
        if self._stages is None:
            self._stages = asyncio.ensure_future(self._load_stages())
        return await self._stages

    async def _load_stages(self) -> dict[uuid.UUID, m.Stage]:
        rows = (await self.execute(_stages_stmt())).all()
        return {s.id: s for s in rows}

    async def users_by_id(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        rows = (await self.execute(select(*columns(m.User)).where(m.User.id.in_(set(ids))))).all()
        by_id = {u.id: u for u in rows}
        return [by_id.get(i) for i in ids]

    async def customers_by_id(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        rows = (await self.execute(select(*CUSTOMER_COLUMNS).where(m.Customer.id.in_(set(ids))))).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    async def tags_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        return group((await self.execute(_tags_stmt(), {"ids": list(set(ids))})).all(), "customer_id")

    async def identities_of(self, ids: Sequence[uuid.UUID], *, lean: bool = False) -> dict[uuid.UUID, list[Any]]:
        """``lean``: the query selects no ``profile``; it reads back as None, not decoded."""
        return group((await self.execute(_identities_stmt(lean), {"ids": list(set(ids))})).all(), "customer_id")

    async def stage_history_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        stmt = (
            select(*columns(m.StageChange))
            .where(m.StageChange.customer_id.in_(set(ids)))
            .order_by(m.StageChange.changed_at, m.StageChange.id)
        )
        return group((await self.execute(stmt)).all(), "customer_id")

    async def tasks_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        stmt = select(*columns(m.Task)).where(m.Task.customer_id.in_(set(ids))).order_by(m.Task.due_at, m.Task.id)
        return group((await self.execute(stmt)).all(), "customer_id")

    async def field_values_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[tuple[Any, Any]]]:
        """Custom field values (definition, typed value) of many customers: the tenant's field
        definitions and one statement for the values."""
        async with self.lock:
            return await fields.field_values_of(self._context.session, ids)

    async def consents_of(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        stmt = select(*columns(m.Consent)).where(m.Consent.customer_id.in_(set(ids))).order_by(m.Consent.channel)
        return group((await self.execute(stmt)).all(), "customer_id")

    async def recent_interactions_of(
        self, ids: Iterable[uuid.UUID], first: int, kinds: tuple[str, ...] | None, *, lean: bool = False
    ) -> dict[uuid.UUID, list[Any]]:
        """The newest ``first + 1`` interactions of many customers in one statement, using
        ROW_NUMBER() (SQLite 3.25+ and PostgreSQL). ``lean``: the query selects no ``payload``;
        it is neither read nor decoded (None in the rows)."""
        params: dict[str, Any] = {"ids": list(set(ids)), "limit": first + 1}
        if kinds:
            params["kinds"] = list(kinds)
        return group((await self.execute(_recent_interactions_stmt(lean, bool(kinds)), params)).all(), "customer_id")

    async def _load_recent_interactions(self, keys: Sequence[InteractionKey]) -> list[list[Any]]:
        groups: dict[tuple[int, tuple[str, ...] | None], set[uuid.UUID]] = defaultdict(set)
        for customer_id, first, kinds in keys:
            groups[(first, kinds)].add(customer_id)
        found: dict[InteractionKey, list[Any]] = {}
        for (first, kinds), customer_ids in groups.items():
            per = await self.recent_interactions_of(customer_ids, first, kinds)
            for customer_id in customer_ids:
                found[(customer_id, first, kinds)] = per.get(customer_id, [])
        return [found[k] for k in keys]

    async def interactions_after(
        self, customer_id: uuid.UUID, size: int, kinds: tuple[str, ...] | None, after: tuple[Any, uuid.UUID]
    ) -> list[Any]:
        """One customer's interactions older than a cursor (keyset pagination)."""
        at, last_id = after
        stmt = select(*columns(m.Interaction, skip=INTERACTION_UNUSED)).where(
            m.Interaction.customer_id == customer_id,
            or_(m.Interaction.occurred_at < at, and_(m.Interaction.occurred_at == at, m.Interaction.id < last_id)),
        )
        if kinds:
            stmt = stmt.where(m.Interaction.kind.in_(kinds))
        stmt = stmt.order_by(m.Interaction.occurred_at.desc(), m.Interaction.id.desc()).limit(size + 1)
        return list((await self.execute(stmt)).all())

    async def interactions_before(
        self, customer_id: uuid.UUID, size: int, kinds: tuple[str, ...] | None, before: tuple[Any, uuid.UUID] | None
    ) -> list[Any]:
        """One customer's ``size + 1`` interactions newer than a cursor (all: from the oldest),
        oldest first: the rows of a backward page (``last``/``before``)."""
        stmt = select(*columns(m.Interaction, skip=INTERACTION_UNUSED)).where(m.Interaction.customer_id == customer_id)
        if before is not None:
            at, last_id = before
            stmt = stmt.where(or_(m.Interaction.occurred_at > at, and_(m.Interaction.occurred_at == at, m.Interaction.id > last_id)))
        if kinds:
            stmt = stmt.where(m.Interaction.kind.in_(kinds))
        stmt = stmt.order_by(m.Interaction.occurred_at.asc(), m.Interaction.id.asc()).limit(size + 1)
        return list((await self.execute(stmt)).all())

    async def _count_interactions(self, keys: Sequence[tuple[uuid.UUID, tuple[str, ...] | None]]) -> list[int]:
        """Timeline sizes of many customers: one grouped count per set of kinds asked."""
        groups: dict[tuple[str, ...] | None, set[uuid.UUID]] = defaultdict(set)
        for customer_id, kinds in keys:
            groups[kinds].add(customer_id)
        found: dict[tuple[uuid.UUID, tuple[str, ...] | None], int] = {}
        for kinds, customer_ids in groups.items():
            stmt = (
                select(m.Interaction.customer_id, func.count())
                .where(m.Interaction.customer_id.in_(customer_ids))
                .group_by(m.Interaction.customer_id)
            )
            if kinds:
                stmt = stmt.where(m.Interaction.kind.in_(kinds))
            counts = dict((await self.execute(stmt)).all())
            for customer_id in customer_ids:
                found[(customer_id, kinds)] = int(counts.get(customer_id, 0))
        return [found[k] for k in keys]
