"""HTTP route of the sales plugin: ``GET /sales/customers.csv``, the CSV export of a filtered
customer list, authenticated like the API (``Authorization: Bearer <key>``) and streamed."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.exceptions import ClientException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Stream

from guanxi.core.auth import AuthenticationError, authenticator_of
from guanxi.core.base.errors import GuanxiError
from guanxi.core.runtime import Runtime
from guanxi.core.services import queries
from guanxi.core.services.fields import FieldCondition
from guanxi.plugins.sales import export


def _client_error(exc: GuanxiError) -> ClientException:
    return ClientException(detail=str(exc), extra={"code": exc.code, "field": exc.field})


def customer_filter(params: Any) -> queries.CustomerFilter:
    """The export's filter from the query string: ``stage`` and ``tag`` (repeatable: any of),
    ``search``, ``unassigned=true|false`` and ``field.<key>=<value>`` (a custom field equals the
    value; repeatable keys AND)."""
    fields = [
        FieldCondition(field=name.removeprefix("field."), eq=value, where=f"field.{name.removeprefix('field.')}")
        for name, value in params.multi_items()
        if name.startswith("field.")
    ]
    unassigned = params.get("unassigned")
    if unassigned not in (None, "true", "false"):
        raise ClientException(detail="unassigned must be true or false", extra={"code": "VALIDATION", "field": "unassigned"})
    return queries.CustomerFilter(
        stages=params.getall("stage", []) or None,
        tags_any=params.getall("tag", []) or None,
        search=params.get("search") or None,
        unassigned=None if unassigned is None else unassigned == "true",
        fields=fields or None,
    )


async def customers_csv(request: Request[Any, Any, Any]) -> Stream:
    runtime: Runtime = request.app.state.runtime
    try:
        ctx, _ = await authenticator_of(runtime).authenticate(request.headers.get("authorization"))
    except AuthenticationError as exc:
        raise NotAuthorizedException(detail=str(exc)) from None
    if not await runtime.plugin_enabled("sales", ctx.tenant_id):
        raise NotFoundException("the sales plugin is not enabled for this tenant")
    if not set(ctx.actor.roles) & set(export.EXPORT_ROLES):
        raise PermissionDeniedException(detail=f"exporting customers needs one of the roles {', '.join(export.EXPORT_ROLES)}")
    flt = customer_filter(request.query_params)
    rows = export.export_rows(runtime, ctx, flt)
    try:
        first = await anext(rows)  # the filter is checked (and the export audited) before the response starts
    except GuanxiError as exc:
        raise _client_error(exc) from None

    async def body() -> Any:
        yield first.encode()
        async for chunk in rows:
            yield chunk.encode()

    return Stream(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="customers.csv"', "Cache-Control": "no-store"},
    )


def routes(runtime: Runtime) -> list[Any]:
    return [get("/sales/customers.csv")(customers_csv)]
