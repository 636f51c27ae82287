"""Journeys in GraphQL: save a definition (JSON or TOML; a new version each change), activate,
pause or archive, read journeys with their figures, dry-run one, and the secret their webhooks
are signed with."""

from __future__ import annotations

import datetime as dt
import enum

import msgspec
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.automation.journeys import dryrun, report, service
from guanxi.plugins.automation.journeys.definition import schema_document
from guanxi.plugins.automation.journeys.models import AutomationJourney


@strawberry.enum(description="Where a journey stands: only ACTIVE journeys let customers in.")
class JourneyStatus(enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


@strawberry.enum(description="The text format of a journey definition.")
class JourneyFormat(enum.Enum):
    JSON = "json"
    TOML = "toml"


@strawberry.enum(description="What a dry run says a step would do for a customer.")
class DryRunOutcome(enum.Enum):
    WOULD_SEND = "would_send"
    WOULD_SKIP = "would_skip"
    WOULD_WAIT = "would_wait"
    WOULD_BRANCH_YES = "would_branch_yes"
    WOULD_BRANCH_NO = "would_branch_no"
    WOULD_DO = "would_do"


@strawberry.type(description="How many times a step ended one way (sent, skipped, yes, no, waited, event, timeout, done, failed).")
class OutcomeCount:
    outcome: str
    count: int


@strawberry.type(description="A step's figures: runs at it now, and how it ended so far.")
class JourneyStepFigures:
    step: str
    step_type: str
    current: int = strawberry.field(description="runs at this step now (waiting there or being advanced)")
    outcomes: list[OutcomeCount]


@strawberry.type(description="Journey messages on one channel: sent through the outbox, or skipped (consent, policy, cap).")
class JourneyChannelFigures:
    channel: str
    sent: int
    skipped: int


@strawberry.type(description="One day (UTC) of a journey: customers who entered, steps taken, conversions.")
class JourneyDayFigures:
    day: dt.date
    entered: int
    steps: int
    converted: int


@strawberry.type(description="A journey's figures (all versions, or one).")
class JourneyReport:
    entered: int = strawberry.field(description="runs started (customers who entered)")
    waiting: int = strawberry.field(description="runs in flight")
    converted: int = strawberry.field(description="runs ended by the goal")
    exited: int = strawberry.field(description="runs that left early (archived, moved to a version without their step)")
    done: int = strawberry.field(description="runs that reached the end")
    failed: int
    steps: list[JourneyStepFigures]
    channels: list[JourneyChannelFigures]
    days: list[JourneyDayFigures]

    @classmethod
    def of(cls, r: report.JourneyReport) -> JourneyReport:
        return cls(
            entered=r.entered,
            waiting=r.waiting,
            converted=r.converted,
            exited=r.exited,
            done=r.done,
            failed=r.failed,
            steps=[
                JourneyStepFigures(
                    step=s.step,
                    step_type=s.step_type,
                    current=s.current,
                    outcomes=[OutcomeCount(outcome=k, count=v) for k, v in sorted(s.outcomes.items())],
                )
                for s in r.steps
            ],
            channels=[JourneyChannelFigures(channel=c.channel, sent=c.sent, skipped=c.skipped) for c in r.channels],
            days=[JourneyDayFigures(day=d.day, entered=d.entered, steps=d.steps, converted=d.converted) for d in r.days],
        )


@strawberry.type(description="A marketing-automation journey (旅程): a trigger, steps and a goal, versioned.")
class Journey:
    id: strawberry.ID
    key: str
    name: str
    status: JourneyStatus
    version: int = strawberry.field(description="the current version (new customers enter it)")
    trigger_type: str
    created_at: dt.datetime
    updated_at: dt.datetime
    _row: strawberry.Private[AutomationJourney]

    @classmethod
    def from_model(cls, j: AutomationJourney) -> Journey:
        return cls(
            id=strawberry.ID(to_global_id("Journey", j.id)),
            key=j.key,
            name=j.name,
            status=JourneyStatus(j.status),
            version=j.version,
            trigger_type=j.trigger_type,
            created_at=j.created_at,
            updated_at=j.updated_at,
            _row=j,
        )

    @strawberry.field(description="The definition of a version (default: the current one), as saved (see the published JSON Schema).")
    async def definition(self, info: Info, version: int | None = None) -> JSON:
        async with info.context.loaders.lock:
            found = await service.definition_of(info.context.session, self._row.id, version or self._row.version)
        return JSON(msgspec.to_builtins(found))

    @strawberry.field(
        description="Entered, waiting, converted, exited, per step, by channel and by day in the tenant's time zone (all versions, or one)."
    )
    async def report(self, info: Info, version: int | None = None) -> JourneyReport:
        async with info.context.loaders.lock:
            current = await service.definition_of(info.context.session, self._row.id, self._row.version)
            types = {s.id: str(type(s).__struct_config__.tag) for s in current.steps}
            zone = (await info.context.rt.tenant_plugins(info.context.tenant_id)).time_zone
            found = await report.journey_report(info.context.session, self._row.id, types, version=version, zone=zone)
        return JourneyReport.of(found)


@strawberry.type
class DryRunStep:
    step: str
    step_type: str
    outcome: DryRunOutcome
    detail: str | None = strawberry.field(description="the text that would be sent, the reason of a skip, how long a wait is")
    channel: str | None


@strawberry.type(description="What the journey would do for one customer now.")
class JourneyDryRun:
    customer_id: strawberry.ID
    steps: list[DryRunStep]


@strawberry.type
class JourneyPayload:
    journey: Journey | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class JourneyQuery:
    @strawberry.field(description="The tenant's journeys (at most 500), by key.")
    async def journeys(self, info: Info, status: JourneyStatus | None = None) -> list[Journey]:
        from sqlalchemy import select

        stmt = select(AutomationJourney).order_by(AutomationJourney.key).limit(500)
        if status is not None:
            stmt = stmt.where(AutomationJourney.status == status.value)
        async with info.context.loaders.lock:
            rows = list((await info.context.session.execute(stmt)).scalars())
        return [Journey.from_model(j) for j in rows]

    @strawberry.field(description="A journey by key (null when the tenant has none of that key).")
    async def journey(self, info: Info, key: str) -> Journey | None:
        from guanxi import NotFoundError

        try:
            async with info.context.loaders.lock:
                return Journey.from_model(await service.get_journey(info.context.session, key))
        except NotFoundError:
            return None

    @strawberry.field(
        description="Who would get what: each customer's path through the current version now, writing nothing "
        "(customerIds, else the first customers of the trigger's audience)."
    )
    async def journey_dry_run(
        self, info: Info, key: str, customer_ids: list[strawberry.ID] | None = None, first: int = 20
    ) -> list[JourneyDryRun]:
        from guanxi.graphql.pagination import check_page_size

        settings = info.context.rt.settings.graphql
        size = check_page_size(first, settings.default_page_size, settings.max_page_size)
        ids = [from_global_id(c, "Customer", field="customerIds") for c in customer_ids] if customer_ids is not None else None
        async with info.context.loaders.lock:
            session = info.context.session
            row = await service.get_journey(session, key)
            definition = await service.definition_of(session, row.id, row.version)
            found = await dryrun.dry_run(info.context.rt, session, definition, ids[:size] if ids is not None else None, first=size)
        return [
            JourneyDryRun(
                customer_id=strawberry.ID(to_global_id("Customer", d.customer_id)),
                steps=[
                    DryRunStep(step=s.step, step_type=s.step_type, outcome=DryRunOutcome(s.outcome), detail=s.detail, channel=s.channel)
                    for s in d.steps
                ],
            )
            for d in found
        ]

    @strawberry.field(description="The published JSON Schema of journey definitions.")
    def journey_schema(self) -> JSON:
        return JSON(schema_document())

    @strawberry.field(
        description="The secret journey webhooks are signed with (X-Guanxi-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "
        "'<t>.<body>'>); derived from the server secret and the tenant."
    )
    def journey_webhook_secret(self, info: Info) -> str:
        from guanxi.plugins.automation.journeys.secrets import webhook_secret

        return webhook_secret(info.context.rt, info.context.tenant_id)


@strawberry.type
class JourneyMutation:
    @strawberry.mutation(
        description="Save a journey definition (JSON or TOML, see journeySchema): a new journey (DRAFT, version 1) or a new version "
        "of the journey with its key. BAD_JOURNEY with the path of the bad step when it is invalid. Runs in flight stay on their "
        "version unless migrateRuns (then they continue at the step of the same id, or exit)."
    )
    async def save_journey(
        self, info: Info, definition: str, format: JourneyFormat = JourneyFormat.JSON, migrate_runs: bool = False
    ) -> JourneyPayload:
        async def run() -> JourneyPayload:
            async with info.context.transaction() as tx:
                row = await service.save_journey(tx, definition, fmt=format.value, migrate_runs=migrate_runs)
            return JourneyPayload(journey=Journey.from_model(row))

        return await as_payload(run, JourneyPayload)

    @strawberry.mutation(description="Activate (customers enter), pause (nobody enters, runs wait) or archive (runs exit) a journey.")
    async def set_journey_status(self, info: Info, key: str, status: JourneyStatus) -> JourneyPayload:
        async def run() -> JourneyPayload:
            async with info.context.transaction() as tx:
                row = await service.set_status(tx, key, status.value)
            return JourneyPayload(journey=Journey.from_model(row))

        return await as_payload(run, JourneyPayload)
