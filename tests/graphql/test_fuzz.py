"""GraphQL fuzzing of the whole schema with schemathesis (issue 12: keep INTERNAL errors away).

A real server (``guanxi serve``, every builtin plugin enabled) runs on a
throw-away SQLite file; schemathesis loads the schema by introspection and, for every root field
of Query and Mutation, generates operations (arguments of every shape its types allow) sent with an
admin key of a throw-away tenant. Destructive mutations (``revokeApiKey``, ``eraseCustomer`` …) are
called too; that is expected. No answer may be an HTTP 5xx or carry ``INTERNAL``.

Bounded and seeded: ``derandomize=True`` (the same examples every run), a few examples per field,
no deadline (2 shared cores); the whole test takes well under two minutes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.skipif(bool(os.environ.get("GUANXI_TEST_DATABASE_URL")), reason="runs its own server on SQLite")

#: examples per root field (about 40 root fields with the builtin plugins)
EXAMPLES = 15
CONFIG = """
tenant = "fuzz"

[database]
url = "sqlite+aiosqlite:///{db}"

[plugins]
enabled = ["wecom", "referral", "scoring", "insights", "materials", "sales"]

[auth]
secret = "fuzz-secret-{pad}"
rate_per_s = 100000
rate_burst = 100000

[server]
log_level = "warning"

[plugins.wecom]
api_base_url = "http://127.0.0.1:{dead_port}/cgi-bin"
timeout_s = 1.0
max_retries = 0
backoff_s = 0.01

[[plugins.wecom.corps]]
key = "acme"
corp_id = "wwfuzz"
tenant = "fuzz"
token = "fuzz-token"
encoding_aes_key = "{aes}"
secret = "fuzz-corp-secret"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _guanxi(tmp: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GUANXI_CONFIG": str(tmp / "guanxi.toml"), "HOME": str(tmp)}
    proc = subprocess.run(
        [sys.executable, "-m", "guanxi", *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """``guanxi serve`` on a fresh SQLite file: (GraphQL URL, admin key of tenant fuzz, log file)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    config = CONFIG.format(db=tmp / "guanxi.db", pad="0" * 32, dead_port=_free_port(), aes="a" * 43)
    (tmp / "guanxi.toml").write_text(config, encoding="utf-8")
    _guanxi(tmp, "db", "upgrade")
    _guanxi(tmp, "tenant", "create", "fuzz", "Fuzz Ltd")
    key = _guanxi(tmp, "apikey", "create", "--tenant", "fuzz", "--role", "admin", "--name", "fuzz").strip().splitlines()[-1].strip()
    port = _free_port()
    log = tmp / "server.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GUANXI_CONFIG": str(tmp / "guanxi.toml"), "HOME": str(tmp)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guanxi", "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, log.read_text(encoding="utf-8")
            time.sleep(0.1)
        yield url, key, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _json_values() -> Any:
    """GraphQL literals for the ``JSON`` scalar (settings, custom field values): nested objects,
    lists, strings, numbers, booleans and null."""
    import graphql
    from hypothesis import strategies as st
    from schemathesis.graphql import nodes

    leaves = st.one_of(
        st.text(max_size=20).map(nodes.String),
        st.integers(-(10**6), 10**6).map(nodes.Int),
        st.booleans().map(nodes.Boolean),
        st.just(graphql.NullValueNode()),
    )

    def nest(children: Any) -> Any:
        def obj(fields: dict[str, Any]) -> Any:
            return nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v) for k, v in fields.items()])

        return st.one_of(
            st.lists(children, max_size=3).map(nodes.List),
            st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), children, max_size=3).map(obj),
        )

    return st.recursive(leaves, nest, max_leaves=6)


def test_fuzzing_every_root_field_never_gives_a_5xx_or_internal(server: tuple[str, str, Path]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schemathesis.graphql.scalar("JSON", _json_values())
    url, key, log = server
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.graphql.from_url(url, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {o.label for o in operations}
    assert {"Mutation.wecomMassSend", "Mutation.revokeApiKey", "Query.customers"} <= labels, sorted(labels)
    bad: list[str] = []
    sent = 0

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            nonlocal sent
            response = case.call(headers=headers, timeout=30)
            sent += 1
            text = response.text
            if response.status_code >= 500 or '"INTERNAL"' in text:
                bad.append(f"{case.operation.label}: HTTP {response.status_code} {text[:300]}\n  query: {str(case.body)[:500]}")

        run()
    assert sent >= len(operations) * 2
    assert not bad, "\n".join(bad[:20]) + "\n--- server log ---\n" + log.read_text(encoding="utf-8")[-4000:]
