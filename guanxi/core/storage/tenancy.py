"""Tenant scoping in one place.

A :class:`TenantSession` knows its tenant. Every ORM statement it runs gets
``WHERE <table>.tenant_id = :tenant`` added for every tenant-owned entity in it (through
``with_loader_criteria``), and every new row it flushes gets the tenant stamped on it. Code
elsewhere never writes a tenant filter by hand, so none can be forgotten.

Record ownership is applied in the same place: a session limited to some owners
(:meth:`TenantSession.for_owners`, from ``RequestContext.owners``) sees only the customers those
users own, and only those customers' rows in every :class:`CustomerOwned` table, in every ORM
select, update and delete, counts included.

A session without a tenant (``tenant_id=None``) refuses to touch tenant-owned tables; only
start-up and migration code, which work across tenants, use :func:`unscoped`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from guanxi.core.domain.models import Base, Customer, CustomerOwned, TenantScoped

TENANT_KEY = "guanxi.tenant_id"
OWNERS_KEY = "guanxi.owners"
RLS_KEY = "guanxi.rls"
#: execution option for a uniqueness check that must see rows of every owner (still one tenant)
ALL_OWNERS = "guanxi_all_owners"  # set on sessions of a runtime with database.row_level_security
UNSCOPED_KEY = "guanxi.unscoped"


class TenantScopeError(RuntimeError):
    """A tenant-owned table was queried without a tenant: a programming error, never user input."""


class TenantSession(AsyncSession):
    """An AsyncSession bound to one tenant (set with :meth:`for_tenant`).

    It takes one operation at a time: a GraphQL request shares one session between root fields
    and DataLoaders that run concurrently, and SQLAlchemy refuses concurrent use of a session
    ("This session is provisioning a new connection; concurrent operations are not
    permitted"). Every database-touching method waits for the one in flight (in order); a call
    made from inside another one of the same task (``scalars`` calls ``execute``) goes through.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._op_lock = asyncio.Lock()
        self._op_owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the session for a sequence of operations (e.g. a ``stream`` and its reads)."""
        task = asyncio.current_task()
        if task is not None and self._op_owner is task:
            yield
            return
        async with self._op_lock:
            self._op_owner = task
            try:
                yield
            finally:
                self._op_owner = None

    def for_tenant(self, tenant_id: uuid.UUID | None) -> TenantSession:
        self.sync_session.info[TENANT_KEY] = tenant_id
        return self

    def for_owners(self, owners: frozenset[uuid.UUID] | None) -> TenantSession:
        """Limit the session to customers owned by ``owners`` (None: no limit)."""
        if owners is None:
            self.sync_session.info.pop(OWNERS_KEY, None)
        else:
            self.sync_session.info[OWNERS_KEY] = tuple(sorted(owners))
        return self

    @property
    def owners(self) -> tuple[uuid.UUID, ...] | None:
        return self.sync_session.info.get(OWNERS_KEY)

    @property
    def tenant_id(self) -> uuid.UUID:
        tenant = self.sync_session.info.get(TENANT_KEY)
        if tenant is None:
            raise TenantScopeError("this session has no tenant")
        return tenant


def _one_at_a_time(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    base = getattr(AsyncSession, name)

    @functools.wraps(base)
    async def method(self: TenantSession, *args: Any, **kwargs: Any) -> Any:
        async with self.exclusive():
            return await base(self, *args, **kwargs)

    return method


for _name in (
    "execute",
    "scalar",
    "scalars",
    "get",
    "get_one",
    "stream",
    "stream_scalars",
    "refresh",
    "merge",
    "flush",
    "delete",
    "run_sync",
    "connection",
    "commit",
    "rollback",
    "close",
    "reset",
    "invalidate",
):
    setattr(TenantSession, _name, _one_at_a_time(_name))


class unscoped:  # noqa: N801 - used like a function: ``with unscoped(session):``
    """Let cross-tenant maintenance code (tenant creation, demo loader) run without a tenant
    filter. Works as ``with`` and ``async with``."""

    def __init__(self, session: AsyncSession) -> None:
        self._info = session.sync_session.info

    def __enter__(self) -> None:
        self._info[UNSCOPED_KEY] = True

    def __exit__(self, *exc: object) -> None:
        self._info.pop(UNSCOPED_KEY, None)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def _criteria(tenant_id: uuid.UUID) -> Any:
    return with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)


_owned_classes: dict[int, list[type]] = {}


def _customer_owned_classes() -> list[type]:
    """Every mapped class with the CustomerOwned mixin (plugins add theirs when imported)."""
    mappers = Base.registry.mappers
    found = _owned_classes.get(len(mappers))
    if found is None:
        _owned_classes.clear()
        found = _owned_classes[len(mappers)] = [m.class_ for m in mappers if issubclass(m.class_, CustomerOwned)]
    return found


def _owner_criteria(tenant_id: uuid.UUID, owners: tuple[uuid.UUID, ...]) -> list[Any]:
    # Plain expressions, not lambdas: the owners are bound parameters of each statement.
    visible = select(Customer.id).where(Customer.tenant_id == tenant_id, Customer.owner_id.in_(owners)).scalar_subquery()
    options = [with_loader_criteria(Customer, Customer.owner_id.in_(owners), include_aliases=True)]
    options += [with_loader_criteria(cls, cls.customer_id.in_(visible), include_aliases=True) for cls in _customer_owned_classes()]  # type: ignore[attr-defined]
    return options


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # already covered by the statement that loaded the parent
    info = state.session.info
    if info.get(UNSCOPED_KEY):
        return
    tenant_id = info.get(TENANT_KEY)
    if state.is_insert:
        _stamp_bulk_insert(state, tenant_id)
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if tenant_id is None:
        mappers = state.all_mappers
        if any(issubclass(m.class_, TenantScoped) for m in mappers):
            raise TenantScopeError("a tenant-owned table was queried by a session without a tenant")
        return
    owners = info.get(OWNERS_KEY)
    if owners is None or state.execution_options.get(ALL_OWNERS):
        state.statement = state.statement.options(_criteria(tenant_id))
    else:
        state.statement = state.statement.options(_criteria(tenant_id), *_owner_criteria(tenant_id, owners))


def _stamp_bulk_insert(state: ORMExecuteState, tenant_id: uuid.UUID | None) -> None:
    """ORM bulk ``insert(Model)`` with parameter lists: stamp or check ``tenant_id`` per row."""
    mapper = state.bind_arguments.get("mapper")
    if mapper is None or not issubclass(mapper.class_, TenantScoped):
        return
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if isinstance(params, dict) else []
    for row in rows:
        current = row.get("tenant_id")
        if current is None:
            if tenant_id is None:
                if not state.session.info.get(UNSCOPED_KEY):
                    raise TenantScopeError(f"bulk insert into {mapper.class_.__name__} without a tenant")
            else:
                row["tenant_id"] = tenant_id
        elif tenant_id is not None and current != tenant_id:
            raise TenantScopeError(f"bulk insert into {mapper.class_.__name__} for another tenant")


@event.listens_for(Session, "after_begin")
def _rls_scope(session: Session, _transaction: Any, connection: Any) -> None:
    """With PostgreSQL row-level security on, tell the database the session's tenant."""
    info = session.info
    if not info.get(RLS_KEY):
        return
    from guanxi.core.storage.rls import scope_transaction

    scope_transaction(connection, info.get(TENANT_KEY), unscoped=bool(info.get(UNSCOPED_KEY)))


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant_id = session.info.get(TENANT_KEY)
    for obj in session.new:
        if isinstance(obj, TenantScoped):
            current = getattr(obj, "tenant_id", None)
            if tenant_id is None:
                if current is None and not session.info.get(UNSCOPED_KEY):
                    raise TenantScopeError(f"new {type(obj).__name__} has no tenant")
            elif current is None:
                obj.tenant_id = tenant_id
            elif current != tenant_id:
                raise TenantScopeError(f"new {type(obj).__name__} belongs to another tenant")
