"""GraphQL hardening: document and page limits, and secrets that never reach a log."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable

import httpx
import jwt
import msgspec
import pytest

from guanxi.app import create_app
from guanxi.core.runtime import Runtime
from guanxi.testing.plugin import BASE_URL, TEST_SECRET, GraphQL
from tests.access.conftest import Caller, key_for


async def test_a_document_with_too_many_tokens_is_refused(graphql: GraphQL) -> None:
    fields = " ".join(f"a{i}: __typename" for i in range(3000))
    body = await graphql(f"{{ {fields} }}", ok=False)
    assert body["data"] is None and "token" in body["errors"][0]["message"].lower()


async def test_a_page_larger_than_the_limit_is_refused_with_the_limit_named(graphql: GraphQL) -> None:
    body = await graphql("{ customers(first: 101) { totalCount } }", ok=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE" and "100" in body["errors"][0]["message"]
    body = await graphql("{ auditEvents(first: 5000) { action } }", ok=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE"


async def test_secrets_never_reach_the_logs(
    runtime: Runtime, tenant_id: uuid.UUID, as_key: Callable[[str], Caller], http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys (good, bad, revoked), a JWT, its signing secret and the server secret are used and
    misused at DEBUG level; none of them, nor a key's secret part, appears in any log record."""
    jwt_secret = "jwt-signing-secret-for-the-log-test-0123456789"
    runtime.settings = msgspec.structs.replace(runtime.settings, auth=msgspec.structs.replace(runtime.settings.auth, jwt_secret=jwt_secret))
    runtime.state.pop("authenticator", None)
    from guanxi.testing.plugin import use_tenant

    await use_tenant(runtime, tenant_id)
    with caplog.at_level(logging.DEBUG):
        key = await key_for(runtime, tenant_id, "admin")
        call = as_key(key)
        created = await call('mutation { createApiKey(input: {name: "leak test", role: READONLY}) { key } }')
        new_key = created["data"]["createApiKey"]["key"]
        await call("mutation($k: String!) { revokeApiKey(keyId: $k) { errors { code } } }", {"k": new_key.split("_")[1]})
        await http.post("/graphql", json={"query": "{ users { id } }"}, headers={"Authorization": f"Bearer {new_key}"})  # revoked
        wrong = key[:-4] + "AAAA"
        await http.post("/graphql", json={"query": "{ users { id } }"}, headers={"Authorization": f"Bearer {wrong}"})
        token = jwt.encode(
            {
                "tenant": runtime.settings.tenant,
                "sub": "bi",
                "roles": ["readonly"],
                "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
            },
            jwt_secret,
            "HS256",
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as c:
            await c.post("/graphql", json={"query": "{ users { id } }"}, headers={"Authorization": f"Bearer {token}"})
            await c.post("/graphql", json={"query": "{ users { id } }"}, headers={"Authorization": f"Bearer {token}x"})
        await call("{ nope }")  # a caller mistake, logged at debug
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "refused a GraphQL request" in logged  # the refusals were logged, without the credentials
    for secret in (key, key.split("_", 2)[2], new_key, new_key.split("_", 2)[2], wrong, token, jwt_secret, TEST_SECRET):
        assert secret not in logged
