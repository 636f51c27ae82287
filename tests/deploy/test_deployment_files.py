"""The deployment files: the container image installs from the lock file what a server needs
(GraphiQL's files and the poster font included, no dev tools), and the systemd units run
commands the CLI accepts."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"


def build_stage_copies() -> list[str]:
    """The sources the Dockerfile's build stage copies (``COPY a b ./`` lines, not --from)."""
    copies: list[str] = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copies.extend(line.split()[1:-1])
    return copies


def test_the_image_pins_the_makefiles_uv_and_copies_only_what_dockerignore_lets_through() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (uv_version,) = re.findall(r"^UV_VERSION := (\S+)$", makefile, flags=re.M)
    assert f"uv=={uv_version}" in dockerfile
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line.startswith("!")}
    assert set(build_stage_copies()) == allowed


@pytest.mark.skipif(not UV.is_file(), reason="needs the project's uv (.tools/bin/uv, made by make install)")
def test_the_image_install_from_the_lock_file_ships_graphiql_the_poster_font_and_no_dev_tools(tmp_path: Path) -> None:
    """deploy/install.sh, run on exactly what the Dockerfile copies, installs Guanxi as a wheel
    with PostgreSQL and the builtin plugins' dependencies from uv.lock; the installed package
    holds GraphiQL's files and the poster font, and the CLI has serve and worker."""
    app = tmp_path / "app"
    for source in build_stage_copies():
        src, dst = ROOT / source, app / source
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    subprocess.run(["sh", "deploy/install.sh"], cwd=app, env={**env, "UV": str(UV)}, check=True, timeout=600, capture_output=True)
    python = app / ".venv" / "bin" / "python"
    probe = (
        "import sys, importlib.util as u, guanxi.graphql.ide as ide, guanxi.plugins.referral.poster as poster; "
        "print(ide.ASSETS_DIR.is_relative_to(sys.prefix), "
        "sorted(p.name for p in ide.ASSETS_DIR.iterdir()) == sorted(ide.ASSETS.values()), "
        "poster.DEFAULT_FONT.is_file(), u.find_spec('asyncpg') is not None, u.find_spec('pytest') is None)"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True"] * 5, out.stdout + out.stderr
    helped = subprocess.run(
        [str(app / ".venv" / "bin" / "guanxi"), "--help"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "serve" in helped.stdout and "worker" in helped.stdout


@pytest.mark.parametrize("unit", ["guanxi-api.service", "guanxi-worker@.service"])
def test_each_systemd_unit_runs_a_command_the_cli_accepts(unit: str, tmp_path: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / "systemd" / unit, encoding="utf-8")
    service = parser["Service"]
    binary, *args = shlex.split(service["ExecStart"])
    assert binary == "/opt/guanxi/.venv/bin/guanxi"
    assert service["User"] == "guanxi" and service["KillSignal"] == "SIGTERM"
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'u.db'}", "GUANXI_PLUGINS": ""})
    result = CliRunner().invoke(build_cli(rt), [*args, "--help"], obj=rt)
    assert result.exit_code == 0, result.output
