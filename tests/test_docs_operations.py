"""docs/operations.md is run, not just read: every command of its shell blocks is executed here
on the demo data (issue 12, item 19), with the result the page states where it states one.

``guanxi …`` lines run through the real CLI in-process (click's runner) in a directory holding
the demo tenant, with every installed plugin loaded; a synopsis line (``guanxi inbox show ID``)
runs ``--help`` of each command it names; ``guanxi serve`` runs up to the point where uvicorn
would take over; ``guanxi worker`` runs as a real process that SIGTERM stops. Transcript blocks
(``$ guanxi …`` followed by output) check that each output line the page shows is printed (lines
with ``...``/``…`` or a fingerprint stand for values that differ per run).

Lines that are not ``guanxi`` commands are checked as far as this machine allows, each by a rule
below; the rule for each kind of line is explicit, so a new kind of line fails the test until
someone decides how to check it.
"""

from __future__ import annotations

import json
import logging.config
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "operations.md"
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
SHELL = {"console", "sh", "bash"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
CUSTOMER_PLACEHOLDER = "01a209ff-2e3f-70e9-a849-8e42b604acd8"
API_KEY_PLACEHOLDER = "3f9c0a1b2d4e5f60"
OPERATOR_KEY_PLACEHOLDER = "5f0c9a1e2b3d4c6f"
# A valid WeCom EncodingAESKey (43 characters) and token for the `account-set` example's `...`.
WECOM_VALUES = {"GUANXI_WECOM_TOKEN": "opsdoctoken", "GUANXI_WECOM_AES": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}


@dataclass
class Line:
    """One command of the page: its text, the output a transcript shows under it, its block."""

    command: str
    shown_output: list[str] = field(default_factory=list)
    block: int = 0
    page_line: int = 0


def page_commands() -> list[Line]:
    """Commands of the page's shell blocks in order: continuation lines joined, comments dropped.
    In a transcript block (lines starting ``$ ``) only those lines are commands; the lines under
    one are its shown output."""
    text = PAGE.read_text(encoding="utf-8")
    out: list[Line] = []
    for n, block in enumerate(m for m in FENCE.finditer(text) if m.group("lang") in SHELL):
        start = text[: block.start()].count("\n") + 2
        body = block.group("body").replace("\\\n", " ")
        transcript = any(raw.startswith("$ ") for raw in body.splitlines())
        for raw in body.splitlines():
            if transcript:
                if raw.startswith("$ "):
                    out.append(Line(raw[2:].strip(), block=n, page_line=start))
                elif out and out[-1].block == n and raw.strip():
                    out[-1].shown_output.append(raw.strip())
                continue
            line = re.sub(r"\s+#\s.*$", "", raw).strip()
            if line and not line.startswith("#"):
                out.append(Line(line, block=n, page_line=start))
    return out


class Site:
    """A directory with a Guanxi database, driven through the CLI."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.environ = {
            "GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'guanxi.db'}",
            "GUANXI__AUTH__SECRET_FILE": str(tmp / ".guanxi" / "secret"),
            # the plugins the page's examples load (tenant plugins, channel accounts)
            "GUANXI_PLUGINS": "wecom,referral,scoring",
        }
        self.api_key_id = ""
        self.operator_key_id = ""

    def cli(self, args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> tuple[int, str]:
        environ = {**self.environ, **(env or {})}
        rt = Runtime.from_config(None, environ=environ)
        old = os.getcwd()
        os.chdir(self.tmp)
        try:
            result = CliRunner().invoke(build_cli(rt), args, obj=rt, input=input, env=env)
        finally:
            os.chdir(old)
        return result.exit_code, result.output


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path / "demo")
    for args in (["db", "upgrade"], ["demo", "--if-empty"], ["tenant", "create", "acme", "Acme 公司"]):
        code, out = s.cli(args)
        assert code == 0, (args, out)
    return s


def a_demo_customer(site: Site) -> str:
    """The UUID of one of the demo tenant's customers (the page's placeholder stands for one)."""
    import asyncio

    from sqlalchemy import select

    from guanxi.core.domain.models import Customer, Tenant

    async def first() -> str:
        rt = Runtime.from_config(None, environ=site.environ)
        try:
            async with rt.engine.connect() as conn:
                query = select(Customer.id).join(Tenant, Tenant.id == Customer.tenant_id).where(Tenant.slug == "demo").limit(1)
                return str((await conn.execute(query)).scalar_one())
        finally:
            await rt.engine.dispose()

    return asyncio.run(first())


def pg_tool(name: str) -> Path | None:
    """A PostgreSQL client tool: the newest /usr/lib/postgresql/<v>/bin one, else on PATH."""
    import shutil

    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1]
    which = shutil.which(name)
    return Path(which) if which else None


def is_synopsis(words: list[str]) -> bool:
    return any("|" in w or w.startswith("[") for w in words) or any(w in ("ID", "JOB_ID", "DELIVERY_ID", "FILE", "...") for w in words)


def run_synopsis(site: Site, words: list[str]) -> None:
    """``guanxi inbox list|show ID [--limit N]``: each command it names answers ``--help``."""
    path: list[str] = []
    for w in words:
        if w.startswith(("-", "[")) or w.isupper() or w == "...":
            break
        path.append(w)
    variants = [p.split("|") for p in path]
    commands = [[]]  # type: list[list[str]]
    for options in variants:
        commands = [[*c, o] for c in commands for o in options]
    for command in commands:
        code, out = site.cli([*command, "--help"])
        assert code == 0, (words, command, out)


def split_env(words: list[str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = WECOM_VALUES.get(name, value) if value in ("...", "…") else value
    return env, words


def run_worker_until_sigterm(site: Site, env: dict[str, str]) -> None:
    """``guanxi worker``: a real process; it starts, and SIGTERM stops it cleanly (exit code 0)."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **site.environ, **env}
    command = [sys.executable, "-m", "guanxi", "worker"]
    proc = subprocess.Popen(command, cwd=site.tmp, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # SIGTERM once it says its workers run (its signal handlers are installed by then)
        import selectors

        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 120
            line = b""
            while b"workers running" not in line:
                assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[1].decode()
                if sel.select(timeout=1):
                    line = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()


def run_guanxi(site: Site, line: Line, words: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run one ``guanxi …`` command of the page; return what it printed."""
    redirect: str | None = None
    if ">" in words:
        i = words.index(">")
        redirect, words = words[i + 1], words[:i]
    words = [site.api_key_id if w == API_KEY_PLACEHOLDER else w for w in words]
    words = [site.operator_key_id if w == OPERATOR_KEY_PLACEHOLDER else w for w in words]
    words = [a_demo_customer(site) if w == CUSTOMER_PLACEHOLDER else w for w in words]
    words = [str(ROOT / w) if w.startswith("tests/fixtures/") else w for w in words]
    words = [str(site.tmp / "home" / w[2:]) if w.startswith("~/") else w for w in words]
    args = words[1:]
    if is_synopsis(args):
        run_synopsis(site, args)
        return ""
    if args[:1] == ["worker"] and "--once" not in args:
        run_worker_until_sigterm(site, env)
        return ""
    if args[:1] == ["serve"]:
        import uvicorn

        seen: dict[str, Any] = {}
        monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
        monkeypatch.setenv("GUANXI__SERVER__DEV", "false")
        # `serve --workers N` points prometheus_client at a per-run folder in this process's
        # environment (uvicorn's workers would inherit it): restored after the test
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        code, out = site.cli(args, env)
        assert code == 0 and seen, (line, out)
        if "--host" in args:
            assert seen["host"] == args[args.index("--host") + 1]
        if "--workers" in args:
            assert seen["workers"] == int(args[args.index("--workers") + 1])
        return out
    if args[:2] == ["db", "rls"] and "postgresql" not in site.environ["GUANXI_DATABASE_URL"]:
        code, out = site.cli(args, env)  # the page's site is SQLite: the documented refusal
        assert code == 1 and "row-level security needs PostgreSQL" in out, (line, out)
        return out
    # `--secret secret` asks for the value without echoing it; "erase" asks to confirm.
    answer = "an-app-secret\n" if "--secret" in args and "secret" in args else ("y\n" if args[:2] == ["customers", "erase"] else None)
    code, out = site.cli(args, env, input=answer)
    assert code == 0, (line, out)
    if args[:2] == ["apikey", "create"]:
        site.api_key_id = re.search(r"key id ([0-9a-f]{16})", out).group(1)  # type: ignore[union-attr]
    if args[:2] == ["operator", "key"]:
        site.operator_key_id = re.search(r"operator key ([0-9a-f]{16})", out).group(1)  # type: ignore[union-attr]
    if redirect is not None:
        target = site.tmp / redirect
        target.write_text(out, encoding="utf-8")
        if redirect.endswith(".json"):
            json.loads(out)
        elif redirect.endswith(".graphql"):
            import graphql

            graphql.build_schema(out)
    return out


def check_shown_output(line: Line, out: str) -> None:
    for shown in line.shown_output:
        if any(mark in shown for mark in ("...", "…", "hmac:")):
            continue
        # ids differ per run: a 16-hex key id or a UUID on the page stands for any
        pattern = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[0-9a-f-]{36}", re.escape(shown))
        pattern = re.sub(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])", "[0-9a-f]{16}", pattern)
        assert re.search(pattern, out), f"{PAGE.name}:{line.page_line}: `{line.command}` does not print {shown!r}; it printed:\n{out}"


def check_other(line: Line, words: list[str], env: dict[str, str], site: Site) -> None:
    """The rule for each line that is not a ``guanxi`` command."""
    tool = words[0]
    if tool == "make":
        targets = re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
        assert words[1] in targets  # wraps commands run here (see tests/test_docs_demo.py) or the suite itself
    elif tool == "pip":
        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        name, _, extra = words[2].partition("[")
        assert name == project["name"]
        if extra:
            assert extra.rstrip("]") in project["optional-dependencies"]
    elif tool == "docker":
        # No Docker engine runs on this machine; tests/deploy runs the image's commands and
        # checks the Dockerfile. Here: the commands given to the image are real commands.
        assert (ROOT / "Dockerfile").is_file()
        if words[1] == "run":  # `docker run [options] IMAGE guanxi COMMAND…`: the image is `guanxi`
            i = next(i for i in range(2, len(words) - 1) if words[i] == words[i + 1] == "guanxi")
            code, out = site.cli([*words[i + 2 :], "--help"])
            assert code == 0, (line, out)
    elif tool in ("pg_dump", "createdb", "pg_restore"):
        # PostgreSQL's own tools against the operator's server: here, the
        # flags are ones those tools document (checked against the installed tool when there is
        # one); test_the_documented_postgresql_backup_restores runs them for real.
        binary = pg_tool(tool)
        if binary is not None:
            helptext = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
            for flag in (w for w in words[1:] if w.startswith("-")):
                name = flag.split("=")[0] if flag.startswith("--") else flag[:2]
                assert re.search(rf"(^|[\s,]){re.escape(name)}\b", helptext, re.MULTILINE), (line, flag)
    elif tool == "uvicorn":
        import uvicorn

        config_name = words[words.index("--log-config") + 1]
        blocks = FENCE.finditer(PAGE.read_text(encoding="utf-8"))
        documented = [m.group("body") for m in blocks if m.group("lang") == "json" and '"loggers"' in m.group("body")]
        assert documented, f"{config_name} is not shown on the page"
        logging.config.dictConfig(json.loads(documented[-1]))
        logging.getLogger("guanxi").propagate = True  # undo the example's settings for the rest of the suite
        app = uvicorn.Config(words[1], factory="--factory" in words).load
        previous = dict(os.environ)
        os.environ.update(site.environ)
        try:
            app()
        finally:
            os.environ.clear()
            os.environ.update(previous)
    else:
        raise AssertionError(f"{PAGE.name}:{line.page_line}: a command this test has no rule for: {line.command!r}")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("guanxi")
    state = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(state[0])
    logger.handlers[:] = state[1]
    logger.propagate = state[2]


def test_every_shell_command_of_operations_md_runs(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Each command of the page runs with exit code 0 (or by its explicit rule), in page order.
    The install block (`guanxi tenant create demo …` on a new directory) runs in a fresh
    directory, as the page says; every other block runs on the demo data."""
    fresh = Site(tmp_path / "fresh")
    lines = page_commands()
    fresh_blocks = {ln.block for ln in lines if ln.command.startswith("guanxi tenant create demo")}
    exported: dict[str, str] = {}
    ran = 0
    for line in lines:
        target = fresh if line.block in fresh_blocks else site
        words = shlex.split(line.command)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            exported[name] = value
            continue
        env, words = split_env(words)
        if words[0] == "guanxi":
            run_env = {**{k: v for k, v in exported.items() if k != "GUANXI_DATABASE_URL"}, **env}
            if "GUANXI_DATABASE_URL" in exported:
                # The page's server (db.internal) is the operator's: the URL is checked to be one
                # Guanxi accepts; the commands run on this test's database.
                rt = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": exported["GUANXI_DATABASE_URL"]})
                assert rt.settings.database.url.startswith("postgresql+asyncpg://")
            out = run_guanxi(target, line, words, run_env, monkeypatch)
            check_shown_output(line, out)
        else:
            check_other(line, words, env, target)
        ran += 1
    assert ran >= 40


def test_the_documented_postgresql_backup_restores(tmp_path: Path) -> None:
    """docs/operations.md, "Backup and restore": the page's pg_dump / createdb / pg_restore lines,
    run against the test PostgreSQL server (the page's db.internal replaced by it), restore a
    database with the same customers."""
    import asyncio
    import secrets

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from guanxi.testing.plugin import PG_ENV, _pg_admin

    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"needs a PostgreSQL server ({PG_ENV}); CI's PostgreSQL leg runs it")
    if any(pg_tool(t) is None for t in ("pg_dump", "createdb", "pg_restore")):
        pytest.fail("PostgreSQL's client tools are missing beside the server")
    url = make_url(base)
    original, restored = f"guanxi_opsdoc_{secrets.token_hex(4)}", f"guanxi_restored_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{original}"'))
    try:
        site = Site(tmp_path / "pg")
        site.environ["GUANXI_DATABASE_URL"] = url.set(database=original).render_as_string(hide_password=False)
        for args in (["db", "upgrade"], ["demo", "--if-empty"]):
            code, out = site.cli(args)
            assert code == 0, (args, out)
        libpq = {"PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432), "PGUSER": url.username or "postgres"}
        if url.password:
            libpq["PGPASSWORD"] = url.password
        environ = {**os.environ, **libpq}
        lines = [ln.command for ln in page_commands() if ln.command.split()[0] in ("pg_dump", "createdb", "pg_restore")]
        assert len(lines) == 3
        for command in lines:
            names = {"postgresql://guanxi@db.internal/guanxi_restored": f"postgresql:///{restored}", "guanxi_restored": restored}
            names["postgresql://guanxi@db.internal/guanxi"] = f"postgresql:///{original}"
            words = [names.get(w, w) for w in shlex.split(command)]
            argv = [str(pg_tool(words[0])), *words[1:]]
            done = subprocess.run(argv, check=False, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, (command, done.stderr)

        async def count(database: str) -> int:
            from sqlalchemy.ext.asyncio import create_async_engine

            engine = create_async_engine(url.set(database=database))
            try:
                async with engine.connect() as conn:
                    return int((await conn.execute(text("SELECT count(*) FROM customers"))).scalar_one())
            finally:
                await engine.dispose()

        assert asyncio.run(count(restored)) == asyncio.run(count(original)) > 0
    finally:
        for name in (original, restored):
            asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
