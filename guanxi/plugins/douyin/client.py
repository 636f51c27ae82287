"""Douyin open API client (PROTOCOLS.md §D.7–D.10): OAuth (form-encoded), the app's client
token (one cached token shared by concurrent callers, single flight), and calls with a user's
access token (header ``access-token``, query ``open_id``).

Responses come in three envelope styles (§D.8); success is HTTP 200 **and** every error code
present equal to 0, and numbers may be strings. Errors are typed:

* :class:`DouyinTokenExpiredError` (10008, 2190008, 28001003, 28001008): refresh and retry once
  (:mod:`guanxi.plugins.douyin.tokens` does it);
* :class:`DouyinRefreshExpiredError` (10010) and :class:`DouyinRefreshLimitError` (10020): the user must
  authorize again;
* :class:`DouyinTransientError`: Douyin unreachable, HTTP 5xx or 429;
* :class:`DouyinApiError`: any other code.

Tokens and secrets never appear in errors or logs (they travel in form bodies and headers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import msgspec

from guanxi.core.base.errors import GuanxiError

TOKEN_EXPIRED = frozenset({10008, 2190008, 28001003, 28001008})
REFRESH_EXPIRED = 10010
REFRESH_LIMIT = 10020


def number(value: Any, default: int | None = None) -> int | None:
    """An integer from an int, a float or a numeric string (Douyin sends numbers as strings)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return default


class DouyinError(GuanxiError):
    """A Douyin API call failed; ``code`` is ``DOUYIN_<error code>`` (``DOUYIN_UNAVAILABLE``
    without one), as API callers see it."""

    transient = False
    provider = True

    def __init__(self, message: str, *, error_code: int | None = None) -> None:
        super().__init__(message, code=f"DOUYIN_{error_code}" if error_code is not None else "DOUYIN_UNAVAILABLE")
        self.error_code = error_code


class DouyinApiError(DouyinError):
    """A permanent error: ``error_code`` says which."""


class DouyinTransientError(DouyinError):
    transient = True


class DouyinTokenExpiredError(DouyinApiError):
    """The access token expired or is invalid (10008 / 2190008 / 28001003 / 28001008)."""


class DouyinRefreshExpiredError(DouyinApiError):
    """The refresh token expired (10010): the user must authorize again."""


class DouyinRefreshLimitError(DouyinApiError):
    """The refresh token was renewed as often as allowed (10020): the user must authorize again."""


def envelope_error(body: dict[str, Any]) -> tuple[int, str] | None:
    """The first non-zero error code of any envelope style (§D.8), with its description."""
    data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
    extra: dict[str, Any] = body["extra"] if isinstance(body.get("extra"), dict) else {}
    for holder, code_key, text_key in (
        (body, "err_no", "err_msg"),
        (extra, "error_code", "description"),
        (data, "error_code", "description"),
    ):
        if code_key in holder:
            code = number(holder[code_key], -1)
            if code != 0:
                text = str(holder.get(text_key) or body.get("message") or "")
                return (code if code is not None else -1), text[:200]
    return None


def _error(path: str, code: int, text: str) -> DouyinError:
    message = f"Douyin {path}: error {code} ({text})"
    if code in TOKEN_EXPIRED:
        return DouyinTokenExpiredError(message, error_code=code)
    if code == REFRESH_EXPIRED:
        return DouyinRefreshExpiredError(message, error_code=code)
    if code == REFRESH_LIMIT:
        return DouyinRefreshLimitError(message, error_code=code)
    return DouyinApiError(message, error_code=code)


class TokenSet(msgspec.Struct, frozen=True, kw_only=True):
    """What the OAuth endpoints answer (``data``), numbers converted."""

    access_token: str = ""
    expires_in: int = 0
    refresh_token: str = ""
    refresh_expires_in: int = 0
    open_id: str = ""
    scope: str = ""
    union_id: str = ""


def _tokens(data: dict[str, Any]) -> TokenSet:
    return TokenSet(
        access_token=str(data.get("access_token") or ""),
        expires_in=number(data.get("expires_in"), 0) or 0,
        refresh_token=str(data.get("refresh_token") or ""),
        refresh_expires_in=number(data.get("refresh_expires_in"), 0) or 0,
        open_id=str(data.get("open_id") or ""),
        scope=str(data.get("scope") or ""),
        union_id=str(data.get("union_id") or data.get("unionid") or ""),
    )


class DouyinClient:
    """One client per app (client_key, client_secret)."""

    def __init__(self, client_key: str, client_secret: str, *, base_url: str, http: httpx.AsyncClient) -> None:
        self.client_key = client_key
        self._secret = client_secret
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._client_token: str | None = None
        self._client_token_expires = 0.0
        self._client_token_lock = asyncio.Lock()
        self.client_token_fetches = 0  # for tests and metrics

    def __repr__(self) -> str:
        return f"DouyinClient(client_key={self.client_key!r})"

    # -- transport ------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(method, self.base_url + path, **kwargs)
        except httpx.TransportError as exc:
            raise DouyinTransientError(f"Douyin unreachable calling {path}: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise DouyinTransientError(f"Douyin answered HTTP {response.status_code} to {path}")
        try:
            body = response.json()
        except ValueError:
            raise DouyinTransientError(f"Douyin answered {path} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise DouyinApiError(f"Douyin answered {path} with a JSON {type(body).__name__}")
        failed = envelope_error(body)
        if failed is not None:
            raise _error(path, *failed)
        if response.status_code != 200:
            raise DouyinApiError(f"Douyin answered HTTP {response.status_code} to {path}")
        return body

    @staticmethod
    def _data(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    # -- OAuth ----------------------------------------------------------------------------------

    def authorize_url(self, *, scopes: list[str], redirect_uri: str, state: str) -> str:
        query = urlencode(
            {
                "client_key": self.client_key,
                "response_type": "code",
                "scope": ",".join(scopes),
                "redirect_uri": redirect_uri,
                "state": state,
            },
            quote_via=quote,
            safe=",",
        )
        return f"{self.base_url}/platform/oauth/connect/?{query}"

    async def exchange_code(self, code: str) -> TokenSet:
        form = {"client_key": self.client_key, "client_secret": self._secret, "code": code, "grant_type": "authorization_code"}
        return _tokens(self._data(await self._request("POST", "/oauth/access_token/", data=form)))

    async def refresh(self, refresh_token: str) -> TokenSet:
        form = {"client_key": self.client_key, "grant_type": "refresh_token", "refresh_token": refresh_token}
        return _tokens(self._data(await self._request("POST", "/oauth/refresh_token/", data=form)))

    async def renew_refresh_token(self, refresh_token: str) -> TokenSet:
        """A new refresh token; its lifetime comes as ``expires_in`` (it has no access token)."""
        form = {"client_key": self.client_key, "refresh_token": refresh_token}
        data = self._data(await self._request("POST", "/oauth/renew_refresh_token/", data=form))
        got = _tokens(data)
        lifetime = got.refresh_expires_in or got.expires_in
        return msgspec.structs.replace(got, access_token="", expires_in=0, refresh_expires_in=lifetime)

    async def client_token(self) -> str:
        """The app's client token, cached until shortly before it expires; concurrent callers
        share one fetch (fetching again invalidates the previous token, §D.7)."""
        if self._client_token and time.monotonic() < self._client_token_expires:
            return self._client_token
        async with self._client_token_lock:
            if self._client_token and time.monotonic() < self._client_token_expires:
                return self._client_token
            form = {"client_key": self.client_key, "client_secret": self._secret, "grant_type": "client_credential"}
            data = self._data(await self._request("POST", "/oauth/client_token/", data=form))
            self.client_token_fetches += 1
            token = str(data.get("access_token") or "")
            if not token:
                raise DouyinApiError("Douyin /oauth/client_token/ answered without a token")
            self._client_token = token
            self._client_token_expires = time.monotonic() + (number(data.get("expires_in"), 7200) or 7200) * 0.9
            return token

    async def userinfo(self, access_token: str, open_id: str) -> dict[str, Any]:
        form = {"access_token": access_token, "open_id": open_id}
        return self._data(await self._request("POST", "/oauth/userinfo/", data=form))

    # -- calls with a user's access token (§D.8) ---------------------------------------------------

    async def call(
        self, method: str, path: str, *, token: str, open_id: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"access-token": token}
        query = {"open_id": open_id, **(params or {})}
        return await self._request(method, path, params=query, json=json, headers=headers)

    async def send_message(self, token: str, open_id: str, body: dict[str, Any]) -> str:
        """``/im/send/msg/`` (§D.9): the id of the message sent."""
        answer = await self.call("POST", "/im/send/msg/", token=token, open_id=open_id, json=body)
        msg_id = answer.get("msg_id") or self._data(answer).get("msg_id")
        if not msg_id:
            raise DouyinApiError("Douyin /im/send/msg/ answered without a msg_id")
        return str(msg_id)

    async def reply_comment(self, token: str, open_id: str, *, item_id: str, comment_id: str, content: str) -> str:
        """``/item/comment/reply/`` (§D.10): the id of the reply."""
        body = {"item_id": item_id, "comment_id": comment_id, "content": content}
        answer = self._data(await self.call("POST", "/item/comment/reply/", token=token, open_id=open_id, json=body))
        return str(answer.get("comment_id") or "")

    async def fans(self, token: str, open_id: str, *, date_type: int) -> list[dict[str, Any]]:
        """``/data/external/user/fans/`` (§D.10): ``result_list`` of the authorized account."""
        answer = self._data(
            await self.call("GET", "/data/external/user/fans/", token=token, open_id=open_id, params={"date_type": date_type})
        )
        return [r for r in answer.get("result_list") or [] if isinstance(r, dict)]
