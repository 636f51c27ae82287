"""``guanxi sales export-customers``: the CSV export of a filtered customer list
(issue 20 item 8) from the command line.

The command acts as the holder of an API key (or a JWT bearer token), so the key's role and
ownership limits apply exactly as on ``GET /sales/customers.csv``: a salesperson's export holds
their own customers, a manager's the team's. The filter is the ``CustomerFilter`` of GraphQL's
``customers(filter:)`` as JSON (camelCase keys, custom-field conditions under ``fields``, the
plugins' filter fields such as ``scoreGte``), checked against the running schema itself, so it
means exactly what it means there. Rows are written a page at a time (:mod:`export`)."""

from __future__ import annotations

import json
from typing import Any

import click

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import GuanxiError, NotFoundError, ValidationError
from guanxi.core.runtime import Runtime
from guanxi.core.services import queries


def api_filter(runtime: Runtime, raw: Any) -> queries.CustomerFilter | None:
    """The service filter for a ``CustomerFilter`` input given as JSON, coerced by the schema of
    this runtime (core's and every loaded plugin's filter fields). A bad value raises
    ``VALIDATION`` naming its path (``filter.fields[0].eq``)."""
    from graphql import coerce_input_value
    from graphql.utilities import validate_input_value
    from strawberry.types.arguments import convert_argument

    from guanxi.graphql.query import core_filter
    from guanxi.graphql.schema import build_schema, contributions

    if raw is None:
        return None
    schema = build_schema(runtime, compile_operations=False)
    gql_type: Any = schema._schema.get_type("CustomerFilter")
    problems: list[tuple[str, str]] = []

    def on_error(error: Any, path: list[Any]) -> None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        problems.append((f"filter{where}", error.message))

    validate_input_value(raw, gql_type, on_error)
    if problems:
        where, message = problems[0]
        raise ValidationError(f"{where}: {message}", field=where)
    coerced = coerce_input_value(raw, gql_type)
    definition: Any = schema.get_type_by_name("CustomerFilter")
    value: Any = convert_argument(coerced, definition.origin, schema.schema_converter.scalar_registry, schema.config)
    extra = [f for _, part in contributions(runtime) for f in part.customer_filters]
    return core_filter(value, extra)


async def caller(runtime: Runtime, credential: str) -> RequestContext:
    """The context of the key's (token's) holder; refused unless it may export."""
    from guanxi.core.auth import authenticator_of
    from guanxi.plugins.sales import export

    ctx, _ = await authenticator_of(runtime).authenticate(f"Bearer {credential}")
    if not await runtime.plugin_enabled("sales", ctx.tenant_id):
        raise NotFoundError("the sales plugin is not enabled for this tenant")
    if not set(ctx.actor.roles) & set(export.EXPORT_ROLES):
        raise GuanxiError(f"exporting customers needs one of the roles {', '.join(export.EXPORT_ROLES)}", code="FORBIDDEN")
    return ctx


async def export_to(runtime: Runtime, credential: str, raw_filter: Any, output: str) -> None:
    """Write the CSV to ``output`` (``-``: standard output), a page at a time. The file is
    opened only once the filter compiled, so a bad filter leaves no file behind."""
    from guanxi.plugins.sales import export

    ctx = await caller(runtime, credential)
    flt = api_filter(runtime, raw_filter)
    rows = export.export_rows(runtime, ctx, flt)
    header = await anext(rows)
    with click.open_file(output, "wb") as out:
        out.write(header.encode())
        async for chunk in rows:
            out.write(chunk.encode())


@click.command("export-customers")
@click.option(
    "--api-key",
    "credential",
    envvar="GUANXI_API_KEY",
    required=True,
    help="API key (or JWT bearer token) to act as; its role and ownership limits apply. Env: GUANXI_API_KEY.",
)
@click.option(
    "--filter",
    "filter_json",
    default=None,
    help='the CustomerFilter of customers(filter:) as JSON, e.g. \'{"stages": ["lead"], "fields": [{"field": "grade", "eq": "A"}]}\'.',
)
@click.option("--output", "-o", default="-", show_default=True, help="CSV file to write ('-': standard output).")
@click.pass_context
def export_customers(ctx: click.Context, credential: str, filter_json: str | None, output: str) -> None:
    """Export a filtered customer list as CSV (UTF-8, custom fields as columns), streamed page by page."""
    from guanxi.cli.common import run_async, runtime_of

    try:
        raw = json.loads(filter_json) if filter_json is not None else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc.msg}", param_hint="--filter") from None

    async def job(runtime: Runtime) -> None:
        try:
            await export_to(runtime, credential, raw, output)
        except GuanxiError as exc:  # the code first: VALIDATION, FORBIDDEN, UNAUTHENTICATED …
            raise click.ClickException(f"{exc.code}: {exc}") from None

    run_async(runtime_of(ctx), job)
