"""The insights plugin's wiring: migrations that match its models, config validation, a person's
scores in export, erasure and merges."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import ConfigError
from guanxi.core.domain.models import Base
from guanxi.core.runtime import Runtime
from guanxi.core.services.merge import merge_customers
from guanxi.core.services.privacy import erase_customer, export_customer_data
from guanxi.plugins.insights import models  # noqa: F401 - its tables are on Base.metadata
from tests.plugins.insights.conftest import Inbox

pytestmark = pytest.mark.plugins("insights")


async def test_migrated_insights_tables_match_the_models(runtime: Runtime) -> None:
    ours = {t for t in Base.metadata.tables if t.startswith("insights_")}
    assert ours == {"insights_sentiments", "insights_tag_rules", "insights_keyword_hits", "insights_rule_tags"}

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": lambda _o, name, type_, _r, _c: type_ != "table" or name in ours}
        )
        return compare_metadata(ctx, Base.metadata)

    async with runtime.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ("alert_threshold = 0.5\n", "$.plugins.insights.alert_threshold"),
        ('alert_keywords = [""]\n', "$.plugins.insights.alert_keywords[0]"),
        ("bogus = 1\n", "$.plugins.insights"),
    ],
)
def test_a_bad_setting_fails_start_up_naming_its_key_path(tmp_path: Path, section: str, path: str) -> None:
    config = tmp_path / "guanxi.toml"
    config.write_text('[plugins]\nenabled = ["insights"]\n[plugins.insights]\n' + section, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Runtime.from_config(config, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite://"})
    assert f"`{path}" in str(err.value)


async def test_export_lists_a_persons_scores_and_erasure_deletes_them(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    box = Inbox(runtime, tenant_id)
    await box.say("太差了，我要投诉")
    [score] = await box.scores()
    async with runtime.session(tenant_id) as s:
        exported = (await export_customer_data(runtime, s, score.customer_id))["plugins"]["insights"]
    assert [(x["label"], x["alert"]) for x in exported["sentiments"]] == [("neg", "keyword 投诉")]
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        erased = await erase_customer(tx, score.customer_id)
    assert erased["insights.sentiments"] == 1
    assert await box.scores() == []


async def test_a_merged_customers_scores_move_to_the_survivor(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    box = Inbox(runtime, tenant_id)
    await box.say("很满意", who="a")
    await box.say("太差了", who="b")
    first, second = await box.scores()
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        await merge_customers(tx, first.customer_id, second.customer_id)
    assert {s.customer_id for s in await box.scores()} == {first.customer_id}
