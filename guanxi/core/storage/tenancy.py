"""Tenant scoping in one place.

A :class:`TenantSession` knows its tenant. Every ORM statement it runs gets
``WHERE <table>.tenant_id = :tenant`` added for every tenant-owned entity in it (through
``with_loader_criteria``), and every new row it flushes gets the tenant stamped on it. Code
elsewhere never writes a tenant filter by hand, so none can be forgotten.

Record ownership is applied in the same place: a session limited to some owners
(:meth:`TenantSession.for_owners`, from ``RequestContext.owners``) sees only the customers those
users own, and only those customers' rows in every :class:`CustomerOwned` table, in every ORM
select, update and delete, counts included.

Core statements get the same treatment: a tenant-owned ``Table`` used directly (``select(func.count())
.select_from(Customer.__table__)``, ``Identity.__table__`` in a subquery of an ORM statement, an
alias of one, a Core ``update``/``delete``/``insert``) gets the tenant predicate (and the owner
predicate) added where it appears: in the ``WHERE`` of its select, in the ``ON`` clause when it
is joined. What cannot be scoped is refused with :class:`TenantScopeError`: a ``text()`` naming a
tenant table, an ``INSERT … SELECT`` into one, and any SQL sent on the session's connection past
the session (``(await session.connection()).exec_driver_sql(...)`` or ``.execute(...)``).

A session without a tenant (``tenant_id=None``) refuses to touch tenant-owned tables. Code that
works across tenants on purpose says so: ``with unscoped(session):`` for a block, or the
execution option :data:`UNSCOPED` (``stmt.execution_options(guanxi_unscoped=True)``) for one
statement (start-up, migrations, maintenance such as ``ANALYZE``).
"""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, and_, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.pool import Pool
from sqlalchemy.sql import visitors
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import Alias, AliasedReturnsRows, CompoundSelect, Join, Select, TableClause

from guanxi.core.domain.models import Base, Customer, CustomerOwned, TenantScoped

TENANT_KEY = "guanxi.tenant_id"
OWNERS_KEY = "guanxi.owners"
RLS_KEY = "guanxi.rls"
#: execution option for a uniqueness check that must see rows of every owner (still one tenant)
ALL_OWNERS = "guanxi_all_owners"  # set on sessions of a runtime with database.row_level_security
UNSCOPED_KEY = "guanxi.unscoped"
#: execution option for one statement that works across tenants on purpose (``ANALYZE``, reports)
UNSCOPED = "guanxi_unscoped"
#: set on every statement that went through :func:`_scope_statement` (see :func:`_guard_cursor`)
_CHECKED = "guanxi_tenant_checked"
#: execution option of driver-level SQL that stamps the session's tenant itself
#: (:func:`guanxi.core.storage.bulk.insert_rows`): the cursor guard lets it through
TENANT_STAMPED = _CHECKED
#: the session whose transaction a pooled connection is in (see :func:`_guard_cursor`)
_SESSION_REF = "guanxi.session"


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


# -- tenant tables --------------------------------------------------------------------------------

_tables_cache: dict[int, tuple[frozenset[str], frozenset[str], re.Pattern[str] | None]] = {}


def _tenant_tables() -> tuple[frozenset[str], frozenset[str], re.Pattern[str] | None]:
    """Names of the tenant-owned tables (every table of the metadata with a ``tenant_id`` column,
    plugins' included), of the customer-owned ones, and a pattern finding any of them in SQL."""
    tables = Base.metadata.tables
    key = len(tables) * 100_003 + len(Base.registry.mappers)
    found = _tables_cache.get(key)
    if found is None:
        tenant = frozenset(t.name for t in tables.values() if "tenant_id" in t.c)
        owned = frozenset(str(getattr(m.local_table, "name", "")) for m in Base.registry.mappers if issubclass(m.class_, CustomerOwned))
        names = "|".join(re.escape(n) for n in sorted(tenant, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w$.])[\"`\[]?({names})[\"`\]]?(?![\w$])", re.IGNORECASE) if names else None
        _tables_cache.clear()
        found = _tables_cache[key] = (tenant, owned, pattern)
    return found


def names_tenant_table(sql: str) -> str | None:
    """The first tenant-owned table an SQL string names (a conservative, textual check), or None."""
    pattern = _tenant_tables()[2]
    match = pattern.search(sql) if pattern is not None else None
    return match.group(1) if match else None


def _core_tenant_from(element: Any) -> Any:
    """``element`` if it is a tenant-owned table (or an alias of one) used as a Core table, not
    through a mapped class (those are scoped by ``with_loader_criteria``); else None."""
    if element._annotations.get("parententity") is not None:
        return None
    base = element.element if isinstance(element, Alias) else element
    if isinstance(base, TableClause) and base.name in _tenant_tables()[0] and "tenant_id" in element.c:
        return element
    return None


def _leftmost(element: Any) -> Any:
    while isinstance(element, Join):
        element = element.left
    return element


def _own_tables(select_: Any) -> tuple[list[Any], set[Any]]:
    """The tenant tables (and aliases) a select's own clauses use as plain Core tables, and the
    tables they reach through a mapped class (nested selects, subqueries and CTEs are statements
    of their own and are not looked into). A mapped column such as ``A.customer_id.label("id")``
    also shows its plain table; ``with_loader_criteria`` covers that one."""
    plain: list[Any] = []
    mapped: set[Any] = set()
    names = _tenant_tables()[0]
    stack = list(select_.get_children())
    while stack:
        item = stack.pop()
        annotations = getattr(item, "_annotations", None)
        entity = annotations.get("parententity") if annotations else None
        if entity is not None:
            if getattr(entity, "is_aliased_class", False):  # aliased(Model): its alias is scoped
                selectable = entity.selectable
                mapped.update((selectable, selectable._deannotate()))
            elif getattr(entity, "mapper", None) is not None:
                mapped.update(entity.mapper.tables)
        elif isinstance(item, TableClause):
            if item.name in names:
                plain.append(item)
        elif isinstance(item, Alias) and _core_tenant_from(item) is not None:
            plain.append(item)
        if isinstance(item, Select | AliasedReturnsRows | CompoundSelect):
            continue
        stack.extend(item.get_children())
    return plain, mapped


_core_use_cache: dict[Any, bool] = {}


def _has_core_tenant_table(statement: Any) -> bool:
    """Whether a tenant table is used as a plain Core table by the statement or by any select
    nested in it (a FROM, a join, the target of a Core update or delete). Remembered per
    statement shape (SQLAlchemy's cache key, which it computes once per statement and needs
    anyway; bound values are not part of it)."""
    key = statement._generate_cache_key()
    if key is None:
        return _find_core_use(statement)
    found = _core_use_cache.get(key.key)
    if found is None:
        if len(_core_use_cache) >= 4096:
            _core_use_cache.clear()
        found = _core_use_cache[key.key] = _find_core_use(statement)
    return found


def _find_core_use(statement: Any) -> bool:
    for element in visitors.iterate(statement):
        if isinstance(element, Select):
            plain, mapped = _own_tables(element)
            if any(t not in mapped for t in plain):
                return True
        elif isinstance(element, Update | Delete) and _core_tenant_from(element.table) is not None:
            return True
    return False


class _CorePredicates:
    """The tenant (and owner) predicate for a Core use of a tenant-owned table."""

    def __init__(self, tenant_id: uuid.UUID, owners: tuple[uuid.UUID, ...] | None) -> None:
        self.tenant_id, self.owners = tenant_id, owners

    def __call__(self, table: Any) -> Any:
        conditions = [table.c.tenant_id == self.tenant_id]
        if self.owners is not None:
            name = getattr(table.element if isinstance(table, Alias) else table, "name", None)
            if name == Customer.__tablename__:
                conditions.append(table.c.owner_id.in_(self.owners))
            elif name in _tenant_tables()[1]:
                visible = select(Customer.id).where(Customer.tenant_id == self.tenant_id, Customer.owner_id.in_(self.owners))
                conditions.append(table.c.customer_id.in_(visible.scalar_subquery()))
        return and_(*conditions) if len(conditions) > 1 else conditions[0]


def _scope_core(statement: Any, predicate: _CorePredicates) -> Any:
    """Add the predicate wherever a tenant-owned table is used as a Core table: the WHERE of each
    select (and of a Core update/delete) it is a FROM of, the ON clause of each join it is the
    joined side of (so an outer join keeps its meaning)."""

    def visit_join(join: Any) -> None:
        sides = [_leftmost(join.right)] + ([_leftmost(join.left)] if join.full else [])
        extra = [predicate(t) for t in sides if _core_tenant_from(t) is not None]
        if extra:
            join.onclause = and_(join.onclause, *extra)

    def visit_select(sel: Any) -> None:
        extra: list[Any] = []
        joins = []
        # joins made with select().join(...) (kept as instructions until compiled): the joined
        # table's predicate goes into the ON clause, or the WHERE of an inner join without one
        for target, on, from_, flags in sel._setup_joins:
            onclause = on
            if _core_tenant_from(_leftmost(target)) is not None:
                outer = flags.get("isouter") or flags.get("full")
                if onclause is not None:
                    onclause = and_(onclause, predicate(_leftmost(target)))
                elif outer:
                    raise TenantScopeError("an outer join to a tenant table used as a Core table needs an explicit ON clause")
                else:
                    extra.append(predicate(_leftmost(target)))
            joins.append((target, onclause, from_, flags))
        sel._setup_joins = tuple(joins)
        extra += [predicate(t) for t in map(_leftmost, sel.get_final_froms()) if _core_tenant_from(t) is not None]
        if extra:
            sel._where_criteria += tuple(extra)

    def visit_dml(stmt: Any) -> None:
        if _core_tenant_from(stmt.table) is not None:
            stmt._where_criteria += (predicate(stmt.table),)

    # the statement's own options (loader criteria, eager loads) cannot be cloned: set them aside
    options = getattr(statement, "_with_options", ())
    if options:
        statement = statement._generate()
        statement._with_options = ()
    try:
        scoped = visitors.cloned_traverse(
            statement, {}, {"join": visit_join, "select": visit_select, "update": visit_dml, "delete": visit_dml}
        )
    except AttributeError as exc:  # a nested statement carrying options SQLAlchemy cannot copy
        raise TenantScopeError(f"a statement with a Core use of a tenant table could not be scoped ({exc})") from None
    if options:
        scoped._with_options = options
    return scoped


def _scope_core_insert(state: ORMExecuteState, tenant_id: uuid.UUID | None) -> None:
    """A Core ``insert(Table)``: stamp the tenant on its values or parameter rows; refuse another
    tenant's, or an ``INSERT … SELECT`` (whose rows cannot be checked)."""
    stmt: Any = state.statement
    table = _core_tenant_from(stmt.table)
    if table is None:
        return
    name = table.name
    if tenant_id is None:
        raise TenantScopeError(f"insert into {name} by a session without a tenant")
    if stmt.select is not None or stmt._multi_values:
        raise TenantScopeError(f"INSERT … SELECT or multi-row VALUES into {name} cannot be scoped: insert through the model")
    values = {getattr(k, "key", k): v for k, v in (stmt._values or {}).items()}
    if "tenant_id" in values:
        given = getattr(values["tenant_id"], "value", None)
        if given != tenant_id:
            raise TenantScopeError(f"insert into {name} for another tenant")
    elif values:
        state.statement = stmt.values(tenant_id=tenant_id)
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if isinstance(params, dict) else []
    for row in rows:
        if row.get("tenant_id") is None:
            if "tenant_id" not in values:
                row["tenant_id"] = tenant_id
        elif row["tenant_id"] != tenant_id:
            raise TenantScopeError(f"insert into {name} for another tenant")


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    state.update_execution_options(**{_CHECKED: True})
    if state.is_column_load or state.is_relationship_load:
        return  # already covered by the statement that loaded the parent
    info = state.session.info
    if info.get(UNSCOPED_KEY) or state.execution_options.get(UNSCOPED):
        return
    tenant_id = info.get(TENANT_KEY)
    statement = state.statement
    if isinstance(statement, TextClause):
        table = names_tenant_table(statement.text)
        if table is not None:
            raise TenantScopeError(
                f"text() naming the tenant table {table!r} cannot be scoped: write it with the models, or mark it "
                f"with execution_options({UNSCOPED}=True) if it must see every tenant"
            )
        return
    if state.is_insert:
        if isinstance(statement, Insert) and state.bind_arguments.get("mapper") is None:
            _scope_core_insert(state, tenant_id)
        else:
            _stamp_bulk_insert(state, tenant_id)
        return
    if not isinstance(statement, Select | CompoundSelect | Update | Delete):
        sql = str(statement) if hasattr(statement, "compile") else ""
        table = names_tenant_table(sql)
        if table is not None:
            raise TenantScopeError(f"a {type(statement).__name__} statement touching {table!r} cannot be scoped")
        return
    core = _has_core_tenant_table(statement)
    if tenant_id is None:
        if core or any(issubclass(m.class_, TenantScoped) for m in state.all_mappers):
            raise TenantScopeError("a tenant-owned table was queried by a session without a tenant")
        return
    owners = info.get(OWNERS_KEY)
    if owners is not None and state.execution_options.get(ALL_OWNERS):
        owners = None
    if core:
        statement = _scope_core(statement, _CorePredicates(tenant_id, owners))
    if owners is None:
        state.statement = statement.options(_criteria(tenant_id))
    else:
        state.statement = statement.options(_criteria(tenant_id), *_owner_criteria(tenant_id, owners))


@event.listens_for(Session, "after_begin")
def _remember_session(session: Session, _transaction: Any, connection: Any) -> None:
    """Mark the pooled connection as this session's until it goes back to the pool."""
    connection.info[_SESSION_REF] = weakref.ref(session)


@event.listens_for(Pool, "checkin")
def _forget_session(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info.pop(_SESSION_REF, None)


def _guard_cursor(conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _executemany: bool) -> None:
    """The last line: SQL that reaches a tenant session's connection without going through
    :func:`_scope_statement` (``exec_driver_sql`` or ``execute`` on ``session.connection()``)
    must not name a tenant table. The session's own flush (mapped objects, stamped and keyed by
    tenant) and statements marked unscoped pass."""
    ref = conn.info.get(_SESSION_REF)
    session = ref() if ref is not None else None
    if session is None or session.info.get(UNSCOPED_KEY) or session._flushing:
        return
    options = context.execution_options if context is not None else {}
    if options.get(_CHECKED) or options.get(UNSCOPED):
        return
    table = names_tenant_table(statement)
    if table is not None:
        raise TenantScopeError(
            f"SQL naming the tenant table {table!r} was sent past the tenant session (on its connection): "
            "run it with session.execute() so it is scoped"
        )


event.listen(Engine, "before_cursor_execute", _guard_cursor)


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
