"""The sales plugin's customer rows besides the pool's in a merge and its undo: the recurring
follow-up plans' runs and the deals (with their lines, moves, contracts, instalments and payments).

On a merge the survivor takes them (``guanxi_customers_merged``): a run says "this customer had
this plan's task of this period", so the survivor, which now holds the merged customer's tasks,
gets no second task for a period the merged customer already had; where the survivor has its own
run of that plan and period, the merged customer's run is dropped. ``guanxi_merge_record`` keeps
all of them whole, and ``guanxi_merge_undone`` gives them back: the rows still on the survivor
move back, a dropped run is written again."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import aliased

from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.deals import models as deal_models
from guanxi.plugins.sales.models import SalesFollowUpRun


def _run_json(run: SalesFollowUpRun) -> dict[str, Any]:
    return {"plan_id": str(run.plan_id), "period": run.period, "task_id": str(run.task_id), "at": run.at.isoformat()}


async def record_rows(session: TenantSession, merged_id: uuid.UUID) -> dict[str, Any]:
    """What :func:`move_rows` and the deals' move will take from the merged customer (empty: nothing)."""
    out: dict[str, Any] = {}
    runs = (await session.scalars(select(SalesFollowUpRun).where(SalesFollowUpRun.customer_id == merged_id))).all()
    if runs:
        out["followup_runs"] = [_run_json(r) for r in runs]
    deals: dict[str, list[str]] = {}
    for model in deal_models.CUSTOMER_TABLES:
        ids = [str(i) for i in (await session.execute(select(model.id).where(model.customer_id == merged_id))).scalars()]
        if ids:
            deals[model.__tablename__] = ids
    if deals:
        out["deals"] = deals
    return out


async def move_rows(session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> None:
    """Give the survivor the merged customer's follow-up runs (dropping those of a plan and period
    it has its own run of)."""
    own = aliased(SalesFollowUpRun)
    survivor_has = exists().where(
        and_(own.tenant_id == SalesFollowUpRun.tenant_id, own.customer_id == survivor_id),
        own.plan_id == SalesFollowUpRun.plan_id,
        own.period == SalesFollowUpRun.period,
    )
    await session.execute(
        delete(SalesFollowUpRun).where(SalesFollowUpRun.customer_id == merged_id, survivor_has).execution_options(synchronize_session=False)
    )
    await session.execute(update(SalesFollowUpRun).where(SalesFollowUpRun.customer_id == merged_id).values(customer_id=survivor_id))


async def restore_rows(session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID, record: dict[str, Any]) -> dict[str, int]:
    """Give the merged customer back its runs and deal rows (only rows still on the survivor move)."""
    runs = 0
    for run in record.get("followup_runs", []):
        plan_id, task_id = uuid.UUID(run["plan_id"]), uuid.UUID(run["task_id"])
        moved: Any = await session.execute(
            update(SalesFollowUpRun)
            .where(
                SalesFollowUpRun.plan_id == plan_id,
                SalesFollowUpRun.period == run["period"],
                SalesFollowUpRun.customer_id == survivor_id,
                SalesFollowUpRun.task_id == task_id,
            )
            .values(customer_id=merged_id)
        )
        if not moved.rowcount:  # dropped at the merge (the survivor had its own run): written again
            session.add(
                SalesFollowUpRun(
                    plan_id=plan_id, customer_id=merged_id, period=run["period"], task_id=task_id, at=dt.datetime.fromisoformat(run["at"])
                )
            )
        runs += 1
    await session.flush()
    deals = 0
    by_table = {m.__tablename__: m for m in deal_models.CUSTOMER_TABLES}
    for table, ids in (record.get("deals") or {}).items():
        model = by_table[table]
        result: Any = await session.execute(
            update(model).where(model.id.in_([uuid.UUID(i) for i in ids]), model.customer_id == survivor_id).values(customer_id=merged_id)
        )
        deals += int(result.rowcount or 0)
    return {"followup_runs": runs, "deal_rows": deals}
