"""WeCom server API client (PROTOCOLS.md §B): async httpx, one access token per (corp, secret)
cached and refreshed before expiry with a single flight, errcodes mapped to typed errors.

* 40014 / 42001 (and 40001): drop the token, fetch a new one once, retry the call once.
* 45009 (rate limited) and -1 (busy): wait ``backoff_s`` (doubling) and retry, at most
  ``max_retries`` times, then :class:`WecomRateLimitedError` / :class:`WecomBusyError` (transient).
* Any other non-zero errcode: :class:`WecomApiError` (permanent).

Tokens and secrets never appear in errors or logs (the URL with ``access_token`` is not logged)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from guanxi.core.base.errors import GuanxiError

log = logging.getLogger("guanxi.wecom")
_SECRET_PARAMS = re.compile(r"(access_token|corpsecret)=[^&\s\"']+")


class RedactSecrets(logging.Filter):
    """httpx logs every request URL at INFO, and WeCom puts the access token (and, for
    gettoken, the secret) in the query string: blank them before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message or "corpsecret=" in message:
            record.msg, record.args = _SECRET_PARAMS.sub(r"\1=***", message), ()
        return True


def install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


install_log_redaction()

TOKEN_ERRORS = frozenset({40001, 40014, 42001})


class WecomError(GuanxiError):
    """A WeCom API call failed. ``transient`` says whether a retry later may help; ``code`` is
    ``WECOM_<errcode>`` (``WECOM_UNAVAILABLE`` without one), as API callers see it."""

    transient = False
    provider = True

    def __init__(self, message: str, *, errcode: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message, code=f"WECOM_{errcode}" if errcode is not None else "WECOM_UNAVAILABLE")
        self.errcode = errcode
        self.retry_after_s = retry_after_s


class WecomApiError(WecomError):
    """A permanent error (permission, invalid id, bad request): ``errcode`` says which."""


class WecomTransientError(WecomError):
    transient = True


class WecomRateLimitedError(WecomTransientError):
    """45009 after every retry."""


class WecomBusyError(WecomTransientError):
    """-1 (system busy) after every retry, or WeCom unreachable."""


class WecomTokenError(WecomApiError):
    """No access token could be had (bad corp id or secret)."""


class _Token:
    __slots__ = ("expires_at", "lock", "value")

    def __init__(self) -> None:
        self.value: str | None = None
        self.expires_at = 0.0
        self.lock = asyncio.Lock()


class WecomClient:
    """One client per (corp, secret). ``get``/``post`` call ``<base>/<path>?access_token=…``."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        base_url: str,
        http: httpx.AsyncClient,
        backoff_s: float = 1.0,
        max_retries: int = 3,
    ) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.backoff_s = backoff_s
        self.max_retries = max_retries
        self._token = _Token()
        self.token_fetches = 0  # for tests and metrics

    def __repr__(self) -> str:
        return f"WecomClient(corp_id={self.corp_id!r})"

    # -- token --------------------------------------------------------------------------------

    async def access_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one. ``stale`` is a token the caller saw refused: a
        concurrent caller may already have replaced it (single flight)."""
        token = self._token
        if token.value and token.value != stale and time.monotonic() < token.expires_at:
            return token.value
        async with token.lock:
            if token.value and token.value != stale and time.monotonic() < token.expires_at:
                return token.value
            body = await self._request("GET", "/gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret})
            code = int(body.get("errcode", 0) or 0)
            if code != 0:
                raise WecomTokenError(f"gettoken failed for corp {self.corp_id}: errcode {code}", errcode=code)
            self.token_fetches += 1
            expires_in = float(body.get("expires_in", 7200) or 7200)
            token.value = str(body["access_token"])
            token.expires_at = time.monotonic() + expires_in * 0.9  # refresh at 90 % of the lifetime
            return token.value

    # -- calls --------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, params: dict[str, Any], json: Any = None) -> dict[str, Any]:
        try:
            response = await self.http.request(method, self.base_url + path, params=params, json=json)
        except httpx.TransportError as exc:
            raise WecomBusyError(f"WeCom unreachable calling {path}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise WecomBusyError(f"WeCom answered HTTP {response.status_code} to {path}")
        try:
            body = response.json()
        except ValueError:
            raise WecomBusyError(f"WeCom answered {path} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise WecomApiError(f"WeCom answered {path} with a JSON {type(body).__name__}")
        return body

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> dict[str, Any]:
        """Call an API and return its body (errcode 0), applying the retry rules above."""
        token = await self.access_token()
        refreshed = False
        attempt = 0
        while True:
            body = await self._request(method, path, params={**(params or {}), "access_token": token}, json=json)
            code = int(body.get("errcode", 0) or 0)
            if code == 0:
                return body
            if code in TOKEN_ERRORS and not refreshed:
                log.info("wecom %s: access token refused (errcode %d), fetching a new one", path, code)
                refreshed = True
                token = await self.access_token(stale=token)
                continue
            if code in (45009, -1):
                if attempt >= self.max_retries:
                    kind = WecomRateLimitedError if code == 45009 else WecomBusyError
                    raise kind(f"WeCom {path}: errcode {code} after {attempt} retries", errcode=code, retry_after_s=60.0)
                wait = self.backoff_s * (2**attempt)
                attempt += 1
                log.warning("wecom %s: errcode %d, retrying in %.2fs", path, code, wait)
                await asyncio.sleep(wait)
                continue
            raise WecomApiError(f"WeCom {path}: errcode {code} ({str(body.get('errmsg', ''))[:100]})", errcode=code)

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", path, json=body)

    # -- customer contact APIs ------------------------------------------------------------------

    async def transfer_customer(
        self, handover_userid: str, takeover_userid: str, external_userids: list[str], *, resigned: bool = False
    ) -> dict[str, int]:
        """Hand customers from one member to another (在职继承 ``externalcontact/transfer_customer``,
        or 离职继承 ``externalcontact/resigned/transfer_customer`` for a member who left), at
        most 100 per call; returns each customer's errcode (0: the transfer is under way; the
        customer may still refuse, which a ``transfer_fail`` callback reports)."""
        path = "/externalcontact/resigned/transfer_customer" if resigned else "/externalcontact/transfer_customer"
        out: dict[str, int] = {}
        for start in range(0, len(external_userids), 100):
            batch = external_userids[start : start + 100]
            body = await self.post(path, {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "external_userid": batch})
            out.update({c["external_userid"]: int(c.get("errcode", 0)) for c in body.get("customer") or []})
        return out

    async def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """``externalcontact/get``, every page of ``follow_user`` joined."""
        body = await self.get("/externalcontact/get", external_userid=external_userid)
        follow = list(body.get("follow_user") or [])
        cursor = body.get("next_cursor") or ""
        while cursor:
            page = await self.get("/externalcontact/get", external_userid=external_userid, cursor=cursor)
            follow.extend(page.get("follow_user") or [])
            cursor = page.get("next_cursor") or ""
        return {"external_contact": body.get("external_contact") or {}, "follow_user": follow}

    async def follow_users(self) -> list[str]:
        body = await self.get("/externalcontact/get_follow_user_list")
        return [str(u) for u in body.get("follow_user") or []]

    async def batch_get_by_user(self, userids: list[str], *, limit: int = 100) -> AsyncIterator[list[dict[str, Any]]]:
        """``externalcontact/batch/get_by_user`` page by page (cursor paging, ≤100 userids a call)."""
        for start in range(0, len(userids), 100):
            cursor = ""
            while True:
                body = await self.post(
                    "/externalcontact/batch/get_by_user", {"userid_list": userids[start : start + 100], "cursor": cursor, "limit": limit}
                )
                yield list(body.get("external_contact_list") or [])
                cursor = body.get("next_cursor") or ""
                if not cursor:
                    break

    async def corp_tags(self) -> list[dict[str, Any]]:
        body = await self.post("/externalcontact/get_corp_tag_list", {})
        return list(body.get("tag_group") or [])

    async def add_corp_tag(self, group_name: str, names: list[str]) -> dict[str, Any]:
        body = await self.post("/externalcontact/add_corp_tag", {"group_name": group_name, "tag": [{"name": n} for n in names]})
        return dict(body.get("tag_group") or {})

    async def mark_tag(self, userid: str, external_userid: str, *, add: list[str], remove: list[str]) -> None:
        await self.post(
            "/externalcontact/mark_tag", {"userid": userid, "external_userid": external_userid, "add_tag": add, "remove_tag": remove}
        )

    async def add_contact_way(
        self, *, userid: str, state: str | None, remark: str | None = None, skip_verify: bool = True
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": 1, "scene": 2, "user": [userid], "skip_verify": skip_verify}
        if state:
            body["state"] = state
        if remark:
            body["remark"] = remark
        answer = await self.post("/externalcontact/add_contact_way", body)
        return {"config_id": answer.get("config_id"), "qr_code": answer.get("qr_code")}

    async def get_contact_way(self, config_id: str) -> dict[str, Any]:
        return dict((await self.post("/externalcontact/get_contact_way", {"config_id": config_id})).get("contact_way") or {})

    async def list_contact_ways(self, *, limit: int = 1000) -> list[str]:
        ids: list[str] = []
        cursor = ""
        while True:
            body = await self.post("/externalcontact/list_contact_way", {"cursor": cursor, "limit": limit})
            ids.extend(str(w["config_id"]) for w in body.get("contact_way") or [])
            cursor = body.get("next_cursor") or ""
            if not cursor:
                return ids

    async def del_contact_way(self, config_id: str) -> None:
        await self.post("/externalcontact/del_contact_way", {"config_id": config_id})

    async def send_welcome_msg(self, welcome_code: str, text: str, attachments: list[dict[str, Any]] | None = None) -> None:
        body: dict[str, Any] = {"welcome_code": welcome_code, "text": {"content": text}}
        if attachments:
            body["attachments"] = attachments
        await self.post("/externalcontact/send_welcome_msg", body)

    async def add_msg_template(
        self, *, external_userids: list[str], sender: str | None, text: str | None, attachments: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"chat_type": "single", "external_userid": external_userids}
        if sender:
            body["sender"] = sender
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = attachments
        answer = await self.post("/externalcontact/add_msg_template", body)
        return {"msgid": answer.get("msgid"), "fail_list": list(answer.get("fail_list") or [])}

    async def group_msg_result(self, msgid: str) -> dict[str, Any]:
        return await self.post("/externalcontact/get_group_msg_result", {"msgid": msgid})

    # -- application messages (to employees) ------------------------------------------------------

    async def send_app_text(self, agent_id: int, touser: str, content: str, *, duplicate_check_s: int = 1800) -> dict[str, Any]:
        """``message/send``: a text application message from app ``agent_id`` to a member
        (``touser`` is the member's UserID). WeCom drops a repeat of the same content to the same
        member within ``duplicate_check_s`` (a re-send after a crash is not shown twice).
        Returns ``{"msgid", "invaliduser"}``; ``invaliduser`` lists UserIDs WeCom could not reach."""
        body = {
            "touser": touser,
            "msgtype": "text",
            "agentid": agent_id,
            "text": {"content": content},
            "safe": 0,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": duplicate_check_s,
        }
        answer = await self.post("/message/send", body)
        invalid = [u for u in str(answer.get("invaliduser") or "").split("|") if u]
        return {"msgid": answer.get("msgid"), "invaliduser": invalid}
