"""A fake WeCom server API: a real HTTP server on 127.0.0.1 (Litestar served by uvicorn in a
thread) answering the documented shapes and errcodes (PROTOCOLS.md §B).

Tests script it: ``fail(path, errcode, times)`` makes the next calls of a path answer an
errcode; ``expire_tokens()`` makes every issued token answer 42001 (expired mid-run);
``responses[path]`` replaces the default answer; ``calls`` records every call (path, query
without the token, JSON body)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from litestar import Litestar, Request, route
from litestar.params import FromPath

CORP_ID = "ww-test-corp"
SECRET = "test-contact-secret-XYZ"


class FakeWecom:
    def __init__(self) -> None:
        self.url = ""
        self.reset()

    def reset(self) -> None:
        self.tokens: list[str] = []
        self.valid: set[str] = set()
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.failures: dict[str, deque[int]] = defaultdict(deque)
        self.responses: dict[str, Callable[[dict[str, str], Any], dict[str, Any]] | dict[str, Any]] = {}
        self.delay_s: dict[str, float] = {}
        self.holds: dict[str, threading.Event] = {}
        self.msgids = 0
        #: member UserIDs that message/send reports in ``invaliduser``
        self.unknown_members: set[str] = set()

    # -- scripting ------------------------------------------------------------------------------

    def hold(self, path: str) -> threading.Event:
        """Answer calls of ``path`` only once the returned event is set (a response in flight
        while the test does something else)."""
        gate = self.holds[path] = threading.Event()
        return gate

    def fail(self, path: str, errcode: int, times: int = 1) -> None:
        self.failures[path].extend([errcode] * times)

    def expire_tokens(self) -> None:
        self.valid.clear()

    def called(self, path: str) -> list[Any]:
        return [body if body is not None else query for p, query, body in self.calls if p == path]

    # -- the server -------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        if path == "/gettoken":
            if query.get("corpid") != CORP_ID or query.get("corpsecret") != SECRET:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            token = f"ACCESS-TOKEN-{len(self.tokens) + 1}"
            self.tokens.append(token)
            self.valid.add(token)
            return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        token = query.get("access_token", "")
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        if token not in self.valid:
            return {"errcode": 42001 if token in self.tokens else 40014, "errmsg": "access_token expired"}
        self.calls.append((path, {k: v for k, v in query.items() if k != "access_token"}, body))
        if self.failures[path]:
            code = self.failures[path].popleft()
            return {"errcode": code, "errmsg": f"scripted {code}"}
        custom = self.responses.get(path)
        if custom is not None:
            return custom(query, body) if callable(custom) else custom
        return self.default(path, query, body)

    def default(self, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        ok = {"errcode": 0, "errmsg": "ok"}
        if path == "/externalcontact/add_contact_way":
            n = len(self.called(path))
            return {**ok, "config_id": f"cfg-{n}", "qr_code": f"https://wework.qpic.cn/wwpic/qr-{n}.png"}
        if path == "/externalcontact/add_msg_template":
            self.msgids += 1
            return {**ok, "fail_list": [], "msgid": f"msg-{self.msgids}"}
        if path == "/message/send":  # an application message to members (touser: "a|b")
            if not isinstance(body, dict) or body.get("msgtype") != "text" or not body.get("agentid"):
                return {"errcode": 40008, "errmsg": "invalid message type"}
            members = [u for u in str(body.get("touser") or "").split("|") if u]
            invalid = [u for u in members if u in self.unknown_members]
            self.msgids += 1
            return {**ok, "invaliduser": "|".join(invalid), "msgid": f"app-msg-{self.msgids}"}
        if path in ("/externalcontact/transfer_customer", "/externalcontact/resigned/transfer_customer"):
            # each customer's transfer starts (errcode 0); the customer may still refuse later (transfer_fail)
            return {"errcode": 0, "errmsg": "ok", "customer": [{"external_userid": e, "errcode": 0} for e in body["external_userid"]]}
        if path == "/externalcontact/get_corp_tag_list":
            return {**ok, "tag_group": []}
        if path == "/externalcontact/get_follow_user_list":
            return {**ok, "follow_user": []}
        return ok

    def app(self) -> Litestar:
        @route("/cgi-bin/{path:path}", http_method=["GET", "POST"], status_code=200)
        async def handler(request: Request[Any, Any, Any], path: FromPath[str]) -> dict[str, Any]:
            body = await request.json() if request.method == "POST" else None
            gate = self.holds.get(path)
            if gate is not None:
                await asyncio.to_thread(gate.wait, 30)
            delay = self.delay_s.pop(path, 0.0)
            # answered on arrival, sent after the delay: a slow answer the client gave up on must
            # not take a failure scripted later (by the next test) from the queue
            answer = self.answer(path, dict(request.query_params), body)
            if delay:
                await asyncio.sleep(delay)
            return answer

        return Litestar([handler])


@contextmanager
def serve() -> Iterator[FakeWecom]:
    fake = FakeWecom()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}/cgi-bin"
    server = uvicorn.Server(uvicorn.Config(fake.app(), lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the fake WeCom server did not start"
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
