"""GraphQL compiled to SQL: a query over core types answered by one SQL statement per root field
that builds the JSON document in the database.

:class:`SqlLayer` keeps, per query text and operation name, a plan of the selection
(:mod:`.plan`) once the present path has answered that query without errors (so it is known
valid, limits included). Later requests for it build the statement (:mod:`.build`) with the
request's variables, run it on the request's tenant session (tenant and owner predicates come
from the chokepoint, :mod:`guanxi.core.storage.tenancy`), and splice the database's JSON text
into ``{"data": …}`` without decoding it. Anything not compiled, for the query (a plugin's
field, a directive, a fragment on an interface…) or for this request's argument values (a
cursor that does not decode, a tag filter, backward paging…), runs the present path, which
also gives every error exactly as before. See docs/graphql-sql.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from collections import OrderedDict
from typing import Any

import msgspec
from graphql import GraphQLError, GraphQLSchema, parse
from graphql.execution.values import get_variable_values
from strawberry.execution import optimized_is_awaitable
from strawberry.types import ExecutionResult

from guanxi.graphql.compiled import NotCompilableError as CompiledNotCompilableError
from guanxi.graphql.metrics import SQL_PATH
from guanxi.graphql.sqlgen.build import Build, Fallback, customers_statement
from guanxi.graphql.sqlgen.dialect import dialect_for, register_sqlite_functions
from guanxi.graphql.sqlgen.merge import MergeFallback, merge_plugin_fields, resolvers_for
from guanxi.graphql.sqlgen.plan import NotCompilableError, SqlPlan, compile_selection

log = logging.getLogger("guanxi.graphql.sql")
_encode = msgspec.json.encode


class RawExecutionResult(ExecutionResult):
    """A result whose JSON the database built: ``raw`` is the body sent as it is; ``data``
    decodes it only for callers in process that read it (tests, the schema's own users)."""

    def __init__(self, raw: bytes) -> None:  # no dataclass __init__: ``data`` is a property
        self.raw = raw
        self.errors = None
        self.extensions = {}
        self._data: Any = None

    @property
    def data(self) -> dict[str, Any] | None:  # type: ignore[override]
        if self._data is None:
            self._data = msgspec.json.decode(self.raw)["data"]
        return self._data


def sql_enabled() -> bool:
    """The switch: ``GUANXI_GRAPHQL_SQL=0`` (or false/no/off) turns the SQL layer off."""
    return os.environ.get("GUANXI_GRAPHQL_SQL", "1").strip().lower() not in ("0", "false", "no", "off")


class SqlLayer:
    """The compiled-SQL path of one schema."""

    def __init__(
        self, schema: GraphQLSchema, cache_size: int = 256, *, merged_fields: frozenset[str] = frozenset(), executor_class: Any = None
    ) -> None:
        self.schema = schema
        #: the plugins' fields on ``Customer``, resolved by their resolvers and merged (:mod:`.merge`)
        self.merged_fields = merged_fields if executor_class is not None else frozenset()
        self.executor_class = executor_class
        self._plans: OrderedDict[tuple[str, str | None], SqlPlan | None] = OrderedDict()
        self._max = cache_size
        #: sql: answered by SQL; fallback: a plan existed, the present path answered;
        #: compiled / not_compilable: queries planned
        self.stats = {"sql": 0, "fallback": 0, "compiled": 0, "not_compilable": 0}

    def known(self, query: str, operation_name: str | None) -> bool:
        return (query, operation_name) in self._plans

    def remember(self, query: str, operation_name: str | None) -> None:
        """Plan a query the present path has just answered without errors."""
        key = (query, operation_name)
        if key in self._plans:
            return
        plan: SqlPlan | None
        try:
            document = parse(query)
            plan = compile_selection(self.schema, document, operation_name, self.merged_fields)
            plan.resolvers = resolvers_for(self.schema, document, plan.operation, plan.merged)
        except (NotCompilableError, CompiledNotCompilableError) as exc:
            log.debug("GraphQL not compiled to SQL: %s", exc)
            plan = None
        self.stats["compiled" if plan is not None else "not_compilable"] += 1
        self._plans[key] = plan
        while len(self._plans) > self._max:
            self._plans.popitem(last=False)

    async def run(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None, context: Any
    ) -> RawExecutionResult | None:
        """The answer built by SQL, or None: the present path answers."""
        key = (query, operation_name)
        plan = self._plans.get(key)
        if plan is None:
            return None
        self._plans.move_to_end(key)
        coerced = get_variable_values(self.schema, plan.operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):  # the present path reports these errors
            self._fell_back()
            return None
        try:
            raw = await self._run(plan, coerced, variables, context)
        except (Fallback, MergeFallback, GraphQLError) as exc:
            self._fell_back()
            log.debug("GraphQL SQL path fell back: %s", exc)
            return None
        except Exception:  # a bug of this layer: answer through the present path, say so once per query
            self._fell_back()
            self.stats["failed"] = self.stats.get("failed", 0) + 1
            log.warning("GraphQL SQL path failed; the present path answers", exc_info=True)
            self._plans[key] = None
            return None
        self.stats["sql"] += 1
        SQL_PATH.labels("sql").inc()
        return RawExecutionResult(raw)

    def _fell_back(self) -> None:
        self.stats["fallback"] += 1
        SQL_PATH.labels("fallback").inc()

    async def _run(self, plan: SqlPlan, variables: Any, raw_variables: dict[str, Any] | None, context: Any) -> bytes:
        runtime = context.rt
        settings = runtime.settings.graphql
        session = context.session
        dialect = dialect_for(runtime.engine.dialect.name)
        nonce = secrets.token_hex(8)
        build = Build(dialect, variables, settings.default_page_size, settings.max_page_size, dt.datetime.now(dt.UTC), nonce)
        statements = [
            (root.key, await customers_statement(build, root, session, plan.statements) if root.name == "customers" else None)
            for root in plan.roots
        ]
        parts: list[bytes] = []
        try:
            if dialect.name == "sqlite":
                await session.run_sync(lambda s: register_sqlite_functions(s.connection()))
            for response_key, built in statements:
                if built is None:
                    value = b'"Query"'
                else:
                    statement, params = built
                    text = (await session.execute(statement, params)).scalar_one()
                    value = text.encode()
                parts.append(_encode(response_key) + b":" + value)
            document = b'{"data":{' + b",".join(parts) + b"}}"
            if plan.merged:
                executor = self.executor_class.build(
                    self.schema,
                    plan.document,
                    None,
                    context,
                    raw_variables,
                    plan.operation.name and plan.operation.name.value,
                    is_awaitable=optimized_is_awaitable,
                )
                if isinstance(executor, list):  # pragma: no cover - the variables coerced above
                    raise Fallback("variables do not coerce")
                document = await merge_plugin_fields(document, nonce, plan.resolvers, executor, context)
        finally:
            await context.close()
        return document


__all__ = ["RawExecutionResult", "SqlLayer", "sql_enabled"]
