"""Shared helpers of the materials tests: a file store in the test's folder, a salesperson with
an API key, customers, and GraphQL calls as that salesperson."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from guanxi import RequestContext, Runtime
from guanxi.core.services.customers import CustomerInput, create_customer
from guanxi.core.storage.files import LocalFileStore
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user

PUBLIC_URL = "https://crm.example.com"
PIGEON_SECRET = "referral-test-secret"  # the Pigeon webhook helper of the referral tests signs with it
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47"
#: a real 8×8 PNG (uploaded images are decoded for their thumbnail)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x02\x00\x00\x00Km)\xdc\x00\x00\x00\x14IDATx"
    b"\x9cc<!'\xc7\x80\r0a\x15\x1d\xb4\x12\x00\xd0\xca\x01\x14>c\xa8\x99\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 4


@pytest.fixture
def plugin_config(plugin_names: list[str]) -> dict[str, dict[str, Any]]:
    sections = {
        "materials": {"public_url": PUBLIC_URL, "max_read_s": 600},
        "pigeon": {"webhook_secret": PIGEON_SECRET},
        "referral": {"public_url": PUBLIC_URL, "forward_campaign": "content"},
    }
    return {name: section for name, section in sections.items() if name in plugin_names}


@pytest.fixture
def files(runtime: Runtime, tmp_path: Path) -> LocalFileStore:
    """The core file store in the test's folder, with a small limit (4 KiB)."""
    store = runtime.state["files"] = LocalFileStore(tmp_path / "files", 4096)
    return store


class Staff:
    """A user with an API key; ``gql`` posts GraphQL as them."""

    def __init__(self, client: httpx.AsyncClient, user_id: uuid.UUID, key: str) -> None:
        self.client, self.user_id, self.key = client, user_id, key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def staff(runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient, email: str, role: str) -> Staff:
    user_id = await make_user(runtime, tenant_id, email, role)
    return Staff(client, user_id, await api_key(runtime, tenant_id, role, user_id=user_id))


@pytest.fixture
async def sales(runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient) -> Staff:
    return await staff(runtime, tenant_id, anonymous_client, "wang@x.cn", "sales")


@pytest.fixture
async def marketing(runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient) -> Staff:
    return await staff(runtime, tenant_id, anonymous_client, "li@x.cn", "marketing")


async def customer(runtime: Runtime, tenant_id: uuid.UUID, name: str, owner: uuid.UUID | None = None) -> uuid.UUID:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        return (await create_customer(tx, CustomerInput(display_name=name, owner_id=owner))).id


CREATE = """
mutation($input: CreateMaterialInput!) {
  createMaterial(input: $input) { material { id kind title body url folder tags roles } errors { field code message } }
}"""

LIST = """
query($folder: String, $tag: String, $kind: String) {
  materials(folder: $folder, tag: $tag, kind: $kind) { id kind title folder tags roles mediaType size }
}"""

SHARE = """
mutation($material: ID!, $customer: ID) {
  shareMaterial(materialId: $material, customerId: $customer) { share { token url } errors { field code message } }
}"""
