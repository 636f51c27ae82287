"""Backup and restore, and upgrades with several processes, as docs/operations.md tells them:
SQLite's online backup (``guanxi db backup``) taken while the database is written, PostgreSQL's
``pg_dump -Fc`` / ``pg_restore``, and ``guanxi db upgrade`` started on several hosts at once
while a server keeps answering."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from guanxi.cli import build_cli
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import Customer
from guanxi.core.migrate import core_head, current, pending, upgrade
from guanxi.core.runtime import Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.services.pipelines import create_tenant
from guanxi.testing.plugin import PG_ENV, TEST_SECRET, _pg_admin

GUANXI = str(Path(sys.executable).with_name("guanxi"))
needs_pg = pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"PostgreSQL only ({PG_ENV}, or make test-pg)")


def sqlite_runtime(path: Path) -> Runtime:
    return Runtime.from_config(environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{path}", "GUANXI_PLUGINS": ""})


async def add_customers(rt: Runtime, tenant_id: uuid.UUID, names: list[str]) -> None:
    async with rt.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for name in names:
            await create_customer(tx, CustomerInput(display_name=name))


async def customer_names(rt: Runtime, tenant_id: uuid.UUID) -> list[str]:
    async with rt.session(tenant_id) as s:
        return sorted((await s.execute(select(Customer.display_name))).scalars())


async def test_a_sqlite_online_backup_restores_to_the_moment_it_was_taken(tmp_path: Path) -> None:
    """``guanxi db backup`` copies the live database while another connection holds it open
    and keeps writing; the copy, put in place of the database, opens at the current revision
    with exactly the rows written before the backup."""
    live = tmp_path / "guanxi.db"
    rt = sqlite_runtime(live)
    await upgrade(rt)
    await rt.start()
    try:
        async with rt.write_session(None) as s:
            tenant_id = await create_tenant(s, "backup", "Backup test")
        await add_customers(rt, tenant_id, [f"before {i}" for i in range(20)])
        async with rt.session(tenant_id) as reader:  # a reader holds the database open during the copy
            await reader.execute(select(func.count()).select_from(Customer))
            result = CliRunner().invoke(build_cli(rt), ["db", "backup", str(tmp_path / "copy.db")], obj=rt)
        assert result.exit_code == 0, result.output
        assert "backed up" in result.output
        await add_customers(rt, tenant_id, ["after"])
        again = CliRunner().invoke(build_cli(rt), ["db", "backup", str(tmp_path / "copy.db")], obj=rt)
        assert again.exit_code != 0 and "exists" in again.output
    finally:
        await rt.stop()

    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    shutil.copy(tmp_path / "copy.db", restored_dir / "guanxi.db")
    restored = sqlite_runtime(restored_dir / "guanxi.db")
    await restored.start()
    try:
        assert await current(restored) == {"core": [core_head()]}
        assert await pending(restored) == {"core": []}
        assert await customer_names(restored, tenant_id) == sorted(f"before {i}" for i in range(20))
    finally:
        await restored.stop()


def test_db_backup_refuses_postgresql_and_names_pg_dump() -> None:
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/x", "GUANXI_PLUGINS": ""})
    result = CliRunner().invoke(build_cli(rt), ["db", "backup", "x.db"], obj=rt)
    assert result.exit_code == 2 and "pg_dump -Fc" in result.output


def pg_tool(name: str) -> str:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian: postgresql-client)")
    return found


def run(*command: str) -> None:
    subprocess.run(command, check=True, timeout=120)


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@needs_pg
async def test_pg_dump_and_pg_restore_bring_back_every_row_and_the_migration_state(
    runtime: Runtime, tenant_id: uuid.UUID, database_url: str, tmp_path: Path
) -> None:
    """``pg_dump -Fc`` of the running database, ``pg_restore`` into a new database: the tenant's
    customers and every history's revision are there."""
    await add_customers(runtime, tenant_id, ["王芳", "李雷", "韩梅梅"])
    dump = tmp_path / "guanxi.dump"
    await asyncio.to_thread(run, pg_tool("pg_dump"), "-Fc", "-f", str(dump), "-d", libpq_url(database_url))
    name = f"guanxi_restore_{uuid.uuid4().hex[:8]}"
    await _pg_admin(database_url, f'CREATE DATABASE "{name}"')
    target = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(run, pg_tool("pg_restore"), "--no-owner", "-d", libpq_url(target), str(dump))
        restored = Runtime.from_config(environ={"GUANXI_DATABASE_URL": target, "GUANXI_PLUGINS": ""})
        await restored.start()
        try:
            assert await customer_names(restored, tenant_id) == sorted(["王芳", "李雷", "韩梅梅"])
            assert await pending(restored) == {"core": []}
        finally:
            await restored.stop()
    finally:
        await _pg_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_pg
async def test_upgrades_started_on_several_hosts_at_once_run_one_after_the_other_while_a_server_answers(
    database_url: str, tmp_path: Path
) -> None:
    """Three ``guanxi db upgrade`` on an empty database at once (one per host at deploy time):
    all succeed, the advisory lock lets one apply the revisions and the others find nothing to
    do; a server started on it keeps answering while another upgrade runs."""
    name = f"guanxi_upgrade_{uuid.uuid4().hex[:8]}"
    await _pg_admin(database_url, f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GUANXI")},
        "GUANXI_DATABASE_URL": url,
        "GUANXI__AUTH__SECRET": TEST_SECRET,
    }
    server: asyncio.subprocess.Process | None = None
    try:
        upgrades = [
            await asyncio.create_subprocess_exec(
                GUANXI, "db", "upgrade", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            for _ in range(3)
        ]
        outputs = [(await asyncio.wait_for(p.communicate(), 120))[0].decode() for p in upgrades]
        assert [p.returncode for p in upgrades] == [0, 0, 0], outputs
        assert all(f"core: {core_head()}" in out for out in outputs)
        rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": url, "GUANXI_PLUGINS": ""})
        async with rt.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
        await rt.engine.dispose()

        port = free_port()
        server_log = tmp_path / "server.log"
        with server_log.open("wb") as log:
            server = await asyncio.create_subprocess_exec(
                GUANXI, "serve", "--port", str(port), env=env, cwd=tmp_path, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + 90
            while True:
                assert server.returncode is None and time.monotonic() < deadline, server_log.read_text()
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            again = await asyncio.create_subprocess_exec(
                GUANXI, "db", "upgrade", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            answers = []
            while again.returncode is None:
                answers.append((await client.get(f"http://127.0.0.1:{port}/healthz")).status_code)
                await asyncio.sleep(0.05)
                if len(answers) > 1200:
                    break
            out, _ = await asyncio.wait_for(again.communicate(), 60)
            assert again.returncode == 0, out.decode()
            answers.append((await client.get(f"http://127.0.0.1:{port}/healthz")).status_code)
        assert set(answers) == {200}
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            await asyncio.wait_for(server.wait(), 15)
        await _pg_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
