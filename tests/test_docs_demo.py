"""What a newcomer reads is what happens: every command and query of README.md and
docs/quickstart.md runs here against the demo data, with the result the text states.

A fresh directory gets ``guanxi db upgrade``, ``guanxi demo --if-empty`` and an admin key through
the real CLI (in-process, click's runner). Then every shell block is executed: ``guanxi …``
commands through the CLI (a synopsis such as ``guanxi inbox list|show|replay`` through ``--help``
of each command it names), ``curl`` commands as HTTP requests to the app with ``$GUANXI_KEY``
set, ``guanxi serve`` up to the point where uvicorn would take over. Every GraphQL block runs
with the admin key. ``make run`` and ``make test`` are the only lines not run: they wrap the
commands run here (``make run``'s four are listed in the quickstart) and the suite itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "quickstart.md"]
SHELL = re.compile(r"^```(?:sh|console|bash)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
GRAPHQL = re.compile(r"^```graphql\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUN = {"make run", "make test"}
PLACEHOLDER_KEY_ID = "3f9c0a1b2d4e5f60"  # the key id the quickstart shows


def shell_commands(page: Path) -> list[str]:
    """Commands of the page's shell blocks: continuation lines joined, comments dropped."""
    out = []
    for block in SHELL.finditer(page.read_text(encoding="utf-8")):
        joined = block.group("body").replace("\\\n", " ")
        for raw in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", raw).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def graphql_blocks(page: Path) -> list[str]:
    return [m.group("body") for m in GRAPHQL.finditer(page.read_text(encoding="utf-8"))]


class Demo:
    """A directory with the demo tenant, driven through the CLI and the app."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.environ = {
            "GUANXI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'guanxi.db'}",
            "GUANXI_PLUGINS": "",
            "GUANXI__AUTH__SECRET_FILE": str(tmp / ".guanxi" / "secret"),
        }
        self.key = ""
        self.key_id = ""

    def runtime(self, **extra: str) -> Runtime:
        return Runtime.from_config(None, environ={**self.environ, **extra})

    def cli(self, args: list[str], **extra: str) -> tuple[int, str]:
        rt = self.runtime(**extra)
        result = CliRunner().invoke(build_cli(rt), args, obj=rt)
        return result.exit_code, result.output

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = None, dev: bool = False) -> httpx.Response:
        return asyncio.run(self._post({"query": query, "variables": variables or {}}, key=self.key if key is None else key, dev=dev))

    def http(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> httpx.Response:
        async def send() -> httpx.Response:
            from guanxi.app import create_app

            rt = self.runtime()
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://127.0.0.1:8000") as c:
                    return await c.request(method, path, headers=headers, content=body)
            finally:
                await rt.engine.dispose()

        return asyncio.run(send())

    async def _post(self, body: dict[str, Any], *, key: str, dev: bool) -> httpx.Response:
        from guanxi.app import create_app

        rt = self.runtime(**({"GUANXI__SERVER__DEV": "true"} if dev else {}))
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://127.0.0.1:8000") as c:
                return await c.post("/graphql", json=body, headers=headers)
        finally:
            await rt.engine.dispose()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = Demo(tmp_path)
    for args in (["db", "upgrade"], ["demo", "--if-empty"]):
        code, out = d.cli(args)
        assert code == 0, out
    code, out = d.cli(["apikey", "create", "--tenant", "demo", "--role", "admin", "--name", "make run", "--replace"])
    assert code == 0, out
    d.key = next(w for w in out.split() if w.startswith("gx_"))
    yield d


def run_guanxi(demo: Demo, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUANXI__SERVER__DEV", "false")  # `serve --dev` sets it in this process; restored after the test
    words = shlex.split(line)[1:]
    if any("|" in w or w.startswith("[") for w in words) or any(w in ("FILE.csv", "ID", "T", "FILE") for w in words):
        # a synopsis: each command it names exists
        path: list[str] = []
        for w in words:
            if w.startswith(("-", "[")) or w.isupper() or w.endswith(".csv"):
                break
            path.append(w.split("|")[0])
        for variant in {w for w in words if "|" in w} or {""}:
            names = [*path[:-1], variant.split("|")[0]] if variant else path
            for alternative in variant.split("|") if variant else [""]:
                command = [*names[:-1], alternative] if alternative else names
                code, out = demo.cli([*command, "--help"])
                assert code == 0, (line, command, out)
        return
    words = [demo.key_id if w == PLACEHOLDER_KEY_ID else w for w in words]
    if words[:1] == ["serve"]:
        import uvicorn

        seen: dict[str, Any] = {}
        monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
        code, out = demo.cli(words)
        assert code == 0 and seen["port"] == 8000 and "Guanxi on http://127.0.0.1:8000/graphql" in out, (line, out)
        return
    if words[:2] == ["apikey", "create"]:
        code, out = demo.cli(words)
        assert code == 0 and "gx_" in out, (line, out)
        demo.key_id = re.search(r"key id ([0-9a-f]{16})", out).group(1)  # type: ignore[union-attr]
        if "--replace" in words:  # `make run`'s key replaces the previous one: the key printed is the one to use
            demo.key = next(w for w in out.split() if w.startswith("gx_"))
        return
    code, out = demo.cli(words)
    assert code == 0, (line, out)


def run_curl(demo: Demo, line: str) -> httpx.Response:
    words = shlex.split(line.replace("$GUANXI_KEY", demo.key))[1:]
    headers: dict[str, str] = {}
    body: bytes | None = None
    url = ""
    it = iter(words)
    for w in it:
        if w == "-H":
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif w in ("-d", "--data", "--data-raw"):
            body = next(it).encode()
        elif w.startswith("http"):
            url = w
    response = demo.http("POST" if body is not None else "GET", url.split("8000", 1)[1], headers, body)
    assert response.status_code == 200, (line, response.text)
    return response


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_shell_command_of_the_page_runs_on_the_demo_data(page: Path, demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = 0
    for command in shell_commands(page):
        if command in NOT_RUN:
            continue
        line = command.removeprefix(".venv/bin/")
        if line.startswith("export GUANXI_KEY="):
            continue  # the key `make run` printed: the demo fixture's
        if line.startswith("curl "):
            body = run_curl(demo, line).json()
            assert not body.get("errors"), body
            assert body["data"]["customers"]["totalCount"] == 300 and len(body["data"]["customers"]["edges"]) == 5
        elif line.startswith("guanxi "):
            run_guanxi(demo, line, monkeypatch)
        else:
            raise AssertionError(f"{page.name}: a command this test does not know how to run: {line!r}")
        ran += 1
    assert ran >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_graphql_block_of_the_page_runs_on_the_demo_data(page: Path, demo: Demo) -> None:
    first = demo.graphql("{ customers(first: 1) { edges { node { id } } } }").json()
    some_customer = first["data"]["customers"]["edges"][0]["node"]["id"]
    for text in graphql_blocks(page):
        variables = {"id": some_customer} if "$id" in text else {}
        response = demo.graphql(text, variables)
        body = response.json()
        assert response.status_code == 200 and not body.get("errors"), (text, body)


def test_the_stated_results_hold_on_the_demo_data(demo: Demo) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (high_intent,) = [b for b in graphql_blocks(ROOT / "README.md") if "意向/高" in b]
    stated = int(re.search(r"on the demo data, `totalCount` is (\d+)", readme).group(1))  # type: ignore[union-attr]
    body = demo.graphql(high_intent).json()
    assert body["data"]["customers"]["totalCount"] == stated > 0
    page = demo.graphql(graphql_blocks(ROOT / "docs" / "quickstart.md")[0]).json()["data"]["customers"]
    assert page["totalCount"] == 300 and len(page["edges"]) == 5  # the demo's 300 customers, five newest first
    staff = demo.graphql("{ users { email role team } }").json()["data"]["users"]
    assert {"email": "wang.lei@demo.guanxi.dev", "role": "SALES"} in [{k: u[k] for k in ("email", "role")} for u in staff]


def test_without_credentials_dev_mode_answers_200_and_a_server_401_as_documented(demo: Demo) -> None:
    query = "{ customers(first: 5) { totalCount } }"
    dev = demo.graphql(query, key="", dev=True)
    assert dev.status_code == 200
    assert dev.json() == {
        "data": None,
        "errors": [{"message": "credentials required for Query.customers", "extensions": {"code": "UNAUTHENTICATED"}}],
    }
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert json.dumps(dev.json(), ensure_ascii=False) in quickstart.replace("\n", " ")
    served = demo.graphql(query, key="")
    assert served.status_code == 401
    assert served.json() == {
        "errors": [
            {"message": "credentials required: send 'Authorization: Bearer <API key or token>'", "extensions": {"code": "UNAUTHENTICATED"}}
        ]
    }
    assert json.dumps(served.json(), ensure_ascii=False) in quickstart


def test_the_documented_way_to_pick_another_port(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("GUANXI__SERVER__DEV", "false")  # `serve --dev` sets it in this process; restored after the test
    code, out = demo.cli(["serve", "--dev"], GUANXI__SERVER__PORT="8080")
    assert code == 0 and seen["port"] == 8080 and "http://127.0.0.1:8080/graphql" in out
    code, out = demo.cli(["serve", "--dev", "--port", "8080"])
    assert code == 0 and seen["port"] == 8080
    assert "GUANXI__SERVER__PORT=8080 make run" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_guanxi_serve_prints_each_log_record_once_as_operations_md_says(tmp_path: Path) -> None:
    """docs/operations.md, "Logging and tracing": Guanxi's records do not propagate to the web
    framework's root handler, so each is printed once (the docs once said twice)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    subprocess.run([sys.executable, "-m", "guanxi", "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "guanxi", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ users { id } }"}, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                time.sleep(0.2)
        assert response.status_code == 401
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    text = err.decode()
    assert text.count("refused a GraphQL request") == 1, text
    ops = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    flat = " ".join(ops.split())  # the sentence may wrap anywhere
    assert "each one is printed once" in flat and "printed twice" not in flat
