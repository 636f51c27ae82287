"""Tenant isolation of the materials plugin: tenant B's admin and salesperson call every root
field with tenant A's material id and see nothing of it; A's radar link stays A's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from guanxi import RequestContext, Runtime
from guanxi.core.base.context import Actor
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import to_global_id
from guanxi.plugins.materials import library, scripts
from guanxi.plugins.materials.graphql import MaterialsMutation, MaterialsQuery
from guanxi.plugins.materials.models import Material
from guanxi.testing.plugin import api_key
from tests.access.conftest import make_user
from tests.plugins.materials.conftest import LIST, SHARE

pytestmark = pytest.mark.plugins("materials")

NOBODY = to_global_id("Customer", uuid.uuid4())
ATTACKS: dict[str, tuple[str, Callable[[str, str], dict[str, Any]]]] = {
    "materials": (LIST, lambda mid, sid: {}),
    "shareMaterial": (SHARE, lambda mid, sid: {"material": mid}),
    "materialReport": ("query { materialReport { material { title } views } }", lambda mid, sid: {}),
    "createMaterial": (
        'mutation { createMaterial(input: {kind: "link", title: "x", url: "https://a.example"}) { material { id } errors { code } } }',
        lambda mid, sid: {},
    ),
    "archiveMaterial": (
        "mutation($id: ID!) { archiveMaterial(id: $id) { material { title } errors { code } } }",
        lambda mid, sid: {"id": mid},
    ),
    "restoreMaterial": (
        "mutation($id: ID!) { restoreMaterial(id: $id) { material { title } errors { code } } }",
        lambda mid, sid: {"id": mid},
    ),
    "scripts": ("query { scripts { title text } }", lambda mid, sid: {}),
    "renderScript": ("query($s: ID!, $c: ID!) { renderScript(scriptId: $s, customerId: $c) }", lambda mid, sid: {"s": sid, "c": NOBODY}),
    "createScript": (
        'mutation { createScript(input: {scene: "a", title: "t", text: "x"}) { script { id } errors { code } } }',
        lambda mid, sid: {},
    ),
    "sendScript": (
        'mutation($s: ID!, $c: ID!) { sendScript(scriptId: $s, customerId: $c, channel: "x", idempotencyKey: "k") '
        "{ created errors { code } } }",
        lambda mid, sid: {"s": sid, "c": NOBODY},
    ),
}


def test_every_materials_root_field_is_attacked() -> None:
    fields = {f.python_name for t in (MaterialsQuery, MaterialsMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields}
    assert camel - set(ATTACKS) == set()


async def a_material(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    user = await make_user(runtime, tenant_id, f"m{uuid.uuid4().hex[:6]}@a.example", "marketing")
    ctx = RequestContext(tenant_id=tenant_id, actor=Actor(kind="user", user_id=user, roles=("marketing",)))
    async with runtime.transaction(ctx) as tx:
        row = await library.create_material(tx, library.MaterialInput(kind="link", title="A's secret", url="https://a.example"))
        script = await scripts.create_script(tx, scripts.ScriptInput(scene="a", title="A's secret", text="A's secret"))
    return row.id, script.id


@pytest.mark.parametrize("role", ["admin", "sales"])
@pytest.mark.parametrize("field", sorted(ATTACKS))
async def test_another_tenant_sees_nothing_of_a_material(
    runtime: Runtime, tenant_id: uuid.UUID, anonymous_client: httpx.AsyncClient, role: str, field: str
) -> None:
    material, script = await a_material(runtime, tenant_id)
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    user = await make_user(runtime, beta, "u@beta.example", role)
    key = await api_key(runtime, beta, role, user_id=user)
    query, variables = ATTACKS[field]
    response = await anonymous_client.post(
        "/graphql",
        json={"query": query, "variables": variables(to_global_id("Material", material), to_global_id("Script", script))},
        headers={"Authorization": f"Bearer {key}"},
    )
    text = response.text
    assert response.status_code == 200 and "A's secret" not in text
    body = response.json()
    if field in ("shareMaterial", "sendScript") or (field in ("archiveMaterial", "restoreMaterial") and role == "admin"):
        assert body["data"][field]["errors"][0]["code"] == "NOT_FOUND"
    if field in ("archiveMaterial", "restoreMaterial"):
        async with runtime.session(tenant_id) as s:
            assert (await s.get(Material, (tenant_id, material))).archived_at is None  # A's material untouched
    if field == "renderScript":
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    if field in ("materials", "materialReport", "scripts") and "data" in body and body["data"]:
        assert body["data"][field] == []
