"""Hook implementations of the insights plugin: wiring only."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import msgspec

from guanxi.core.domain.access import Permission
from guanxi.core.domain.contracts import JobKind, JobRun, ScoreComponent
from guanxi.core.domain.events import CustomersMerged, InteractionRecorded
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.insights import hookspecs
from guanxi.plugins.insights.analysis import analyse
from guanxi.plugins.insights.settings import InsightsSettings


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return InsightsSettings


@hookimpl
def guanxi_tenant_settings() -> type[msgspec.Struct]:
    """Every insights setting is the tenant's to override (alert keywords, threshold, due hours,
    score points and window): none is a URL, a path or a secret."""
    return InsightsSettings


@hookimpl
def guanxi_startup(runtime: Runtime) -> None:
    """Adds the plugin's own hook (``guanxi_insights_sentiment``) to the plugin manager."""
    if not hasattr(runtime.pm.hook, "guanxi_insights_sentiment") or runtime.pm.hook.guanxi_insights_sentiment.spec is None:
        runtime.pm.add_hookspecs(hookspecs)


@hookimpl
def guanxi_graphql(runtime: Runtime) -> Any:
    from guanxi.plugins.insights.graphql import contribution

    return contribution()


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="insights.rules.manage",
            roles=("admin", "marketing"),
            fields=("Mutation.saveInsightsTagRule", "Mutation.deleteInsightsTagRule", "Mutation.runInsightsTagRules"),
            description="Create, change, delete and run tag rules",
        ),
        Permission(
            name="insights.rules.read",
            roles=("admin", "manager", "marketing", "service"),
            fields=("Query.insightsTagRules",),
            description="Read the tag rules",
        ),
        Permission(
            name="insights.serviceQueue",
            roles=("admin", "manager", "service"),
            fields=("Query.serviceQueue",),
            description="See the service team's queue: unhappy customers first",
        ),
    ]


async def _run_tag_rules(job: JobRun) -> None:
    from guanxi.plugins.insights.rules import evaluate

    await evaluate(job.runtime, job.tenant_id, job.slot_at)


@hookimpl
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind]:
    from guanxi.plugins.insights.rules import JOB

    return [JobKind(name=JOB, run=_run_tag_rules, description="Give and take the tags of the tenant's tag rules (hourly)")]


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl(tryfirst=True)
async def guanxi_interaction_recorded(runtime: Runtime, event: InteractionRecorded) -> None:
    """Every inbound text is scored after it commits (and may raise an alert); first, so that a
    scoring plugin rescoring on the same event sees the new sentiment."""
    await analyse(runtime, event)


@hookimpl
async def guanxi_score_components(
    runtime: Runtime, session: TenantSession, customer_ids: list[uuid.UUID], as_of: dt.datetime
) -> list[ScoreComponent]:
    from guanxi.plugins.insights.components import components

    return await components(runtime.plugin_settings("insights", session.tenant_id), session, customer_ids, as_of)


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    from guanxi.plugins.insights.privacy import move_to_survivor

    await move_to_survivor(runtime, event)


@hookimpl
async def guanxi_export_customer_data(session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    from guanxi.plugins.insights.privacy import export_customer

    return await export_customer(session, customer_id)


@hookimpl
async def guanxi_erase_customer(session: TenantSession, customer_id: uuid.UUID) -> dict[str, int]:
    from guanxi.plugins.insights.privacy import erase_customer

    return await erase_customer(session, customer_id)
