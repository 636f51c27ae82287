"""GraphQL metrics, recorded by the schema's ``execute`` (not by a Strawberry extension: an
extension that resolves per field would switch the compiled fast path off).

Operation names are chosen by clients, so they go through a :class:`BoundedLabel`: the first
``metrics.max_operation_names`` names seen by a process are label values, later ones ``other``.
"""

from __future__ import annotations

from collections import OrderedDict

from graphql import OperationDefinitionNode, parse

from guanxi.core.base.metrics import BoundedLabel, counter, histogram

REQUESTS = counter(
    "guanxi_graphql_requests", "GraphQL operations executed, by operation name and outcome (ok, error)", ["operation", "outcome"]
)
DURATION = histogram("guanxi_graphql_request_duration_seconds", "Time to execute a GraphQL operation, by operation name", ["operation"])
ERRORS = counter("guanxi_graphql_errors", "Errors in GraphQL answers, by error code (extensions.code)", ["code"])
SQL_PATH = counter(
    "guanxi_graphql_sql",
    "Requests of queries planned for SQL (guanxi.graphql.sqlgen): answered by SQL (sql) or by the present path (fallback)",
    ["outcome"],
)


class GraphQLMetrics:
    """What one schema records about its operations."""

    def __init__(self, max_operation_names: int) -> None:
        self.operation = BoundedLabel(max_operation_names)
        self._names: OrderedDict[str, str | None] = OrderedDict()

    def name_of(self, query: str | None, operation_name: str | None) -> str | None:
        """The operation's name: the request's ``operationName``, else the name of the
        document's only operation (parsed once per query text, the last 1024 kept)."""
        if isinstance(operation_name, str) and operation_name:
            return operation_name
        if not isinstance(query, str):
            return None
        if query in self._names:
            self._names.move_to_end(query)
            return self._names[query]
        try:
            operations = [d for d in parse(query).definitions if isinstance(d, OperationDefinitionNode)]
        except Exception:
            operations = []
        name = operations[0].name.value if len(operations) == 1 and operations[0].name else None
        self._names[query] = name
        while len(self._names) > 1024:
            self._names.popitem(last=False)
        return name

    def observe(self, query: str | None, operation_name: str | None, seconds: float, ok: bool) -> None:
        name = self.operation(self.name_of(query, operation_name))
        REQUESTS.labels(name, "ok" if ok else "error").inc()
        DURATION.labels(name).observe(seconds)

    @staticmethod
    def error(code: str) -> None:
        ERRORS.labels(code).inc()
