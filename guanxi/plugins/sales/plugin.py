"""The sales plugin's hooks: its tables' migrations, GraphQL, permissions, the return-rule job
kind, merges and personal data."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click
from sqlalchemy import delete, select, update

from guanxi import PoolReturnRule, RequestContext, Runtime, Tx, hookimpl
from guanxi.core.base.context import Actor
from guanxi.core.domain.access import ROLES, Permission
from guanxi.core.domain.contracts import JobKind, JobRun, StaffHandover
from guanxi.core.domain.events import CustomersMerged
from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.plugins.sales import followups, merge_rows, pool
from guanxi.plugins.sales.deals import contracts
from guanxi.plugins.sales.deals import models as deal_models
from guanxi.plugins.sales.deals.models import SalesDeal, SalesPayment
from guanxi.plugins.sales.models import SalesPoolLead, SalesPoolMove

MERGE_ACTOR = Actor(kind="plugin", name="sales")


@hookimpl
def guanxi_migrations() -> Path:
    return Path(__file__).parent / "migrations"


@hookimpl
def guanxi_cli(group: click.Group) -> None:
    from guanxi.plugins.sales.cli import sales

    group.add_command(sales)


@hookimpl
def guanxi_routes(runtime: Runtime) -> list[Any]:
    from guanxi.plugins.sales.routes import routes

    return routes(runtime)


@hookimpl
def guanxi_graphql(runtime: Runtime) -> GraphQLContribution:
    from strawberry.tools import merge_types

    from guanxi.plugins.sales import followup_graphql as followups
    from guanxi.plugins.sales import grading_graphql as grading
    from guanxi.plugins.sales import graphql as g
    from guanxi.plugins.sales.deals import graphql as deals
    from guanxi.plugins.sales.deals import stages_graphql as deal_stages
    from guanxi.plugins.sales.reports import graphql as reports

    return GraphQLContribution(
        query=merge_types(
            "SalesQuery", (g.SalesQuery, deals.DealsQuery, reports.ReportsQuery, followups.FollowUpQuery, grading.GradingQuery)
        ),
        mutation=merge_types(
            "SalesMutation",
            (g.SalesMutation, deals.DealsMutation, deal_stages.DealStagesMutation, followups.FollowUpMutation, grading.GradingMutation),
        ),
        extend={"Customer": g.CustomerSales},
    )


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return [
        Permission(
            name="sales.pools.manage",
            roles=("admin", "manager"),
            fields=("Mutation.createLeadPool", "Mutation.updateLeadPool"),
            description="Create and change lead pools (公海)",
        ),
        Permission(
            name="sales.pools.use",
            roles=("admin", "manager", "sales"),
            fields=(
                "Query.leadPools",
                "Query.poolLeads",
                "Query.poolReturnRules",
                "Mutation.claimLead",
                "Mutation.releaseLead",
                "Mutation.putLeadInPool",
            ),
            description="See a pool's open leads (masked), claim them, release held leads, put one's customers in a pool",
        ),
        Permission(
            name="sales.duplicates",
            roles=("admin", "manager", "sales", "service"),
            fields=("Query.duplicateSuggestions",),
            description="See which customers may be duplicates of one (among those the caller may see)",
        ),
        *DEAL_PERMISSIONS,
        Permission(
            name="sales.handover",
            roles=("admin", "manager"),
            fields=("Mutation.handOverCustomers",),
            description="Hand a salesperson's customers, tasks and pool holds to another user or back to a pool",
        ),
        Permission(
            name="sales.followups.manage",
            roles=("admin", "manager"),
            fields=(
                "Mutation.createFollowUpPlan",
                "Mutation.updateFollowUpPlan",
                "Mutation.pauseFollowUpPlan",
                "Mutation.resumeFollowUpPlan",
            ),
            description="Create, change, pause and resume recurring follow-up plans "
            "(a task for each matching customer's owner every N days)",
        ),
        Permission(
            name="sales.followups.read",
            roles=("admin", "manager", "sales"),
            fields=("Query.followUpPlans",),
            description="See the tenant's recurring follow-up plans",
        ),
        Permission(
            name="sales.grading.manage",
            roles=("admin", "manager"),
            fields=("Mutation.setGradeRule", "Mutation.clearGradeRule"),
            description="Set or clear the rule deriving the grade field from the score",
        ),
        Permission(
            name="sales.grading.read",
            roles=("admin", "manager", "sales", "marketing"),
            fields=("Query.gradeRule",),
            description="See the rule deriving the grade field from the score",
        ),
        Permission(
            name="sales.pools.history",
            roles=ROLES,
            fields=("Customer.poolHistory",),
            description="Read a customer's moves in and out of lead pools",
        ),
    ]


DEAL_PERMISSIONS = (
    Permission(
        name="sales.deals.configure",
        roles=("admin", "manager"),
        fields=(
            "Mutation.createDealPipeline",
            "Mutation.renameDealPipeline",
            "Mutation.addDealStage",
            "Mutation.updateDealStage",
            "Mutation.reorderDealStages",
            "Mutation.archiveDealStage",
            "Mutation.deleteDealStage",
            "Mutation.createProduct",
            "Mutation.archiveProduct",
        ),
        description="Create and edit deal pipelines (stages with probabilities: add, rename, reorder, archive, delete) and the "
        "product catalogue (add, archive)",
    ),
    Permission(
        name="sales.deals.use",
        roles=("admin", "manager", "sales"),
        fields=(
            "Query.dealPipelines",
            "Query.products",
            "Query.deals",
            "Query.pipelineValue",
            "Query.contracts",
            "Mutation.createDeal",
            "Mutation.moveDeal",
            "Mutation.createContract",
            "Mutation.recordPayment",
        ),
        description="See and work the deals, contracts and payments of one's customers (a manager: the team's)",
    ),
    Permission(
        name="sales.reports",
        roles=("admin", "manager", "sales"),
        fields=(
            "Query.salesFunnel",
            "Query.salesPerformance",
            "Query.repeatPurchase",
            "Query.cohortRetention",
            "Query.wonRevenueAttribution",
        ),
        description="Run the sales reports (a salesperson over their own customers, a manager over the team's)",
    ),
)


async def _run_overdue(job: JobRun) -> None:
    await contracts.notify_overdue(job.runtime, job.tenant_id, job.slot_at)


async def _run_followups(job: JobRun) -> None:
    await followups.run_plans(job.runtime, job.tenant_id, job.slot_at)


async def _run_return_rules(job: JobRun) -> None:
    await pool.run_return_rules(job.runtime, job.tenant_id, job.slot_at, job.idempotency_key)


@hookimpl
def guanxi_job_kinds(runtime: Runtime) -> list[JobKind]:
    return [
        JobKind(
            name=pool.RETURN_JOB,
            run=_run_return_rules,
            description="Return held leads to their pool by its return rules (no follow-up, contributed rules); warn holders a day before",
        ),
        JobKind(
            name=followups.PLAN_JOB,
            run=_run_followups,
            description="Create the recurring follow-up plans' tasks of the period (once per plan, customer and period)",
        ),
        JobKind(
            name=contracts.OVERDUE_JOB,
            run=_run_overdue,
            description="Tell contract owners about instalments that fell due unpaid (once per instalment)",
        ),
    ]


@hookimpl
async def guanxi_customers_scored(tx: Tx, totals: dict[uuid.UUID, float]) -> None:
    """The tenant's grade rule sets the grade field from the scores just computed (set-based)."""
    from guanxi.plugins.sales.grading import apply_rule

    await apply_rule(tx, totals)


@hookimpl
def guanxi_pool_return_rules(runtime: Runtime) -> list[PoolReturnRule]:
    """The deals' return rules, offered to the lead pool like any other plugin's: "N days after
    the last contract ended without a new one" and "no won deal N months after the first inquiry"."""
    from guanxi.plugins.sales.deals.pool_rule import RULES

    return list(RULES)


@hookimpl
async def guanxi_staff_handover(tx: Tx, handover: StaffHandover) -> dict[str, int] | None:
    """Open deals join the staff handover (the sales plugin's own customers, tasks and pool holds
    move in :mod:`guanxi.plugins.sales.handover`)."""
    from guanxi.plugins.sales.deals.handover import hand_over_deals

    return await hand_over_deals(tx, handover)


@hookimpl
async def guanxi_customers_merged(runtime: Runtime, event: CustomersMerged) -> None:
    """The survivor takes the merged customer's pool history, deals, contracts and payments and follow-up runs; the merged
    tombstone leaves its pool (the survivor keeps its own place, or takes the merged one's when it had none)."""
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=MERGE_ACTOR)) as tx:
        s = tx.session
        await s.execute(update(SalesPoolMove).where(SalesPoolMove.customer_id == event.merged_id).values(customer_id=event.survivor_id))
        for model in deal_models.CUSTOMER_TABLES:  # the survivor takes the deals, contracts and payments
            await s.execute(update(model).where(model.customer_id == event.merged_id).values(customer_id=event.survivor_id))
        has_place = (await s.execute(select(SalesPoolLead.customer_id).where(SalesPoolLead.customer_id == event.survivor_id))).first()
        if has_place is None:
            await s.execute(update(SalesPoolLead).where(SalesPoolLead.customer_id == event.merged_id).values(customer_id=event.survivor_id))
        else:
            await s.execute(delete(SalesPoolLead).where(SalesPoolLead.customer_id == event.merged_id))
        await merge_rows.move_rows(s, event.survivor_id, event.merged_id)  # the follow-up plans' runs


def _lead_json(lead: SalesPoolLead) -> dict[str, Any]:
    def at(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "pool_id": str(lead.pool_id),
        "status": lead.status,
        "holder_id": str(lead.holder_id) if lead.holder_id else None,
        "entered_at": at(lead.entered_at),
        "held_at": at(lead.held_at),
        "warned_at": at(lead.warned_at),
    }


@hookimpl
async def guanxi_merge_record(session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID) -> dict[str, Any] | None:
    """What the merge hook above will move or drop: the merged customer's pool moves and place,
    its follow-up runs and deal rows (:mod:`merge_rows`)."""
    rows = await merge_rows.record_rows(session, merged_id)
    moves = [str(i) for i in (await session.execute(select(SalesPoolMove.id).where(SalesPoolMove.customer_id == merged_id))).scalars()]
    lead = (await session.execute(select(SalesPoolLead).where(SalesPoolLead.customer_id == merged_id))).scalar_one_or_none()
    if not moves and lead is None:
        return rows or None
    had_place = (await session.execute(select(SalesPoolLead.customer_id).where(SalesPoolLead.customer_id == survivor_id))).first()
    return {"moves": moves, "lead": _lead_json(lead) if lead else None, "survivor_had_place": had_place is not None, **rows}


@hookimpl
async def guanxi_merge_undone(
    session: TenantSession, survivor_id: uuid.UUID, merged_id: uuid.UUID, record: dict[str, Any]
) -> dict[str, int]:
    """Give the merged customer back its pool moves and its place in a pool, its follow-up runs and deal rows."""
    import datetime as dt

    ids = [uuid.UUID(i) for i in record.get("moves", [])]
    result: Any = await session.execute(
        update(SalesPoolMove).where(SalesPoolMove.id.in_(ids), SalesPoolMove.customer_id == survivor_id).values(customer_id=merged_id)
    )
    lead = record.get("lead")
    if lead is not None:
        if not record.get("survivor_had_place"):  # the survivor took the merged one's place: give it back
            await session.execute(delete(SalesPoolLead).where(SalesPoolLead.customer_id == survivor_id))

        def at(v: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(v) if v else None

        session.add(
            SalesPoolLead(
                customer_id=merged_id,
                pool_id=uuid.UUID(lead["pool_id"]),
                status=lead["status"],
                holder_id=uuid.UUID(lead["holder_id"]) if lead["holder_id"] else None,
                entered_at=at(lead["entered_at"]),
                held_at=at(lead["held_at"]),
                warned_at=at(lead["warned_at"]),
            )
        )
        await session.flush()
    rows = await merge_rows.restore_rows(session, survivor_id, merged_id, record)
    return {"pool_moves": int(result.rowcount or 0), "pool_places": int(lead is not None), **rows}


@hookimpl
async def guanxi_export_customer_data(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, Any] | None:
    moves = (await pool.moves_of(session, [customer_id])).get(customer_id, [])
    deals = (await session.scalars(select(SalesDeal).where(SalesDeal.customer_id == customer_id).order_by(SalesDeal.created_at))).all()
    paid = (
        await session.scalars(select(SalesPayment).where(SalesPayment.customer_id == customer_id).order_by(SalesPayment.received_at))
    ).all()
    if not (moves or deals or paid):
        return None
    return {
        "pool_moves": [{"pool": key, "action": m.action, "reason": m.reason, "at": m.at.isoformat()} for m, key in moves],
        "deals": [
            {"title": d.title, "amount": str(d.amount), "currency": d.currency, "status": d.status, "lost_reason": d.lost_reason}
            for d in deals
        ],
        "payments": [{"amount": str(p.amount), "received_at": p.received_at.isoformat(), "note": p.note} for p in paid],
    }


@hookimpl
async def guanxi_erase_customer(runtime: Runtime, session: TenantSession, customer_id: uuid.UUID) -> dict[str, int] | None:
    result = await session.execute(
        update(SalesPoolMove).where(SalesPoolMove.customer_id == customer_id, SalesPoolMove.reason.is_not(None)).values(reason=None)
    )
    reasons = await session.execute(
        update(SalesDeal).where(SalesDeal.customer_id == customer_id, SalesDeal.lost_reason.is_not(None)).values(lost_reason=None)
    )
    notes = await session.execute(
        update(SalesPayment).where(SalesPayment.customer_id == customer_id, SalesPayment.note.is_not(None)).values(note=None)
    )
    return {
        "pool_moves": int(result.rowcount or 0),  # type: ignore[attr-defined]
        "deal_reasons": int(reasons.rowcount or 0),  # type: ignore[attr-defined]
        "payment_notes": int(notes.rowcount or 0),  # type: ignore[attr-defined]
    }
