"""A fake Douyin open API: a real HTTP server on 127.0.0.1 (Litestar served by uvicorn in a
thread) answering the shapes of PROTOCOLS.md §D.7–D.10: form-encoded OAuth answering envelope
style (b) with numbers as **strings**, user-token calls answering style (a) (private messages,
fans data) or (c) (comment replies), ``access-token`` header and ``open_id`` query.

Tests script it: ``expire_access_tokens()`` makes every issued access token answer 2190008
(expired mid-run); ``refresh_fails`` makes refreshes answer 10010; ``outcomes`` scripts the next
``/im/send/msg/`` answers (``ok``, ``rate_limited`` (HTTP 429), ``rejected``, ``slow``);
``calls`` records (path, query, body) without tokens or secrets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from litestar import Litestar, Request, Response, route
from litestar.params import FromPath

CLIENT_KEY = "awtestclientkey01"
CLIENT_SECRET = "test-client-secret-7Q"
SECRET_FIELDS = {"client_secret", "access_token", "refresh_token", "code"}


class FakeDouyin:
    def __init__(self) -> None:
        self.url = ""
        self.reset()

    def reset(self) -> None:
        self.apps: dict[str, str] = {CLIENT_KEY: CLIENT_SECRET}
        self.access: dict[str, str] = {}  # access token -> open_id (valid ones)
        self.issued: set[str] = set()
        self.refresh: dict[str, str] = {}  # refresh token -> open_id
        self.renewals: dict[str, int] = {}
        self.max_renewals = 5
        self.refresh_fails = False
        self.counter = 0
        self.client_tokens = 0
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.outcomes: deque[str] = deque()
        self.users: dict[str, dict[str, Any]] = {}
        self.fans: list[dict[str, Any]] = [
            {"date": "2026-12-05", "new_fans": "12", "total_fans": "3400"},
            {"date": "2026-12-06", "new_fans": "20", "total_fans": "3420"},
        ]

    # -- scripting ------------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        self.access.clear()

    def called(self, path: str) -> list[Any]:
        return [body if body is not None else query for p, query, body in self.calls if p == path]

    def _next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}.{self.counter:06d}"

    def _tokens(self, open_id: str) -> dict[str, Any]:
        access, refresh = self._next("act"), self._next("rft")
        self.access[access] = open_id
        self.issued.add(access)
        self.refresh[refresh] = open_id
        return {
            "access_token": access,
            "expires_in": "1296000",
            "open_id": open_id,
            "refresh_token": refresh,
            "refresh_expires_in": "2592000",
            "scope": "user_info,im.direct_message,item.comment",
            "error_code": "0",
            "description": "",
        }

    # -- the server -----------------------------------------------------------------------------

    @staticmethod
    def oauth_error(code: int, description: str) -> dict[str, Any]:
        return {"data": {"error_code": code, "description": description}, "message": "error"}

    def oauth(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        if path == "/oauth/access_token/":
            if self.apps.get(form.get("client_key", "")) != form.get("client_secret") or not form.get("code", "").startswith("CODE-"):
                return self.oauth_error(10007, "invalid code")
            return {"data": self._tokens(form["code"].removeprefix("CODE-")), "message": "success"}
        if path == "/oauth/refresh_token/":
            open_id = self.refresh.get(form.get("refresh_token", ""))
            if self.refresh_fails or open_id is None:
                return self.oauth_error(10010, "refresh_token expired")
            access = self._next("act")
            self.access[access] = open_id
            self.issued.add(access)
            return {"data": {"access_token": access, "expires_in": "1296000", "open_id": open_id, "error_code": 0}, "message": "success"}
        if path == "/oauth/renew_refresh_token/":
            old = form.get("refresh_token", "")
            open_id = self.refresh.pop(old, None)
            if open_id is None:
                return self.oauth_error(10010, "refresh_token expired")
            if self.renewals.get(open_id, 0) >= self.max_renewals:
                self.refresh[old] = open_id
                return self.oauth_error(10020, "refresh limit exceeded")
            self.renewals[open_id] = self.renewals.get(open_id, 0) + 1
            new = self._next("rft")
            self.refresh[new] = open_id
            return {"data": {"refresh_token": new, "expires_in": "2592000", "error_code": "0"}, "message": "success"}
        if path == "/oauth/client_token/":
            if self.apps.get(form.get("client_key", "")) != form.get("client_secret"):
                return self.oauth_error(10013, "invalid client")
            self.client_tokens += 1
            return {"data": {"access_token": f"clt.{self.client_tokens}", "expires_in": "7200", "error_code": 0}, "message": "success"}
        if path == "/oauth/userinfo/":
            open_id = self.access.get(form.get("access_token", ""))
            if open_id is None:
                return self.oauth_error(2190008, "access_token expired")
            user = {
                "open_id": open_id,
                "union_id": f"union-{open_id}",
                "nickname": f"Biz {open_id}",
                "avatar": "https://p3.douyinpic.com/a.jpg",
            }
            return {"data": {**user, **self.users.get(open_id, {}), "error_code": 0, "e_account_role": "EAccountM"}, "message": "success"}
        return self.oauth_error(10005, "unknown path")

    def user_call(self, path: str, query: dict[str, str], token: str, body: Any) -> tuple[int, dict[str, Any]]:
        open_id = self.access.get(token)
        if open_id is None:
            code = 2190008 if token in self.issued else 28001003
            return 200, {"data": {"error_code": code, "description": "access_token expired"}, "extra": {"error_code": code, "logid": "x"}}
        if open_id != query.get("open_id"):
            return 200, {"data": {"error_code": 10004, "description": "no permission"}, "extra": {"error_code": 10004}}
        ok_a = {"data": {"error_code": "0", "description": ""}, "extra": {"error_code": "0", "description": "", "sub_error_code": 0}}
        if path == "/im/send/msg/":
            outcome = self.outcomes.popleft() if self.outcomes else "ok"
            if outcome == "rate_limited":
                return 429, {"err_no": 429, "err_msg": "too many requests"}
            if outcome == "rejected":
                return 200, {"data": {"error_code": 40012, "description": "user not reachable"}, "extra": {"error_code": 40012}}
            return 200, {**ok_a, "msg_id": self._next("msg")}
        if path == "/item/comment/reply/":
            return 200, {"err_no": 0, "err_msg": "", "log_id": "l1", "data": {"comment_id": self._next("cmt")}}
        if path == "/data/external/user/fans/":
            return 200, {"data": {**ok_a["data"], "result_list": self.fans}, "extra": ok_a["extra"]}
        return 404, {"err_no": 404, "err_msg": "unknown path"}

    def app(self) -> Litestar:
        @route("/{path:path}", http_method=["GET", "POST"], status_code=200)
        async def handler(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[Any]:
            path = "/" + path.strip("/") + "/"  # Douyin's paths end with a slash
            query = dict(request.query_params)
            if path.startswith("/oauth/"):
                form = {k: str(v) for k, v in (await request.form()).items()}
                self.calls.append((path, query, {k: v for k, v in form.items() if k not in SECRET_FIELDS}))
                return Response(self.oauth(path, form))
            body = await request.json() if request.method == "POST" else None
            self.calls.append((path, query, body))
            if path == "/im/send/msg/" and self.outcomes and self.outcomes[0] == "slow":
                self.outcomes.popleft()
                await asyncio.sleep(1.5)
            status, answer = self.user_call(path, query, request.headers.get("access-token", ""), body)
            return Response(answer, status_code=status)

        return Litestar([handler])


@contextmanager
def serve() -> Iterator[FakeDouyin]:
    fake = FakeDouyin()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(fake.app(), lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the fake Douyin server did not start"
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
