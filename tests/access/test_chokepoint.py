"""The tenant chokepoint attacked below the ORM (issue 12, item 1b).

A tenant session scopes Core statements as it scopes ORM ones: a tenant table used as a plain
``Table`` (a count, a subquery, an alias, a join, a Core update/delete/insert), core's or a
plugin's, gets the tenant predicate (and the owner predicate of an ownership-limited session). What
it cannot scope, a ``text()`` or SQL sent on the session's connection past it, is refused unless
marked unscoped. Two tenants hold rows; every attack runs as the first and must see only its own.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
from sqlalchemy import delete, func, insert, literal, select, text, union_all, update

from guanxi.core.base.context import RequestContext
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Customer, Identity, Tag, utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers, identities, tags, users
from guanxi.core.services.pipelines import create_tenant
from guanxi.core.storage.tenancy import UNSCOPED, TenantScopeError, unscoped
from guanxi.plugins.referral.models import ReferralCampaign
from guanxi.plugins.wecom.models import WecomStaff

pytestmark = pytest.mark.plugins("wecom", "referral", "scoring")

Tenants = tuple[uuid.UUID, uuid.UUID]
C = Customer.__table__
I = Identity.__table__  # noqa: E741


async def _populate(runtime: Runtime, tenant_id: uuid.UUID, names: list[str], owner: uuid.UUID | None = None) -> list[uuid.UUID]:
    ids = []
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        for name in names:
            c = await customers.create_customer(tx, customers.CustomerInput(display_name=name, owner_id=owner))
            await identities.attach_identity(tx, c.id, identities.IdentityInput(channel="wecom", external_id=f"wm-{secrets.token_hex(4)}"))
            await tags.change_tags(tx, c.id, add=["vip"])
            ids.append(c.id)
        staff = await users.create_user(tx, email=f"s{secrets.token_hex(3)}@x.cn", name="Staff")
        tx.session.add(WecomStaff(corp_id="acme", userid=f"staff-{secrets.token_hex(3)}", user_id=staff.id))
        tx.session.add(ReferralCampaign(id=new_id(), key=f"c-{secrets.token_hex(3)}", name="c", landing_url="https://x.example"))
    return ids


@pytest.fixture
async def two_tenants(runtime: Runtime, tenant_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """The test's tenant with two customers, and another tenant with three."""
    async with runtime.write_session(None) as session:
        other = await create_tenant(session, f"o-{secrets.token_hex(5)}", "Other")
    await _populate(runtime, tenant_id, ["Mine 1", "Mine 2"])
    await _populate(runtime, other, ["Theirs 1", "Theirs 2", "Theirs 3"])
    return tenant_id, other


async def test_a_core_table_count_sees_only_the_sessions_tenant(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, theirs = two_tenants
    async with runtime.session(mine) as s:
        assert await s.scalar(select(func.count()).select_from(C)) == 2
        assert await s.scalar(select(func.count()).select_from(I)) == 2
        assert sorted((await s.execute(select(C.c.display_name))).scalars()) == ["Mine 1", "Mine 2"]
    async with runtime.session(theirs) as s:
        assert await s.scalar(select(func.count(C.c.id))) == 3


async def test_a_core_subquery_inside_an_orm_statement_is_scoped(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, _ = two_tenants
    async with runtime.session(mine) as s:
        identities_count = select(func.count()).select_from(I).scalar_subquery()
        # every identity of every tenant would count 5 times per customer without the predicate
        per_customer = select(Customer.id, select(func.count()).select_from(I).where(I.c.external_id != "").scalar_subquery())
        assert {n for _, n in (await s.execute(per_customer)).all()} == {2}
        assert len((await s.execute(select(Customer.id).where(literal(2) == identities_count))).all()) == 2
        in_sub = select(Customer.display_name).where(Customer.id.in_(select(I.c.customer_id)))
        assert sorted((await s.execute(in_sub)).scalars()) == ["Mine 1", "Mine 2"]


async def test_aliases_joins_and_outer_joins_of_core_tables_are_scoped(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, _ = two_tenants
    async with runtime.session(mine) as s:
        a = C.alias("a")
        assert await s.scalar(select(func.count()).select_from(a)) == 2
        joined = select(func.count()).select_from(C.join(I, I.c.customer_id == C.c.id))
        assert await s.scalar(joined) == 2
        # the outer join keeps every customer of the tenant (the predicate is in ON, not WHERE)
        outer = select(C.c.display_name, I.c.external_id).select_from(C.outerjoin(I, I.c.customer_id != C.c.id))
        rows = (await s.execute(outer)).all()
        assert sorted({r[0] for r in rows}) == ["Mine 1", "Mine 2"] and len(rows) == 2
        cross = select(func.count()).select_from(C).join(Tag.__table__, Tag.__table__.c.name == "vip")
        assert await s.scalar(cross) == 2
        left = select(C.c.display_name, I.c.external_id).select_from(C).outerjoin(I, I.c.customer_id != C.c.id)
        rows = (await s.execute(left)).all()
        assert sorted({r[0] for r in rows}) == ["Mine 1", "Mine 2"] and len(rows) == 2


async def test_a_union_of_core_selects_is_scoped(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, _ = two_tenants
    async with runtime.session(mine) as s:
        both = union_all(select(C.c.id), select(I.c.customer_id)).subquery()
        assert await s.scalar(select(func.count()).select_from(both)) == 4


async def test_core_update_and_delete_touch_only_the_sessions_tenant(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, theirs = two_tenants
    async with runtime.write_session(mine) as s:
        changed = await s.execute(update(C).values(company="Hacked"))
        assert changed.rowcount == 2  # type: ignore[attr-defined]
        gone = await s.execute(delete(Tag.__table__).where(Tag.__table__.c.name == "nothing"))
        assert gone.rowcount == 0  # type: ignore[attr-defined]
    async with runtime.session(theirs) as s:
        assert set((await s.execute(select(Customer.company))).scalars()) == {None}


async def test_a_core_insert_gets_the_sessions_tenant_and_refuses_another(
    runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    mine, theirs = two_tenants
    row = {"id": new_id(), "group_name": "", "name": "core-made", "created_at": utcnow()}
    async with runtime.write_session(mine) as s:
        await s.execute(insert(Tag.__table__).values(**row))
        await s.execute(insert(Tag.__table__), [{**row, "id": new_id(), "name": "core-made-2"}])
    async with runtime.session(mine) as s:
        assert {"core-made", "core-made-2"} <= set((await s.execute(select(Tag.name))).scalars())
    with pytest.raises(TenantScopeError, match="another tenant"):
        async with runtime.write_session(mine) as s:
            await s.execute(insert(Tag.__table__).values(**{**row, "id": new_id(), "tenant_id": theirs}))
    with pytest.raises(TenantScopeError, match="INSERT … SELECT"):
        async with runtime.write_session(mine) as s:
            await s.execute(insert(Tag.__table__).from_select(list(Tag.__table__.c.keys()), select(Tag.__table__)))


async def test_plugin_tables_used_as_core_tables_are_scoped(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, _ = two_tenants
    async with runtime.session(mine) as s:
        assert await s.scalar(select(func.count()).select_from(WecomStaff.__table__)) == 1
        assert await s.scalar(select(func.count()).select_from(ReferralCampaign.__table__)) == 1
    with pytest.raises(TenantScopeError, match="referral_campaigns"):
        async with runtime.session(mine) as s:
            await s.execute(text("SELECT count(*) FROM referral_campaigns"))


@pytest.mark.parametrize(
    "sql",
    ["SELECT count(*) FROM customers", 'select * from "identities"', "UPDATE customers SET company = 'x'", "DELETE FROM wecom_staff"],
)
async def test_text_naming_a_tenant_table_is_refused(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID], sql: str) -> None:
    mine, _ = two_tenants
    with pytest.raises(TenantScopeError, match="cannot be scoped"):
        async with runtime.session(mine) as s:
            await s.execute(text(sql))


async def test_text_marked_unscoped_or_naming_no_tenant_table_runs(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, _ = two_tenants
    async with runtime.session(mine) as s:
        assert await s.scalar(text("SELECT 1")) == 1
        everyone = await s.scalar(text("SELECT count(*) FROM customers").execution_options(**{UNSCOPED: True}))
        assert everyone is not None and everyone >= 5
        with unscoped(s):
            assert await s.scalar(text("SELECT count(*) FROM customers")) == everyone
        assert await s.scalar(select(func.count()).select_from(C).execution_options(**{UNSCOPED: True})) == everyone


async def test_sql_sent_on_the_sessions_connection_is_refused(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    mine, _ = two_tenants
    with pytest.raises(TenantScopeError, match="past the tenant session"):
        async with runtime.session(mine) as s:
            conn = await s.connection()
            await conn.exec_driver_sql("SELECT count(*) FROM customers")
    with pytest.raises(TenantScopeError, match="past the tenant session"):
        async with runtime.session(mine) as s:
            conn = await s.connection()
            await conn.execute(select(func.count()).select_from(C))
    async with runtime.session(mine) as s:  # harmless SQL passes
        conn = await s.connection()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    # the connection went back to the pool: plain engine use (queue claims) is not a session's
    async with runtime.engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM customers")).scalar() >= 5


async def test_a_session_without_a_tenant_refuses_core_tables(runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]) -> None:
    with pytest.raises(TenantScopeError, match="without a tenant"):
        async with runtime.session(None) as s:
            await s.execute(select(func.count()).select_from(C))
    with pytest.raises(TenantScopeError, match="without a tenant"):
        async with runtime.write_session(None) as s:
            await s.execute(insert(Tag.__table__).values(id=new_id(), group_name="", name="x", created_at=utcnow()))


async def test_an_ownership_limited_session_sees_only_its_customers_through_core_tables(
    runtime: Runtime, two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    from tests.access.conftest import make_user

    mine, _ = two_tenants
    me = await make_user(runtime, mine, "me@x.cn", "sales")
    (owned,) = await _populate(runtime, mine, ["Owned"], owner=me)
    async with runtime.session(mine, frozenset({me})) as s:
        assert (await s.execute(select(C.c.id))).scalars().all() == [owned]
        assert (await s.execute(select(I.c.customer_id))).scalars().all() == [owned]
        assert await s.scalar(select(func.count()).select_from(C.alias())) == 1
