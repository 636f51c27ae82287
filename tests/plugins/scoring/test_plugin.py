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
    assert ours == {"scoring_scores", "scoring_parts", "scoring_history", "scoring_assignments"}

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
