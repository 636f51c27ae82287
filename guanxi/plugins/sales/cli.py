"""``guanxi sales …``: the lead pools with their return rules, the return rules the tenant's
plugins offer, and creating a pool (the GraphQL ``leadPools``, ``poolReturnRules`` and
``createLeadPool`` twins; a creation is audited as the CLI); the group also holds
``export-customers`` (:mod:`cli_export`), ``deal-pipelines`` and ``products`` (:mod:`cli_deals`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from guanxi import Actor, RequestContext, Runtime, Tx

CLI_ACTOR = Actor(kind="system", name="cli", roles=("admin",))
T = TypeVar("T")
TENANT = click.option("--tenant", "slug", default=None, help="Tenant slug (default: the configured tenant).")


def _in_tx(ctx: click.Context, slug: str | None, fn: Callable[[Tx], Awaitable[T]]) -> T:
    from guanxi.cli.common import run_async, runtime_of

    async def job(rt: Runtime) -> T:
        async with rt.transaction(RequestContext(tenant_id=await rt.tenant_id(slug), actor=CLI_ACTOR)) as tx:
            return await fn(tx)

    return run_async(runtime_of(ctx), job)


def _rule_setting(raw: str) -> tuple[str, int]:
    key, sep, value = raw.partition("=")
    if not sep or not value.strip().lstrip("-").isdigit():
        raise click.BadParameter(f"{raw!r}: give RULE=NUMBER, e.g. sales.no_won_deal=3", param_hint="--rule")
    return key.strip(), int(value)


@click.group("sales")
def sales() -> None:
    """The sales plugin: lead pools (公海) and their return rules, deal pipelines, products, exports."""


def _add_commands() -> None:
    from guanxi.plugins.sales.cli_deals import deal_pipelines, products
    from guanxi.plugins.sales.cli_export import export_customers

    for command in (export_customers, deal_pipelines, products):
        sales.add_command(command)


_add_commands()


@sales.command("pools")
@TENANT
@click.pass_context
def pools_cmd(ctx: click.Context, slug: str | None) -> None:
    """List the lead pools with their limits and return rules."""
    from guanxi.plugins.sales import pool as svc
    from guanxi.plugins.sales.pool_rules import available_rules

    async def show(tx: Tx) -> list[str]:
        rules = await available_rules(tx.runtime, tx.tenant_id, tx.session)
        lines = []
        for p in await svc.list_pools(tx.session):
            parts = [f"hold limit {p.hold_limit}" if p.hold_limit else "no hold limit"]
            if p.return_after_days:
                parts.append(f"no follow-up for {p.return_after_days} days")
            for key, value in (p.return_rules or {}).items():
                rule = rules.get(key)
                parts.append(f"{key}={value} ({rule.text(int(value)) if rule else 'not offered now: skipped'})")
            lines.append(f"{p.key}  {p.name}  " + "; ".join(parts))
        return lines

    for line in _in_tx(ctx, slug, show) or ["no lead pool"]:
        click.echo(line)


@sales.command("pool-rules")
@TENANT
@click.pass_context
def pool_rules_cmd(ctx: click.Context, slug: str | None) -> None:
    """List the return rules the tenant's plugins offer to lead pools."""
    from guanxi.plugins.sales.pool_rules import available_rules

    async def show(tx: Tx) -> list[str]:
        rules = await available_rules(tx.runtime, tx.tenant_id, tx.session)
        return [f"{r.key}  {r.min_value}-{r.max_value} {r.unit}  {r.description}" for r in rules.values()]

    for line in _in_tx(ctx, slug, show):
        click.echo(line)


@sales.command("create-pool")
@TENANT
@click.argument("key")
@click.argument("name")
@click.option("--hold-limit", type=int, default=None, help="Leads of this pool one salesperson may hold at once.")
@click.option("--return-after-days", type=int, default=None, help="A held lead without follow-up for this many days returns.")
@click.option("--rule", "rules", multiple=True, help="A contributed return rule with its parameter, RULE=NUMBER (repeatable).")
@click.pass_context
def create_pool_cmd(
    ctx: click.Context, slug: str | None, key: str, name: str, hold_limit: int | None, return_after_days: int | None, rules: tuple[str, ...]
) -> None:
    """Create a lead pool, e.g. ``guanxi sales create-pool inquiries 询盘公海 --rule sales.no_won_deal=3``."""
    from guanxi.plugins.sales import pool as svc

    given = dict(_rule_setting(r) for r in rules)
    if len(given) != len(rules):
        raise click.BadParameter("a rule is named twice", param_hint="--rule")
    data = svc.PoolInput(key=key, name=name, hold_limit=hold_limit, return_after_days=return_after_days, return_rules=given or None)

    async def create(tx: Tx) -> str:
        made = await svc.create_pool(tx, data)
        applied = ", ".join(f"{k}={v}" for k, v in (made.return_rules or {}).items())
        return f"lead pool {made.key} created" + (f" with {applied}" if applied else "")

    click.echo(_in_tx(ctx, slug, create))
