"""Authentication of /graphql: API keys, JWT bearer tokens, 401s, dev mode, rate limits."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text

from guanxi.app import create_app
from guanxi.core.domain.models import ApiKey, Tenant
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import UNSCOPED, unscoped
from guanxi.testing.plugin import BASE_URL, use_tenant
from tests.access.conftest import Caller, key_for, make_user

QUERY = {"query": "{ customers { totalCount } }"}


async def test_no_credentials_get_401_for_queries_introspection_and_graphiql(http: httpx.AsyncClient) -> None:
    """Without credentials nothing answers: a query, introspection and the GraphiQL page all get
    401 with a Bearer challenge and a message saying what is missing."""
    for response in (
        await http.post("/graphql", json=QUERY),
        await http.post("/graphql", json={"query": "{ __schema { queryType { name } } }"}),
        await http.get("/graphql", headers={"Accept": "text/html"}),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "Authorization: Bearer" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "must be 'Bearer"),
        ("Bearer gx_nope", "malformed API key"),
        ("Bearer gx_0123456789abcdef_wrongsecret", "unknown API key"),
        ("Bearer not.a.jwt", "not configured"),
    ],
)
async def test_bad_credentials_get_401_saying_what_was_wrong(http: httpx.AsyncClient, header: str, reason: str) -> None:
    response = await http.post("/graphql", json=QUERY, headers={"Authorization": header})
    assert response.status_code == 401
    assert reason in response.json()["errors"][0]["message"]


async def test_an_api_key_is_stored_only_as_an_hmac_and_records_when_it_was_used(
    runtime: Runtime, tenant_id: uuid.UUID, as_key: Callable[[str], Caller]
) -> None:
    key = await key_for(runtime, tenant_id, "admin")
    assert key.startswith("gx_") and len(key) > 40
    body = await as_key(key)("{ customers { totalCount } }")
    assert body["data"] == {"customers": {"totalCount": 0}}
    key_id = key.split("_")[1]
    await runtime.drain()  # last_used_at is written beside the request, not on its path
    async with runtime.session(tenant_id) as s:
        row = (await s.scalars(select(ApiKey).where(ApiKey.key_id == key_id))).one()
        dump = json.dumps(
            [
                str(v)
                for v in (
                    await s.execute(text("SELECT * FROM api_keys WHERE key_id = :k").execution_options(**{UNSCOPED: True}), {"k": key_id})
                ).one()
            ]
        )
    assert row.last_used_at is not None
    assert key not in dump and key.split("_", 2)[2] not in dump  # neither the key nor its secret part


async def test_api_keys_are_listed_with_role_and_revocation_time(
    graphql: Callable[..., object], runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    key = await key_for(runtime, tenant_id, "sales", await make_user(runtime, tenant_id, "s@x.cn", "sales"))
    revoked = await graphql(  # type: ignore[operator]
        "mutation($k: String!) { revokeApiKey(keyId: $k) { apiKey { keyId revokedAt } errors { code } } }", {"k": key.split("_")[1]}
    )
    assert revoked["data"]["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    listed = await graphql("{ apiKeys { keyId role revokedAt } }")  # type: ignore[operator]
    by_role = {k["role"]: k for k in listed["data"]["apiKeys"]}
    assert set(by_role) == {"ADMIN", "SALES"}
    assert by_role["SALES"]["revokedAt"] is not None and by_role["ADMIN"]["revokedAt"] is None
    missing = await graphql('mutation { revokeApiKey(keyId: "nope") { errors { code } } }')  # type: ignore[operator]
    assert missing["data"]["revokeApiKey"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_revocation_refuses_the_next_request(
    runtime: Runtime, tenant_id: uuid.UUID, http: httpx.AsyncClient, graphql: Callable[..., object]
) -> None:
    key = await key_for(runtime, tenant_id, "readonly")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await http.post("/graphql", json=QUERY, headers=headers)).status_code == 200
    await graphql("mutation($k: String!) { revokeApiKey(keyId: $k) { errors { code } } }", {"k": key.split("_")[1]})  # type: ignore[operator]
    response = await http.post("/graphql", json=QUERY, headers=headers)
    assert response.status_code == 401 and "revoked" in response.text


async def test_create_api_key_shows_the_key_once_and_it_works(graphql: Callable[..., object], as_key: Callable[[str], Caller]) -> None:
    created = await graphql(
        'mutation { createApiKey(input: {name: "bi export", role: READONLY}) { key apiKey { keyId role name } errors { code } } }'
    )  # type: ignore[operator]
    payload = created["data"]["createApiKey"]
    assert payload["errors"] == [] and payload["apiKey"]["role"] == "READONLY"
    assert payload["key"].startswith(f"gx_{payload['apiKey']['keyId']}_")
    assert (await as_key(payload["key"])("{ customers { totalCount } }"))["data"]["customers"]["totalCount"] == 0
    listed = await graphql("{ apiKeys { keyId name } }")  # type: ignore[operator]
    assert "key" not in json.dumps(listed["data"]).replace("keyId", "")  # secrets are never listed


async def test_a_sales_key_needs_a_user(graphql: Callable[..., object]) -> None:
    body = await graphql('mutation { createApiKey(input: {name: "x", role: SALES}) { key errors { field code } } }')  # type: ignore[operator]
    assert body["data"]["createApiKey"] == {"key": None, "errors": [{"field": "userId", "code": "VALIDATION"}]}
    body = await graphql('mutation { createApiKey(input: {name: "x", role: BOSS}) { key errors { field code } } }', ok=False)  # type: ignore[operator]
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert "Value 'BOSS' does not exist in 'Role' enum" in body["errors"][0]["message"]


def _jwt_runtime(runtime: Runtime, **auth: str) -> Runtime:
    runtime.settings = msgspec.structs.replace(runtime.settings, auth=msgspec.structs.replace(runtime.settings.auth, **auth))
    runtime.state.pop("authenticator", None)
    return runtime


async def _slug(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    async with runtime.session(None) as s, unscoped(s):
        return str((await s.execute(select(Tenant.slug).where(Tenant.id == tenant_id))).scalar_one())


async def _post(runtime: Runtime, token: str, query: str = "{ customers { totalCount } }") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as c:
        return await c.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})


async def test_hs256_tokens_carry_tenant_subject_and_roles(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    _jwt_runtime(runtime, jwt_secret="s3cret-for-tests-only-0123456789abcdef")
    user = await make_user(runtime, tenant_id, "li@x.cn", "sales")
    slug = await _slug(runtime, tenant_id)
    exp = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    good = jwt.encode({"tenant": slug, "sub": "li@x.cn", "roles": ["sales"], "exp": exp}, "s3cret-for-tests-only-0123456789abcdef", "HS256")
    response = await _post(runtime, good, 'mutation { createCustomer(input: {displayName: "Mine"}) { customer { owner { id email } } } }')
    assert response.status_code == 200, response.text
    assert response.json()["data"]["createCustomer"]["customer"]["owner"]["email"] == "li@x.cn"  # acts as the user
    assert user
    expired = jwt.encode(
        {"tenant": slug, "sub": "li@x.cn", "roles": ["sales"], "exp": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)},
        "s3cret-for-tests-only-0123456789abcdef",
        "HS256",
    )
    assert (await _post(runtime, expired)).status_code == 401
    forged = jwt.encode({"tenant": slug, "sub": "li@x.cn", "roles": ["admin"], "exp": exp}, "another-secret-0123456789abcdefghijk", "HS256")
    response = await _post(runtime, forged)
    assert response.status_code == 401 and "InvalidSignatureError" in response.text
    bad_role = jwt.encode(
        {"tenant": slug, "sub": "li@x.cn", "roles": ["root"], "exp": exp}, "s3cret-for-tests-only-0123456789abcdef", "HS256"
    )
    assert "roles claim" in (await _post(runtime, bad_role)).text
    no_tenant = jwt.encode(
        {"tenant": "nope", "sub": "li@x.cn", "roles": ["admin"], "exp": exp}, "s3cret-for-tests-only-0123456789abcdef", "HS256"
    )
    assert "tenant does not exist" in (await _post(runtime, no_tenant)).text


async def test_rs256_tokens_are_checked_with_the_jwks_key_named_by_kid(runtime: Runtime, tenant_id: uuid.UUID, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    _jwt_runtime(runtime, jwt_jwks_file=str(jwks), jwt_issuer="https://sso.example.cn")
    slug = await _slug(runtime, tenant_id)
    claims = {
        "tenant": slug,
        "sub": "bi-robot",
        "roles": ["readonly"],
        "iss": "https://sso.example.cn",
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    }
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    good = jwt.encode(claims, pem, "RS256", headers={"kid": "k1"})
    assert (await _post(runtime, good)).json() == {"data": {"customers": {"totalCount": 0}}}
    other_pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert (await _post(runtime, jwt.encode(claims, other_pem, "RS256", headers={"kid": "k1"}))).status_code == 401
    assert (await _post(runtime, jwt.encode({**claims, "iss": "https://evil"}, pem, "RS256", headers={"kid": "k1"}))).status_code == 401
    assert (await _post(runtime, jwt.encode(claims, pem, "RS256", headers={"kid": "k2"}))).status_code == 401


async def test_dev_mode_opens_graphiql_and_introspection_but_no_data(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    await use_tenant(runtime, tenant_id)
    runtime.settings = msgspec.structs.replace(runtime.settings, server=msgspec.structs.replace(runtime.settings.server, dev=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        schema = await c.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
        assert schema.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        data = await c.post("/graphql", json={"query": "{ __typename customers { totalCount } }"})
        assert data.status_code == 200
        assert data.json()["data"] is None and data.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_dev_mode_is_refused_on_a_non_loopback_host() -> None:
    from guanxi.core.base.config import load_settings
    from guanxi.core.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\$\.server.*loopback"):
        load_settings(environ={"GUANXI__SERVER__DEV": "true", "GUANXI__SERVER__HOST": "0.0.0.0"})


async def test_a_key_over_its_rate_gets_429_with_retry_after(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    runtime.settings = msgspec.structs.replace(
        runtime.settings, auth=msgspec.structs.replace(runtime.settings.auth, rate_per_s=0.5, rate_burst=3)
    )
    key = await key_for(runtime, tenant_id, "readonly")
    other = await key_for(runtime, tenant_id, "readonly")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)), base_url=BASE_URL) as c:
        codes = [(await c.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {key}"})).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await c.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {key}"})
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED" and int(limited.headers["retry-after"]) >= 1
        assert (await c.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {other}"})).status_code == 200  # per key


async def test_rotating_the_server_secret_keeps_api_keys_working_and_rehashes_each_on_its_next_use(
    runtime: Runtime, tenant_id: uuid.UUID
) -> None:
    """With the old secret in auth.previous_secrets, a key made under it still works and is
    re-hashed under the new secret at its first use; after that the old secret can go. A key
    not used during the rotation is refused once the old secret is gone."""
    from guanxi.core.auth import authenticator_of, hash_key
    from guanxi.testing.plugin import TEST_SECRET

    used, idle = await key_for(runtime, tenant_id, "admin"), await key_for(runtime, tenant_id, "admin")
    new_secret = "a-new-server-secret-" + "9" * 32
    _jwt_runtime(runtime, secret=new_secret, previous_secrets=[TEST_SECRET])
    assert (await _post(runtime, used)).status_code == 200
    await authenticator_of(runtime).flush_last_used()
    async with runtime.session(None) as s, unscoped(s):
        stored = (await s.execute(select(ApiKey.secret_hash).where(ApiKey.key_id == used.split("_")[1]))).scalar_one()
    assert stored == hash_key(new_secret.encode(), used)
    _jwt_runtime(runtime, secret=new_secret, previous_secrets=[])
    assert (await _post(runtime, used)).status_code == 200
    refused = await _post(runtime, idle)
    assert refused.status_code == 401 and "unknown API key" in refused.text
