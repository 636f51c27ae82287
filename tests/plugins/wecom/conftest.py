"""Fixtures of the WeCom tests: the fake WeCom API server, the plugin's config for one corp,
and a wechatpy-driven sender of encrypted callbacks (wechatpy is the independent peer)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from wechatpy.enterprise.crypto import WeChatCrypto  # type: ignore[import-untyped]

from guanxi import Runtime
from guanxi.core.queues import inbox
from guanxi.plugins.wecom.state import wecom_state
from tests.plugins.wecom.fake_wecom import CORP_ID, SECRET, FakeWecom, serve

TOKEN = "callback-token-Q7"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_KEY = "acme"
CALLBACK = f"/wecom/callback/{CORP_KEY}"


@pytest.fixture(scope="session")
def wecom_server() -> Iterator[FakeWecom]:
    with serve() as fake:
        yield fake


@pytest.fixture
def fake_wecom(wecom_server: FakeWecom) -> FakeWecom:
    wecom_server.reset()
    return wecom_server


def corp_config(**extra: Any) -> dict[str, Any]:
    return {
        "key": CORP_KEY,
        "corp_id": CORP_ID,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "secret": SECRET,
        "staff": {"zhangsan": "zhangsan@acme.example"},
        "welcome": {"spring-fair": "欢迎来到春季展会!", "*": "Welcome!"},
        **extra,
    }


@pytest.fixture
def plugin_config(fake_wecom: FakeWecom) -> dict[str, dict[str, Any]]:
    return {"wecom": {"api_base_url": fake_wecom.url, "backoff_s": 0.01, "max_retries": 2, "corps": [corp_config()]}}


def event_xml(change: str, *, external: str = "wmEXT001", userid: str = "zhangsan", create_time: int | None = None, **fields: str) -> str:
    parts = [
        f"<ToUserName><![CDATA[{CORP_ID}]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        "<Event><![CDATA[change_external_contact]]></Event>",
        f"<ChangeType><![CDATA[{change}]]></ChangeType>",
        f"<UserID><![CDATA[{userid}]]></UserID>",
        f"<ExternalUserID><![CDATA[{external}]]></ExternalUserID>",
    ]
    parts += [f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()]
    return "<xml>" + "".join(parts) + "</xml>"


def corp_event_xml(event: str, change: str, **fields: str) -> str:
    parts = [
        f"<ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>",
        f"<Event><![CDATA[{event}]]></Event><ChangeType><![CDATA[{change}]]></ChangeType>",
    ]
    parts += [f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()]
    return "<xml>" + "".join(parts) + "</xml>"


class Sender:
    """Encrypts and signs callbacks with wechatpy, as WeCom would, and posts them."""

    def __init__(self, client: httpx.AsyncClient, *, corp_id: str = CORP_ID, token: str = TOKEN, key: str = AES_KEY) -> None:
        self.client = client
        self.crypto = WeChatCrypto(token, key, corp_id)
        self.nonces = 0

    def envelope(self, inner_xml: str, *, timestamp: int | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        from xml.etree import ElementTree as ET

        self.nonces += 1
        nonce = nonce or f"{uuid.uuid4().int % 10**10}"
        ts = str(timestamp or int(time.time()))
        reply = ET.fromstring(self.crypto.encrypt_message(inner_xml, nonce, ts))
        encrypt = reply.findtext("Encrypt") or ""
        query = {"msg_signature": reply.findtext("MsgSignature") or "", "timestamp": ts, "nonce": nonce}
        body = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )
        return query, body.encode()

    async def post(self, query: dict[str, str], body: bytes, path: str = CALLBACK) -> httpx.Response:
        return await self.client.post(f"{path}?{urlencode(query)}", content=body, headers={"content-type": "text/xml"})

    async def send(self, inner_xml: str, **kwargs: Any) -> httpx.Response:
        query, body = self.envelope(inner_xml, **kwargs)
        return await self.post(query, body)


@pytest.fixture
def sender(client: httpx.AsyncClient) -> Sender:
    return Sender(client)


async def settle(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    """Process the inbox and wait for the plugin's background work (welcome, profile fetch)."""
    for _ in range(5):
        await wecom_state(runtime).drain()
        if not await inbox.run_once(runtime, tenant_id=tenant_id):
            await wecom_state(runtime).drain()
            return
