"""Commands for access and personal data: ``guanxi apikey``, ``guanxi customers export|erase``,
``guanxi db rls``, and the personal-data check of ``guanxi plugins --check``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click
from sqlalchemy import select

from guanxi.cli.common import run_async, runtime_of
from guanxi.core import auth
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import NotFoundError
from guanxi.core.domain.access import ROLES
from guanxi.core.domain.models import User
from guanxi.core.runtime import Runtime

CLI_ACTOR = Actor(kind="system", name="cli")


async def _user_id(rt: Runtime, tenant_id: uuid.UUID, user: str | None) -> uuid.UUID | None:
    """A user given by id or e-mail."""
    if user is None:
        return None
    async with rt.session(tenant_id) as session:
        try:
            found = await session.scalar(select(User.id).where(User.id == uuid.UUID(user)))
        except ValueError:
            found = await session.scalar(select(User.id).where(User.email == user.strip().lower()))
    if found is None:
        raise NotFoundError(f"no user {user!r} in this tenant")
    return found


@click.group("apikey")
def apikey() -> None:
    """API keys: create (shown once), list, revoke."""


@apikey.command("create")
@click.option("--tenant", "tenant", required=True, help="Tenant slug.")
@click.option("--role", required=True, type=click.Choice(list(ROLES)), help="The key's role.")
@click.option("--user", default=None, help="User (id or e-mail) the key acts for; required for sales and manager.")
@click.option("--name", default=None, help="A name to recognise the key by (default: the role).")
@click.option("--replace", is_flag=True, help="Revoke the tenant's other active keys of this name first.")
@click.pass_context
def apikey_create(ctx: click.Context, tenant: str, role: str, user: str | None, name: str | None, replace: bool) -> None:
    """Create an API key and print it (the only time it is shown)."""

    async def make(rt: Runtime) -> auth.CreatedApiKey:
        tenant_id = await rt.tenant_id(tenant)
        user_id = await _user_id(rt, tenant_id, user)
        async with rt.transaction(RequestContext(tenant_id=tenant_id, actor=CLI_ACTOR)) as tx:
            if replace:
                for old in await auth.list_api_keys(tx.session):
                    if old.name == (name or role) and old.revoked_at is None:
                        await auth.revoke_api_key(tx, old.key_id)
            created = await auth.create_api_key(tx, auth.authenticator_of(rt).secret, name=name or role, role=role, user_id=user_id)
        return created

    created = run_async(runtime_of(ctx), make, start_plugins=False)
    click.echo(created.key)
    click.echo(f"(key id {created.info.key_id}, role {created.info.role}; store it now, it is not shown again)", err=True)


@apikey.command("list")
@click.option("--tenant", "tenant", required=True, help="Tenant slug.")
@click.pass_context
def apikey_list(ctx: click.Context, tenant: str) -> None:
    """List the tenant's keys (never their secrets)."""

    async def show(rt: Runtime) -> list[auth.ApiKeyInfo]:
        async with rt.session(await rt.tenant_id(tenant)) as session:
            return await auth.list_api_keys(session)

    for k in run_async(runtime_of(ctx), show, start_plugins=False):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        used = f"last used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
        click.echo(f"{k.key_id}  {k.role:<9}  {k.name}  {state}, {used}")


@apikey.command("revoke")
@click.argument("key_id")
@click.option("--tenant", "tenant", required=True, help="Tenant slug.")
@click.pass_context
def apikey_revoke(ctx: click.Context, key_id: str, tenant: str) -> None:
    """Revoke a key by its key id (the part after gx_ and before the next underscore)."""

    async def revoke(rt: Runtime) -> auth.ApiKeyInfo:
        async with rt.transaction(RequestContext(tenant_id=await rt.tenant_id(tenant), actor=CLI_ACTOR)) as tx:
            return await auth.revoke_api_key(tx, key_id)

    run_async(runtime_of(ctx), revoke, start_plugins=False)
    click.echo(f"revoked {key_id}")


@click.group("customers")
def customers_group() -> None:
    """Personal-data rights: export everything held on a person, or erase it."""


@customers_group.command("export")
@click.argument("customer_id")
@click.option("--tenant", "tenant", required=True, help="Tenant slug.")
@click.pass_context
def customers_export(ctx: click.Context, customer_id: str, tenant: str) -> None:
    """Print everything held on a customer (core and plugins) as JSON."""
    from guanxi.core.services.privacy import export_customer_data

    async def export(rt: Runtime) -> dict[str, Any]:
        async with rt.session(await rt.tenant_id(tenant)) as session:
            return await export_customer_data(rt, session, _uuid(customer_id))

    click.echo(json.dumps(run_async(runtime_of(ctx), export), indent=2, ensure_ascii=False))


@customers_group.command("erase")
@click.argument("customer_id")
@click.option("--tenant", "tenant", required=True, help="Tenant slug.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def customers_erase(ctx: click.Context, customer_id: str, tenant: str, yes: bool) -> None:
    """Erase a customer's personal data across core and plugins (cannot be undone)."""
    from guanxi.core.services.privacy import erase_customer

    if not yes:
        click.confirm(f"Erase the personal data of customer {customer_id}? This cannot be undone", abort=True)

    async def erase(rt: Runtime) -> dict[str, int]:
        async with rt.transaction(RequestContext(tenant_id=await rt.tenant_id(tenant), actor=CLI_ACTOR)) as tx:
            return await erase_customer(tx, _uuid(customer_id))

    counts = run_async(runtime_of(ctx), erase)
    click.echo(json.dumps({"erased": counts}, indent=2))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a customer id (a UUID)") from None


def register(group: click.Group) -> None:
    group.add_command(apikey)
    group.add_command(customers_group)
