"""``guanxi plugin new channel NAME`` writes a third-party channel package that builds, installs
and passes its own tests unchanged, in fewer than 150 lines of plugin code."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]


def invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    rt = Runtime.from_config(environ={"GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "GUANXI_PLUGINS": ""})
    result = CliRunner().invoke(build_cli(rt), list(args), obj=rt)
    return result.exit_code, result.output


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not available to build the generated package")
    return found


def count_plugin_lines(package: Path) -> int:
    spec = importlib.util.spec_from_file_location("count_plugin_lines", ROOT / "scripts" / "count_plugin_lines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sum(module.count(package).values())


def test_the_generated_channel_package_builds_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "plugin", "new", "channel", "acme_sms", "--directory", str(tmp_path))
    assert code == 0, out
    package = tmp_path / "guanxi-acme-sms"
    assert "wrote" in out and "tests/test_acme_sms.py" in out and "guanxi_acme_sms/migrations/acme_sms_0001_contacts.py" in out
    assert count_plugin_lines(package) <= 150

    # build the wheel from its pyproject, and install it the way an installer does: unpack it
    # into a site folder (package, migrations and the dist-info with the entry point)
    built = subprocess.run(
        [uv(), "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(package)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "hatchling" in built.stderr and "network" in built.stderr.lower():
        pytest.skip(f"cannot fetch the build backend: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert "guanxi_acme_sms/migrations/acme_sms_0001_contacts.py" in names
    (entry_points,) = site.glob("guanxi_acme_sms-0.1.0.dist-info/entry_points.txt")
    assert "[guanxi]\nacme_sms = guanxi_acme_sms.plugin" in entry_points.read_text()

    # its tests, unchanged, against the installed copy (not the source folder)
    shutil.copytree(package / "tests", tmp_path / "run" / "tests")
    shutil.copy(package / "pyproject.toml", tmp_path / "run" / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path / "run",
        env=env,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    summary = ran.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, summary


@pytest.mark.parametrize(
    ("name", "message"),
    [("Acme-SMS", "lower snake case"), ("9lives", "lower snake case"), ("x" * 33, "lower snake case"), ("pigeon", "installed plugin")],
)
def test_a_bad_or_taken_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str, message: str) -> None:
    code, out = invoke(tmp_path, "plugin", "new", "channel", name, "--directory", str(tmp_path / "out"))
    assert code == 2 and message in out
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "guanxi-acme").mkdir()
    (tmp_path / "guanxi-acme" / "keep.txt").write_text("mine")
    code, out = invoke(tmp_path, "plugin", "new", "channel", "acme", "--directory", str(tmp_path))
    assert code == 1 and "already exists; nothing was written" in out
    assert [p.name for p in (tmp_path / "guanxi-acme").iterdir()] == ["keep.txt"]
