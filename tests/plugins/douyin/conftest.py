"""Fixtures of the Douyin tests: the fake open API, the plugin's config for the deployment app,
a business account connected through the real OAuth flow, and a signer of webhook deliveries."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from guanxi import Runtime
from guanxi.core.base.context import RequestContext
from guanxi.core.queues import inbox
from guanxi.plugins.douyin import oauth
from tests.plugins.douyin.fake_douyin import CLIENT_KEY, CLIENT_SECRET, FakeDouyin, serve

WEBHOOK = "/webhooks/douyin"
REDIRECT = "https://crm.example/douyin/oauth/callback"


@pytest.fixture(scope="session")
def douyin_server() -> Iterator[FakeDouyin]:
    with serve() as fake:
        yield fake


@pytest.fixture
def fake_douyin(douyin_server: FakeDouyin) -> FakeDouyin:
    douyin_server.reset()
    return douyin_server


def douyin_config(fake: FakeDouyin, **extra: Any) -> dict[str, Any]:
    return {"client_key": CLIENT_KEY, "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT, "api_base_url": fake.url, **extra}


@pytest.fixture
def plugin_config(fake_douyin: FakeDouyin) -> dict[str, dict[str, Any]]:
    return {"douyin": douyin_config(fake_douyin)}


async def connect(runtime: Runtime, tenant_id: uuid.UUID, open_id: str, app: str | None = None) -> None:
    """Connect a business account the way a browser does: authorization URL, then the callback."""
    started = await oauth.start(runtime, RequestContext(tenant_id=tenant_id), app)
    await oauth.complete(runtime, state=started.state, code=f"CODE-{open_id}")


@pytest.fixture
async def business(runtime: Runtime, tenant_id: uuid.UUID, fake_douyin: FakeDouyin) -> str:
    """A business account (its open_id, unique per test) connected to the test's tenant."""
    open_id = f"biz-{secrets.token_hex(6)}"
    await connect(runtime, tenant_id, open_id)
    return open_id


def signature(secret: str, body: bytes) -> str:
    return hashlib.sha1(secret.encode() + body).hexdigest()


def envelope(
    event: str,
    content: dict[str, Any] | None,
    *,
    from_user: str = "",
    to_user: str = "",
    as_string: bool = True,
    client_key: str = CLIENT_KEY,
    **extra: Any,
) -> bytes:
    """A webhook body; ``content`` JSON-encoded into a string (most events) or as an object."""
    value: Any = json.dumps(content, ensure_ascii=False) if as_string and content is not None else content
    body = {"event": event, "client_key": client_key, "from_user_id": from_user, "to_user_id": to_user, "content": value, "log_id": "L1"}
    return json.dumps({**body, **extra}, ensure_ascii=False).encode()


def headers(body: bytes, msg_id: str | None = None, secret: str = CLIENT_SECRET) -> dict[str, str]:
    found = {"content-type": "application/json", "X-Douyin-Signature": signature(secret, body)}
    if msg_id is not None:
        found["Msg-Id"] = msg_id
    return found


async def deliver(client: httpx.AsyncClient, body: bytes, msg_id: str | None = None, secret: str = CLIENT_SECRET) -> httpx.Response:
    return await client.post(WEBHOOK, content=body, headers=headers(body, msg_id or secrets.token_hex(8), secret))


def im_content(text: str, customer: str, *, message_id: str = "smid-1", ms: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "conversation_short_id": "conv-7",
        "server_message_id": message_id,
        "conversation_type": "1",
        "message_type": "text",
        "text": text,
        "source": "",
        "create_time": str(ms or int(time.time() * 1000)),
        "user_infos": [{"open_id": customer, "nick_name": "小王", "avatar": "https://p3.douyinpic.com/u.jpg"}],
        **extra,
    }


async def settle(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    while await inbox.run_once(runtime, tenant_id=tenant_id):
        pass


async def use_tenant_slug(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Make the test's tenant the configured one (the CLI's default tenant)."""
    from guanxi.testing.plugin import use_tenant

    await use_tenant(runtime, tenant_id)
