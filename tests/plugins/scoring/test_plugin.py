"""The scoring plugin's wiring: migrations that match its models, config validation with key
paths, permissions, export and erasure of a person's score data."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from guanxi.core.base.errors import ConfigError
from guanxi.core.domain.models import Base
from guanxi.core.hooks import manager as plugins
from guanxi.core.runtime import Runtime
from guanxi.plugins.scoring import models  # noqa: F401 - its tables are on Base.metadata
from tests.plugins.scoring.conftest import Shop

pytestmark = pytest.mark.plugins("scoring")


async def test_migrated_scoring_tables_match_the_models(runtime: Runtime) -> None:
    ours = {t for t in Base.metadata.tables if t.startswith("scoring_")}
    assert ours == {"scoring_scores", "scoring_history", "scoring_assignments"}

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": lambda _o, name, type_, _r, _c: type_ != "table" or name in ours}
        )
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ("[plugins.scoring.engagement]\nhalf_life_days = 0\n", "$.plugins.scoring.engagement.half_life_days", ">"),
        (
            '[[plugins.scoring.engagement.rules]]\nkind = "Message In"\npoints = 5\n',
            "$.plugins.scoring.engagement.rules[0]",
            "lower_snake_case",
        ),
        (
            '[[plugins.scoring.engagement.rules]]\nkind = "visit"\npoints = 5\nperiod = "year"\n',
            "$.plugins.scoring.engagement.rules[0].period",
            "",
        ),
        (
            '[[plugins.scoring.stage_rules]]\nfrom_stage = "lead"\nto_stage = "lead"\nmin_score = 5\n',
            "$.plugins.scoring.stage_rules[0]",
            "same",
        ),
        ("[plugins.scoring.profile]\ncompleteness = { birthday = 3 }\n", "$.plugins.scoring.profile", "birthday"),
        ("[plugins.scoring]\nbogus = 1\n", "$.plugins.scoring", "bogus"),
    ],
)
def test_a_bad_rule_fails_start_up_naming_its_key_path(tmp_path: Path, section: str, path: str, words: str) -> None:
    config = tmp_path / "guanxi.toml"
    config.write_text('[plugins]\nenabled = ["scoring"]\n' + section, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Runtime.from_config(config, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite://"})
    assert f"`{path}" in str(err.value) and words in str(err.value)


def test_the_priority_queue_is_for_sales_managers_and_admins(runtime: Runtime) -> None:
    declared = [p for _, ps in plugins.per_plugin(runtime.pm.hook.guanxi_permissions) for p in ps]
    queue = next(p for p in declared if "Query.myPriorityQueue" in p.fields)
    assert set(queue.roles) == {"sales", "manager", "admin"}


class Gossip:
    @plugins.hookimpl
    def guanxi_score_components(self, customer_ids):  # type: ignore[no-untyped-def]
        from guanxi.core.domain.contracts import ScoreComponent

        return [ScoreComponent(customer_id=c, name="gossip.said", value=1, reasons=["Li Lei said she loves us"]) for c in customer_ids]


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"gossip": Gossip()}


@pytest.mark.plugins("scoring", "gossip")
async def test_export_lists_score_parts_and_history_and_erasure_keeps_the_numbers_only(shop: Shop, runtime: Runtime) -> None:
    cid = await shop.customer()
    await shop.interact(cid, "visit")
    async with runtime.session(shop.ctx.tenant_id) as s:
        answers = dict(await plugins.collect(runtime.pm.hook.guanxi_export_customer_data, runtime=runtime, session=s, customer_id=cid))
    exported = answers["scoring"]
    assert exported["score"]["total"] == pytest.approx(11)
    assert {(p["component"], p["item"]) for p in exported["parts"]} == {("engagement", "visit@*"), ("gossip.said", "")}
    assert [h["cause"] for h in exported["history"]] == ["created", "interaction:visit@wecom"]
    async with runtime.write_session(shop.ctx.tenant_id) as s:
        erased = dict(await plugins.collect(runtime.pm.hook.guanxi_erase_customer, runtime=runtime, session=s, customer_id=cid))
    assert erased["scoring"] == {"score_reasons": 1}
    parts = await shop.parts(cid)
    assert parts[("gossip.said", "")].reasons == [] and parts[("gossip.said", "")].value == 1
    assert await shop.total(cid) == pytest.approx(11)


async def test_scoring_0002_moves_the_parts_onto_the_score_and_back(shop: Shop, runtime: Runtime) -> None:
    """A downgrade to scoring_0001 writes each part of the stored arrays back as a row of
    ``scoring_parts`` (engagement with its span of dates, the purchase measure, the profile);
    the upgrade puts those rows back into the arrays, giving the same parts as before."""
    import datetime as dt

    import sqlalchemy as sa

    from guanxi.core.migrate import migrate_to
    from tests.plugins.scoring.conftest import NOW

    cid = await shop.customer(company="ACME", emails=["li@example.com"])
    await shop.interact(cid, "message_in", at=NOW - dt.timedelta(days=2))
    await shop.interact(cid, "message_in", at=NOW)
    await shop.interact(cid, "purchase", at=NOW, amount=99.5)
    before = await shop.parts(cid)
    assert ("engagement", "message_in@*") in before and before[("purchase", "monetary")].measure == 99.5
    rows = sa.table(
        "scoring_parts", sa.column("customer_id", sa.Uuid()), sa.column("component", sa.String()), sa.column("item", sa.String()),
        sa.column("count", sa.Integer()), sa.column("value", sa.Float()), sa.column("measure", sa.Float()),
        sa.column("first_at", sa.DateTime(timezone=True)), sa.column("last_at", sa.DateTime(timezone=True)),
    )  # fmt: skip
    try:
        await migrate_to(runtime, "scoring", "scoring_0001")
        async with runtime.engine.connect() as conn:
            found = {(r.component, r.item): r for r in (await conn.execute(sa.select(rows).where(rows.c.customer_id == cid))).all()}
        assert set(found) == set(before)
        engagement = found[("engagement", "message_in@*")]
        assert (engagement.count, round(engagement.value, 9)) == (2, round(before[("engagement", "message_in@*")].value, 9))
        first, last = (t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t for t in (engagement.first_at, engagement.last_at))
        assert (first, last) == (NOW - dt.timedelta(days=2), NOW)
        assert found[("purchase", "monetary")].measure == 99.5
        await migrate_to(runtime, "scoring", "heads")
        assert await shop.parts(cid) == before
    finally:
        await migrate_to(runtime, "scoring", "heads")
