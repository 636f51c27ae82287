"""The Litestar application factory: GraphQL at /graphql, plugin routes, health check."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import msgspec
from cross_web import HTTPException
from graphql import ExecutionResult
from litestar import Litestar, Request, Response, get
from litestar.background_tasks import BackgroundTasks
from litestar.di import Provide
from sqlalchemy import text
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.litestar import make_graphql_controller
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from guanxi.core.auth import AuthenticationError, authenticator_of
from guanxi.core.base.collector import tune_gc
from guanxi.core.base.errors import BusyError, NotFoundError
from guanxi.core.base.logs import configure_logging
from guanxi.core.queues.inbox import InboxWorker
from guanxi.core.queues.outbox import Deliverer, OutboxWorker
from guanxi.core.queues.scheduler import SchedulerWorker
from guanxi.core.queues.staff import StaffDeliverer, StaffDeliveryWorker
from guanxi.core.runtime import Runtime
from guanxi.graphql.context import GraphQLContext
from guanxi.graphql.extensions import shape_error
from guanxi.graphql.ide import graphiql_assets_router, offline_graphiql_html
from guanxi.graphql.metrics import GraphQLMetrics
from guanxi.graphql.operator import operator_controller
from guanxi.graphql.schema import build_schema
from guanxi.graphql.sqlgen import RawExecutionResult
from guanxi.metrics import http_metrics_middleware, metrics_route
from guanxi.observability import RequestIdMiddleware
from guanxi.security import SCOPE_KEY, GraphQLAuthMiddleware

log = logging.getLogger("guanxi.app")

#: how deep JSON may nest in a GraphQL request body (variables included)
MAX_JSON_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


def decode_request_json(data: str | bytes) -> object:
    """Decode a GraphQL request's JSON (body, or a GET's ``variables``/``extensions``): valid
    UTF-8, valid JSON without lone surrogates (msgspec refuses them, as ``\\ud800`` cannot
    be stored or sent anywhere), nested at most :data:`MAX_JSON_DEPTH` deep, a JSON object (or
    a list, which the view refuses as a batch). Anything else is a 400 naming the problem."""
    try:
        value = msgspec.json.decode(data)
    except RecursionError:
        raise HTTPException(400, f"the request's JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        if _SURROGATE_ESCAPE.search(data if isinstance(data, bytes) else data.encode("utf-8", "replace")):
            raise HTTPException(
                400, "the request's JSON holds a lone UTF-16 surrogate escape (\\uD800 to \\uDFFF): not valid Unicode"
            ) from None
        raise HTTPException(400, f"the request body is not valid JSON in UTF-8: {exc}") from None
    if not isinstance(value, dict | list):
        raise HTTPException(400, "the request body must be a JSON object with a `query` (and optional `variables`, `operationName`)")
    _check_depth(value)
    return value


def _check_depth(value: object) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_JSON_DEPTH:
            raise HTTPException(400, f"the request's JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item if isinstance(v, dict | list))


def graphql_error_response(status: int, message: str) -> Response[Any]:
    """A refused request in GraphQL's shape: ``{"errors": [{"message", "extensions": {"code"}}]}``."""
    code = _HTTP_CODES.get(status, "BAD_REQUEST")
    return Response({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status, media_type="application/json")


class _RawBody(dict[str, Any]):
    """A response body already encoded (by the database, :mod:`guanxi.graphql.sqlgen`)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw


def _response_getter() -> Response[Any]:
    return Response({}, background=BackgroundTasks([]))


def _plugin_routes(runtime: Runtime) -> list[Any]:
    routes: list[Any] = []
    for contributed in runtime.pm.hook.guanxi_routes(runtime=runtime):
        if contributed:
            routes.extend(contributed)
    return routes


def _busy(request: Request[Any, Any, Any], exc: BusyError) -> Response[Any]:
    """A route (a webhook, a plugin's page) that met a busy database: 503, retry shortly."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    body = {"errors": [{"message": str(exc), "extensions": {"code": exc.code}}]}
    return Response(body, status_code=503, media_type="application/json", headers={"Retry-After": "5"})


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "?"


def start_workers(rt: Runtime) -> list[Any]:
    """Start the in-process workers of a server process: inbox, outbox, scheduler and staff
    notification deliveries."""
    q = rt.settings.queues
    inbox_worker = InboxWorker(rt, poll_s=q.poll_s, lease_s=q.lease_s, max_attempts=q.inbox_max_attempts, batch=q.batch)
    deliverer = Deliverer(rt, send_timeout_s=q.send_timeout_s, max_attempts=q.outbox_max_attempts, rates=dict(q.rate_per_s))
    outbox_worker = OutboxWorker(rt, deliverer, poll_s=q.poll_s, lease_s=q.lease_s, batch=q.batch)
    scheduler = SchedulerWorker(rt, poll_s=q.poll_s, lease_s=q.lease_s, batch=q.batch, timeout_s=q.job_timeout_s)
    staff_deliverer = StaffDeliverer(rt, send_timeout_s=q.send_timeout_s, max_attempts=q.staff_max_attempts, lease_s=q.lease_s)
    staff_worker = StaffDeliveryWorker(rt, staff_deliverer, poll_s=q.poll_s, lease_s=q.lease_s, batch=q.batch)
    rt.state["inbox_worker"], rt.state["outbox_worker"] = inbox_worker, outbox_worker
    rt.state["scheduler_worker"], rt.state["staff_worker"] = scheduler, staff_worker
    workers: list[Any] = [inbox_worker, outbox_worker, scheduler, staff_worker]
    for contributed in rt.pm.hook.guanxi_workers(runtime=rt):
        workers.extend(contributed or [])
    for worker in workers:
        worker.start()
    return workers


def create_app(runtime: Runtime | None = None, *, manage_runtime: bool | None = None, debug: bool = False) -> Litestar:
    """Build the HTTP application.

    :param runtime: an existing runtime (tests, embedding); by default one is loaded from the
        configuration file and environment.
    :param manage_runtime: start and stop the runtime with the app (default: only when this
        function created it).
    """
    if manage_runtime is None:
        manage_runtime = runtime is None
    if runtime is None:
        # a server worker process (`guanxi serve`, or uvicorn with --factory): set up logging
        # here too, since worker processes do not run the CLI's set-up
        rt = Runtime.from_config()
        configure_logging(rt.settings.server.log_level, trace=rt.settings.plugins.trace, log_format=rt.settings.server.log_format)
    else:
        rt = runtime
    schema = build_schema(rt)
    settings = rt.settings.graphql
    metrics_on = rt.settings.metrics.enabled
    # read the server secret and the JWT keys now: a bad file fails start-up, not the first request
    _ = authenticator_of(rt).secret

    async def context_getter(request: Request[Any, Any, Any]) -> GraphQLContext:
        # The caller was authenticated by GraphQLAuthMiddleware (None: a WebSocket that will
        # authenticate in its connection_init message, see on_ws_connect below).
        return GraphQLContext(runtime=rt, request_context=request.scope.get(SCOPE_KEY))

    base = make_graphql_controller(
        schema,
        path=settings.path,
        graphql_ide="graphiql" if settings.graphiql else None,
        context_getter=context_getter,
    )

    class GraphQLController(base):  # type: ignore[valid-type,misc]
        # Strawberry provides the response object with sync_to_thread=True, a thread hop on
        # every request; building an empty Response needs no thread.
        dependencies: ClassVar[dict[str, Any]] = {**base.dependencies, "response": Provide(_response_getter, sync_to_thread=False)}
        middleware: ClassVar[list[Any]] = [GraphQLAuthMiddleware(rt)]

        @property
        def graphql_ide_html(self) -> str:
            # Strawberry's page, with its scripts served by this application (no CDN)
            return offline_graphiql_html(settings.path)

        async def on_ws_connect(self, context: GraphQLContext) -> Any:
            """A WebSocket without an Authorization header authenticates in connection_init."""
            if context.request_context is None:
                params = context.connection_params if isinstance(context.connection_params, dict) else {}
                credential = params.get("Authorization") or params.get("authorization")
                try:
                    context.request_context, _ = await authenticator_of(rt).authenticate(
                        credential if isinstance(credential, str) else None
                    )
                except AuthenticationError:
                    raise ConnectionRejectionError() from None
            return await super().on_ws_connect(context)

        def decode_json(self, data: str | bytes) -> object:
            return decode_request_json(data)

        async def execute_request(self, request: Request[Any, Any, Any], context: Any, root_value: Any) -> Response[Any]:
            # Strawberry answers a bad request with plain text; answer in GraphQL's shape, and
            # log it (never the body: it may hold personal data or credentials)
            try:
                return await self.run(request, context=context, root_value=root_value)
            except HTTPException as exc:
                log.warning("refused a GraphQL %s request from %s: %s %s", request.method, _client(request), exc.status_code, exc.reason)
                return graphql_error_response(exc.status_code, exc.reason)

        async def execute_single(
            self,
            request: Any,
            request_adapter: Any,
            sub_response: Any,
            context: Any,
            root_value: Any,
            request_data: Any,
        ) -> ExecutionResult:
            # A subscription needs a stream: over the WebSocket (or a streaming transport, which
            # never comes here); a plain GET or POST runs queries (GET) and mutations (POST) only.
            allowed = {OperationType.QUERY} if request_adapter.method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
            try:
                return await self.schema.execute(
                    request_data.query,
                    root_value=root_value,
                    variable_values=request_data.variables,
                    context_value=context,
                    operation_name=request_data.operation_name,
                    allowed_operation_types=allowed,
                    operation_extensions=request_data.extensions,
                )
            except CannotGetOperationTypeError as exc:
                raise HTTPException(400, exc.as_http_error_reason()) from exc
            except InvalidOperationTypeError as exc:
                if exc.operation_type == OperationType.SUBSCRIPTION:
                    where = f"the WebSocket at {settings.path} (graphql-transport-ws)"
                    raise HTTPException(400, f"subscriptions are served over {where}, not HTTP {request_adapter.method}") from exc
                raise HTTPException(400, exc.as_http_error_reason(request_adapter.method)) from exc
            except MissingQueryError as exc:
                raise HTTPException(400, "No GraphQL query found in the request") from exc

        def encode_json(self, data: object) -> str | bytes:
            if isinstance(data, _RawBody):
                return data.raw  # the database's JSON, spliced into {"data": …}, sent as it is
            return super().encode_json(data)

        async def process_result(self, request: Request[Any, Any, Any], result: ExecutionResult) -> GraphQLHTTPResponse:
            if isinstance(result, RawExecutionResult):
                return _RawBody(result.raw)  # type: ignore[return-value]
            # Every error leaves with a code; unexpected ones as "internal error" (see shape_error).
            if result.errors:
                result.errors = [shape_error(e) for e in result.errors]
                if metrics_on:
                    for error in result.errors:
                        GraphQLMetrics.error(str((error.extensions or {}).get("code", "INTERNAL")))
            return process_result(result)

    @get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ok", "plugins": rt.enabled_plugins}

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        workers = []
        if manage_runtime:
            await rt.start()
            if rt.settings.queues.run_workers:
                workers = start_workers(rt)
            if rt.settings.server.gc_tuning:
                tune_gc()
        try:
            await rt.tenant_id()
        except NotFoundError as exc:
            log.warning("%s; plugin routes that use the configured tenant (and dev mode) fail until it exists", exc)
        try:
            yield
        finally:
            for worker in workers:
                await worker.stop()
            if manage_runtime:
                await rt.stop()

    ide_routes = [graphiql_assets_router(settings.path)] if settings.graphiql else []
    metrics_routes = [metrics_route(rt)] if metrics_on else []
    plugins: list[Any] = []
    if rt.settings.tracing.enabled:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

        excluded = [rt.settings.metrics.path, "/healthz", f"{settings.path.rstrip('/')}/assets"]
        plugins.append(OpenTelemetryPlugin(OpenTelemetryConfig(exclude=excluded, exclude_spans=["receive", "send"])))
    app = Litestar(
        plugins=plugins,
        route_handlers=[GraphQLController, operator_controller(rt), healthz, *ide_routes, *metrics_routes, *_plugin_routes(rt)],
        middleware=[RequestIdMiddleware, *([http_metrics_middleware(rt.settings.metrics)] if metrics_on else [])],
        lifespan=[lifespan],
        debug=debug,
        # no OpenAPI pages (/schema, /schema/swagger …): the API is GraphQL, described by its
        # own introspection, and those pages were public
        openapi_config=None,
        exception_handlers={BusyError: _busy},
    )
    app.state.runtime = rt
    app.state.schema = schema
    return app
