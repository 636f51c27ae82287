"""PostgreSQL row-level security: the second wall, checked with raw SQL that skips the ORM filter."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from guanxi.app import create_app
from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.storage.tenancy import UNSCOPED
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, api_key


async def cli(database_url: str, *args: str) -> Result:
    """Run a ``guanxi`` command as the database owner (in a thread: the CLI runs its own loop)."""
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": database_url})
    return await asyncio.to_thread(CliRunner().invoke, build_cli(rt), list(args), obj=rt)


@pytest.fixture
async def app_runtime(runtime: Runtime, database_url: str) -> AsyncIterator[Runtime]:
    """RLS enabled on the test database, and a runtime connected as an ordinary role (no
    superuser, no BYPASSRLS) with database.row_level_security on."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row-level security is PostgreSQL's")
    role, password = f"guanxi_app_{secrets.token_hex(4)}", secrets.token_hex(12)
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOBYPASSRLS"))
        await conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        await conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
    result = await cli(database_url, "db", "rls", "enable")
    assert result.exit_code == 0 and "row-level security enabled on" in result.output, result.output
    url = make_url(database_url).set(username=role, password=password).render_as_string(hide_password=False)
    env = {"GUANXI_DATABASE_URL": url, "GUANXI__DATABASE__ROW_LEVEL_SECURITY": "true", "GUANXI__AUTH__SECRET": TEST_SECRET}
    app_rt = Runtime.from_config(environ=env)
    try:
        yield app_rt
    finally:
        await app_rt.engine.dispose()
        assert (await cli(database_url, "db", "rls", "disable")).exit_code == 0
        async with runtime.engine.begin() as conn:
            await conn.execute(text(f"DROP OWNED BY {role}"))
            await conn.execute(text(f"DROP ROLE {role}"))


async def test_rls_status_lists_every_tenant_table_with_its_policy(database_url: str, app_runtime: Runtime) -> None:
    result = await cli(database_url, "db", "rls", "status")
    assert result.exit_code == 0
    assert "customers: enabled=yes, forced=yes, policy=yes" in result.output
    assert "interactions: enabled=yes, forced=yes, policy=yes" in result.output


async def test_raw_sql_through_a_session_sees_only_its_tenant(runtime: Runtime, app_runtime: Runtime) -> None:
    tenants = []
    for name in ("a", "b"):
        async with app_runtime.session(None) as s, s.begin():
            from guanxi.core.storage.tenancy import unscoped

            with unscoped(s):
                tenants.append(await create_tenant(s, f"rls-{name}-{secrets.token_hex(3)}", name))
        async with app_runtime.transaction(RequestContext(tenant_id=tenants[-1])) as tx:
            await customers.create_customer(tx, customers.CustomerInput(display_name=f"customer of {name}"))
    a, b = tenants
    async with app_runtime.session(a) as s:
        # no ORM filter here: marked unscoped for the application's chokepoint, RLS still applies
        names = (await s.execute(text("SELECT display_name FROM customers").execution_options(**{UNSCOPED: True}))).scalars().all()
    assert names == ["customer of a"]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with app_runtime.write_session(a) as s:
            plant = "INSERT INTO tags (tenant_id, id, group_name, name, created_at) VALUES (:t, :i, '', 'planted', now())"
            await s.execute(text(plant).execution_options(**{UNSCOPED: True}), {"t": b, "i": uuid.uuid4()})
    async with app_runtime.session(None) as s:  # no tenant, not unscoped: nothing at all
        assert (await s.execute(text("SELECT count(*) FROM customers").execution_options(**{UNSCOPED: True}))).scalar() == 0
    key = await api_key(app_runtime, a, "admin")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(app_runtime)), base_url=BASE_URL) as c:
        body = (
            await c.post(
                "/graphql",
                json={"query": "{ customers { totalCount edges { node { displayName } } } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
        ).json()
    assert body["data"]["customers"]["totalCount"] == 1  # the application works as usual under the policies


async def test_an_import_under_row_level_security_writes_its_tenant_s_rows(app_runtime: Runtime, tmp_path: object) -> None:
    """The CSV import writes by COPY on PostgreSQL, which PostgreSQL refuses for a table with
    row-level security: under the policies it inserts by executemany instead, and its rows are
    the tenant's (the policies would refuse any other)."""
    from pathlib import Path

    from guanxi.core.storage.tenancy import unscoped
    from guanxi.importer.csv_import import import_customers

    async with app_runtime.session(None) as s, s.begin():
        with unscoped(s):
            tenant = await create_tenant(s, f"rls-import-{secrets.token_hex(3)}", "import")
    path = Path(str(tmp_path)) / "customers.csv"
    path.write_text("name,phone,email,tags\nLi Lei,+86 13800000001,li@example.com,vip\nHan Meimei,,han@example.com,vip\n")
    report = await import_customers(app_runtime, tenant, path)
    assert (report.created, report.error_count) == (2, 0)
    async with app_runtime.session(tenant) as s:
        rows = (await s.execute(text("SELECT kind, value FROM contact_points").execution_options(**{UNSCOPED: True}))).all()
    assert sorted(rows) == [("email", "han@example.com"), ("email", "li@example.com"), ("phone", "+8613800000001")]


async def test_the_deployment_jobs_are_kept_under_row_level_security(runtime: Runtime, app_runtime: Runtime) -> None:
    """The scheduler's check of the deployment's jobs reads and deletes across tenants: as an
    ordinary role under the policies it still leaves one job of each kind, carried by an active
    tenant, and moves one off a suspended tenant (other tests' tenants share this database, so
    the test checks that rule rather than which tenant carries them)."""
    from guanxi.core.services import reminders
    from guanxi.core.storage.tenancy import unscoped

    async with app_runtime.session(None) as s, s.begin():
        with unscoped(s):
            await create_tenant(s, f"rls-jobs-{secrets.token_hex(3)}", "jobs")

    async def carriers() -> dict[str, list[tuple[uuid.UUID, str]]]:
        sql = "SELECT j.key, j.tenant_id, t.status FROM scheduled_jobs j JOIN tenants t ON t.id = j.tenant_id WHERE j.key = ANY(:k)"
        async with runtime.engine.connect() as conn:  # the owner: sees every row
            rows = (await conn.execute(text(sql), {"k": list(reminders.DEPLOYMENT_JOBS)})).all()
        out: dict[str, list[tuple[uuid.UUID, str]]] = {}
        for key, tenant_id, status in rows:
            out.setdefault(key, []).append((tenant_id, status))
        return out

    assert await reminders.schedule_deployment_jobs(app_runtime, replace=False)
    before = await carriers()
    assert sorted(before) == sorted(reminders.DEPLOYMENT_JOBS)
    assert all(len(held) == 1 and held[0][1] == "active" for held in before.values())
    suspended = before["core.counts_fold"][0][0]
    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE tenants SET status = 'suspended' WHERE id = :t"), {"t": suspended})
    try:
        assert await reminders.schedule_deployment_jobs(app_runtime, replace=False)
        after = await carriers()
    finally:
        async with runtime.engine.begin() as conn:
            await conn.execute(text("UPDATE tenants SET status = 'active' WHERE id = :t"), {"t": suspended})
    assert all(len(held) == 1 and held[0][1] == "active" for held in after.values())
    assert after["core.counts_fold"][0][0] != suspended
