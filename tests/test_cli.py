"""The `guanxi` command line, driven through click's runner with a real database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.migrate import core_head
from guanxi.core.runtime import Runtime


def _runtime(tmp_path: Path, plugins: str = "") -> Runtime:
    return Runtime.from_config(environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "GUANXI_PLUGINS": plugins})


def invoke(rt: Runtime, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(rt), list(args), obj=rt)
    return result.exit_code, result.output


def test_db_upgrade_applies_core_then_reports_nothing_pending(tmp_path: Path) -> None:
    code, out = invoke(_runtime(tmp_path), "db", "upgrade")
    assert code == 0, out
    assert f"core: {core_head()}" in out
    code, out = invoke(_runtime(tmp_path), "db", "current")
    assert code == 0 and f"core: applied {core_head()}; pending nothing" in out


def test_schema_prints_the_sdl_of_the_enabled_set(tmp_path: Path) -> None:
    code, out = invoke(_runtime(tmp_path), "schema")
    assert code == 0 and "type Customer implements Node {" in out and "loyaltyPoints" not in out
    code, out = invoke(_runtime(tmp_path, "loyalty"), "schema")
    assert code == 0 and "loyaltyPoints: Int!" in out


def test_tenant_create_then_duplicate_slug_fails_cleanly(tmp_path: Path) -> None:
    invoke(_runtime(tmp_path), "db", "upgrade")
    code, out = invoke(_runtime(tmp_path), "tenant", "create", "acme", "ACME Ltd")
    assert code == 0 and "tenant acme created" in out
    code, _ = invoke(_runtime(tmp_path), "tenant", "create", "acme", "ACME again")
    assert code != 0


def test_bad_config_stops_the_command_with_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "guanxi.toml"
    cfg.write_text("[server]\nworkers = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "guanxi", "plugins"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GUANXI_CONFIG": str(cfg)},
    )
    assert proc.returncode == 2
    assert "invalid config at `$.server.workers`: Expected `int` >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inbox_and_outbox_commands_list_show_and_replay(tmp_path: Path) -> None:
    import asyncio
    import datetime as dt
    import json

    from guanxi.core.domain.channels import InboundEvent, ProfileInput
    from guanxi.core.queues import inbox

    rt = _runtime(tmp_path)
    invoke(rt, "db", "upgrade")
    invoke(_runtime(tmp_path), "tenant", "create", "demo", "Demo")

    async def ingest() -> str:
        r = _runtime(tmp_path)
        tid = await r.tenant_id("demo")
        event = InboundEvent(
            channel="web",
            provider_event_id="e1",
            occurred_at=dt.datetime.now(dt.UTC),
            identity=ProfileInput(external_id="v1"),
            kind="visit",
        )
        result = await inbox.ingest(r, tid, event)
        await r.engine.dispose()
        return str(result.inbox_id)

    event_id = asyncio.run(ingest())
    code, out = invoke(_runtime(tmp_path), "inbox", "list", "--json")
    assert code == 0, out
    assert [(r["id"], r["status"]) for r in json.loads(out)] == [(event_id, "pending")]
    code, out = invoke(_runtime(tmp_path), "worker", "--once")
    assert code == 0 and json.loads(out.splitlines()[-1])["inbox"] == 1
    code, out = invoke(_runtime(tmp_path), "inbox", "show", event_id)
    assert code == 0 and json.loads(out)["status"] == "done"
    code, out = invoke(_runtime(tmp_path), "inbox", "replay", event_id)
    assert code == 0 and "queued again" in out
    code, out = invoke(_runtime(tmp_path), "outbox", "list")
    assert code == 0 and "(none)" in out


def _secret_runtime(tmp_path: Path) -> Runtime:
    return Runtime.from_config(
        environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "GUANXI__AUTH__SECRET_FILE": str(tmp_path / "secret")}
    )


def test_apikey_create_prints_the_key_once_then_list_and_revoke(tmp_path: Path) -> None:
    """The key is printed by create only; list shows key ids and state; revoke marks it; the
    server secret is created on first use with owner-only permissions."""
    invoke(_secret_runtime(tmp_path), "db", "upgrade")
    invoke(_secret_runtime(tmp_path), "tenant", "create", "acme", "ACME")
    result = CliRunner().invoke(
        build_cli(_secret_runtime(tmp_path)),
        ["apikey", "create", "--tenant", "acme", "--role", "admin", "--name", "ops"],
        obj=_secret_runtime(tmp_path),
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    assert key.startswith("gx_")
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    code, out = invoke(_secret_runtime(tmp_path), "apikey", "list", "--tenant", "acme")
    key_id = key.split("_")[1]
    assert code == 0 and f"{key_id}  admin      ops  active, never used" in out and key not in out
    code, out = invoke(_secret_runtime(tmp_path), "apikey", "revoke", key_id, "--tenant", "acme")
    assert code == 0 and f"revoked {key_id}" in out
    code, out = invoke(_secret_runtime(tmp_path), "apikey", "list", "--tenant", "acme")
    assert "revoked" in out
    code, out = invoke(_secret_runtime(tmp_path), "apikey", "create", "--tenant", "acme", "--role", "sales")
    assert code != 0 and "a sales key acts for a user" in out


def test_apikey_create_replace_revokes_the_previous_key_of_that_name(tmp_path: Path) -> None:
    """What `make run` relies on: each run prints a fresh demo key and the old one stops working."""
    invoke(_secret_runtime(tmp_path), "db", "upgrade")
    invoke(_secret_runtime(tmp_path), "tenant", "create", "acme", "ACME")
    for _ in range(2):
        code, _ = invoke(
            _secret_runtime(tmp_path), "apikey", "create", "--tenant", "acme", "--role", "admin", "--name", "make run", "--replace"
        )
        assert code == 0
    _, out = invoke(_secret_runtime(tmp_path), "apikey", "list", "--tenant", "acme")
    assert out.count("active") == 1 and out.count("revoked") == 1


def test_db_rls_needs_postgresql(tmp_path: Path) -> None:
    invoke(_secret_runtime(tmp_path), "db", "upgrade")
    code, out = invoke(_secret_runtime(tmp_path), "db", "rls", "enable")
    assert code != 0 and "row-level security needs PostgreSQL" in out


def test_jobs_and_notifications_commands_list_run_and_cancel(tmp_path: Path) -> None:
    """A task's reminders show in ``guanxi jobs list``; ``worker --once`` runs the due one and
    records the in-app notification; ``jobs cancel`` cancels the other, then refuses a second time."""
    import asyncio
    import datetime as dt
    import json

    from guanxi.core.base.context import RequestContext
    from guanxi.core.services import customers, tasks, users

    invoke(_runtime(tmp_path), "db", "upgrade")
    invoke(_runtime(tmp_path), "tenant", "create", "demo", "Demo")

    async def seed() -> None:
        r = _runtime(tmp_path)
        async with r.transaction(RequestContext(tenant_id=await r.tenant_id("demo"))) as tx:
            user = await users.create_user(tx, email="li@acme.example", name="Li")
            c = await customers.create_customer(tx, customers.CustomerInput(display_name="Wang", owner_id=user.id))
            due = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
            await tasks.create_task(tx, tasks.TaskInput(customer_id=c.id, title="Call", due_at=due))
        await r.engine.dispose()

    asyncio.run(seed())
    code, out = invoke(_runtime(tmp_path), "jobs", "list", "--json")
    assert code == 0, out
    listed = {r["kind"]: r for r in json.loads(out)}
    assert sorted(listed) == ["core.task_due_soon", "core.task_overdue"]
    code, out = invoke(_runtime(tmp_path), "worker", "--once")
    assert code == 0 and json.loads(out.splitlines()[-1])["scheduler"] == 1  # due soon: now; overdue: in 5 minutes
    code, out = invoke(_runtime(tmp_path), "jobs", "show", listed["core.task_due_soon"]["id"])
    assert code == 0 and json.loads(out)["status"] == "done"
    overdue = listed["core.task_overdue"]["id"]
    code, out = invoke(_runtime(tmp_path), "jobs", "cancel", overdue)
    assert code == 0 and f"{overdue}: cancelled" in out
    code, out = invoke(_runtime(tmp_path), "jobs", "cancel", overdue)
    assert code == 0 and "not cancelled: the job is already cancelled" in out
    code, out = invoke(_runtime(tmp_path), "notifications", "list")
    assert code == 0 and "(none)" in out  # no staff channel is enabled: the reminder is in-app only


def _fresh(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guanxi", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_commands_in_a_directory_never_migrated_say_run_db_upgrade_and_create_nothing(tmp_path: Path) -> None:
    """`apikey create` and `serve` in a fresh directory: a one-line hint, no traceback, and
    neither guanxi.db nor .guanxi/secret left behind; `db upgrade` then creates the database."""
    for args in (
        ["apikey", "create", "--tenant", "demo", "--role", "admin", "--name", "x"],
        ["serve"],
        ["customers", "export", "x", "--tenant", "demo"],
    ):
        proc = _fresh(tmp_path, *args)
        assert proc.returncode == 1, proc.stderr
        assert "run `guanxi db upgrade`" in proc.stderr
        assert "Traceback" not in proc.stderr and "no such table" not in proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [], args
    proc = _fresh(tmp_path, "db", "upgrade")
    assert proc.returncode == 0 and (tmp_path / "guanxi.db").exists()


def test_an_empty_database_file_is_reported_as_not_migrated(tmp_path: Path) -> None:
    (tmp_path / "guanxi.db").write_bytes(b"")
    proc = _fresh(tmp_path, "apikey", "list", "--tenant", "demo")
    assert proc.returncode == 1 and "no Guanxi tables yet: run `guanxi db upgrade`" in proc.stderr
    assert not (tmp_path / ".guanxi").exists()


def test_serve_refuses_a_port_out_of_range_from_the_option_and_the_environment(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    code, out = invoke(rt, "serve", "--port", "99999")
    assert code == 2 and "'--port': 99999 is not in the range 1<=x<=65535" in out
    code, out = invoke(rt, "serve", "--port", "0")
    assert code == 2 and "is not in the range" in out
    proc = subprocess.run(
        [sys.executable, "-m", "guanxi", "serve"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GUANXI__SERVER__PORT": "99999"},
    )
    assert proc.returncode == 2
    assert "environment variable GUANXI__SERVER__PORT: invalid config at `$.server.port`: Expected `int` <= 65535" in proc.stderr


def test_tenant_commands_create_list_choose_plugins_and_settings_suspend_and_delete(tmp_path: Path) -> None:
    """The operator's and the tenant admin's CLI: a tenant with its profile, its plugin choice and
    setting overrides (validated with the key path), suspended, resumed, then deleted with an export."""

    def rt() -> Runtime:
        return Runtime.from_config(
            environ={
                "GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
                "GUANXI_PLUGINS": "scoring",
                "GUANXI__AUTH__SECRET_FILE": str(tmp_path / "secret"),
            }
        )

    invoke(rt(), "db", "upgrade")
    code, out = invoke(rt(), "tenant", "create", "acme", "ACME", "--time-zone", "Europe/Paris", "--currency", "EUR", "--locale", "fr-FR")
    assert code == 0, out
    code, out = invoke(rt(), "tenant", "create", "bad", "Bad", "--time-zone", "Mars/Base")
    assert code != 0 and "unknown IANA time zone 'Mars/Base'" in out
    code, out = invoke(rt(), "tenant", "list")
    assert "acme\tactive\tEurope/Paris\tEUR\tfr-FR\tACME" in out
    code, out = invoke(rt(), "tenant", "plugin-settings", "acme", "scoring", "--set", '{"history_limit": 5}')
    assert code == 0 and 'overrides: {"history_limit": 5}' in out, out
    code, out = invoke(rt(), "tenant", "plugin-settings", "acme", "scoring", "--set", '{"history_limit": 0}')
    assert code != 0 and "settings.history_limit" in out
    code, out = invoke(rt(), "tenant", "plugin-settings", "acme", "scoring")
    assert 'overrides: {"history_limit": 5}' in out  # the bad change kept the old overrides
    assert invoke(rt(), "tenant", "plugin", "acme", "scoring", "disable")[0] == 0
    code, out = invoke(rt(), "tenant", "plugins", "acme")
    assert "scoring: disabled" in out
    assert invoke(rt(), "tenant", "suspend", "acme")[0] == 0
    assert "acme\tsuspended" in invoke(rt(), "tenant", "list")[1]
    assert invoke(rt(), "tenant", "resume", "acme")[0] == 0
    code, out = invoke(rt(), "tenant", "delete", "acme", "--export-dir", str(tmp_path / "exports"), "--yes")
    assert code == 0 and "exported to" in out, out
    assert len(list((tmp_path / "exports").glob("acme-*.json"))) == 1
    assert "acme" not in invoke(rt(), "tenant", "list")[1]


def test_pipelines_commands_create_change_and_list_stages(tmp_path: Path) -> None:
    """`guanxi pipelines`: create a pipeline with an arrival rule, add, rename, reorder, archive
    and delete stages; errors (an unknown stage) stop the command with the reason."""
    invoke(_runtime(tmp_path), "db", "upgrade")
    invoke(_runtime(tmp_path), "tenant", "create", "acme", "ACME")
    code, out = invoke(
        _runtime(tmp_path), "pipelines", "create", "renewal", "Renewal", "--tenant", "acme",
        "--source", "contract_end", "--stage", "due:Due", "--stage", "renewed:Renewed:won",
    )  # fmt: skip
    assert code == 0 and "pipeline renewal created" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "add-stage", "renewal", "quoted", "Quoted", "--position", "1", "--tenant", "acme")
    assert code == 0 and "stage quoted added at 1" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "rename-stage", "renewal", "due", "Renewal due", "--tenant", "acme")
    assert code == 0 and "'Renewal due'" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "reorder", "renewal", "quoted", "due", "renewed", "--tenant", "acme")
    assert code == 0 and "quoted → due → renewed" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "delete-stage", "renewal", "quoted", "--tenant", "acme")
    assert code == 0 and "stage quoted deleted" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "archive-stage", "default", "churned", "--tenant", "acme")
    assert code == 0 and "stage churned archived" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "rename-stage", "renewal", "nope", "X", "--tenant", "acme")
    assert code != 0 and "unknown stage 'nope' in pipeline 'renewal'" in out, out
    code, out = invoke(_runtime(tmp_path), "pipelines", "list", "--tenant", "acme")
    assert code == 0, out
    assert "renewal: Renewal sources=contract_end" in out and "  0. due [open] Renewal due" in out
    assert "churned" not in out
    code, out = invoke(_runtime(tmp_path), "pipelines", "list", "--tenant", "acme", "--archived")
    assert "churned [churned] Churned (archived)" in out
