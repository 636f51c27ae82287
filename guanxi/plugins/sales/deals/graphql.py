"""GraphQL of deals and receivables: deal pipelines, products, deals, the weighted pipeline
value, contracts with their payment plans, and payments."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import strawberry
from strawberry.types import Info

from guanxi.core.storage.tenancy import TenantSession
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.pagination import check_page_size
from guanxi.graphql.types import Customer
from guanxi.plugins.sales.deals import contracts as csvc
from guanxi.plugins.sales.deals import service as svc
from guanxi.plugins.sales.deals.models import SalesContract, SalesDeal, SalesDealPipeline, SalesDealStage, SalesProduct


@strawberry.enum(description="Where a deal stands: OPEN, or closed as WON or LOST (its stage's category).")
class DealStatus(enum.Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@strawberry.enum(
    description="An instalment's state: DUE (nothing paid yet), PARTIAL, PAID, OVERPAID, or OVERDUE (unpaid past its due date)."
)
class InstalmentStatus(enum.Enum):
    DUE = "due"
    PARTIAL = "partial"
    PAID = "paid"
    OVERPAID = "overpaid"
    OVERDUE = "overdue"


@strawberry.type(description="A stage of a deal pipeline, with the probability that weighs its open deals.")
class DealStage:
    key: str
    name: str
    category: DealStatus = strawberry.field(description="OPEN, or WON / LOST: reaching it closes the deal")
    probability: int = strawberry.field(description="0 to 100 (percent)")
    archived: bool = strawberry.field(description="an archived stage takes no deal; the deals and history that name it keep it")

    @classmethod
    def from_model(cls, s: SalesDealStage) -> DealStage:
        return cls(key=s.key, name=s.name, category=DealStatus(s.category), probability=s.probability, archived=s.archived_at is not None)


@strawberry.type(description="A deal pipeline (new business, renewal…): the stages deals move through.")
class DealPipeline:
    key: str
    name: str
    stages: list[DealStage] = strawberry.field(description="the live stages, in order")
    archived_stages: list[DealStage] = strawberry.field(description="stages archived (history still names them)")


@strawberry.type(description="A product of the catalogue, with its list price.")
class Product:
    id: strawberry.ID
    sku: str
    name: str
    price: float
    currency: str
    archived: bool = strawberry.field(description="an archived product cannot be added to new deals; deals that have it keep it")

    @classmethod
    def from_model(cls, p: SalesProduct) -> Product:
        return cls(
            id=strawberry.ID(to_global_id("Product", p.id)),
            sku=p.sku,
            name=p.name,
            price=float(p.price),
            currency=p.currency,
            archived=p.archived_at is not None,
        )


@strawberry.type(description="A product on a deal.")
class DealLine:
    product: Product
    quantity: int
    unit_price: float
    total: float


@strawberry.type(description="A customer's deal (opportunity).")
class Deal:
    id: strawberry.ID
    title: str
    amount: float
    currency: str
    pipeline: str = strawberry.field(description="the deal pipeline's key")
    stage: DealStage
    status: DealStatus
    weighted_amount: float = strawberry.field(description="amount × the stage's probability while open; the amount once won; 0 once lost")
    owner_id: strawberry.ID | None
    expected_close: dt.date | None
    closed_at: dt.datetime | None
    lost_reason: str | None
    lines: list[DealLine]
    created_at: dt.datetime
    customer_uuid: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The customer of the deal.")
    async def customer(self, info: Info) -> Customer | None:
        row = await info.context.loaders.customers.load(self.customer_uuid)
        return None if row is None else Customer.from_row(row, info.context)


async def deal_views(session: TenantSession, deals: list[SalesDeal]) -> list[Deal]:
    """Deals with their stage, pipeline key and lines: three statements for any number of deals."""
    if not deals:
        return []
    pipelines = {p.id: p.key for p in await svc.list_pipelines(session)}
    stages = {s.id: s for group in (await svc.stages_of(session, list(pipelines), archived=True)).values() for s in group}
    lines = await svc.lines_of(session, [d.id for d in deals])
    out = []
    for d in deals:
        stage = stages[d.stage_id]
        weighted = d.amount if d.status == "won" else Decimal(0) if d.status == "lost" else d.amount * stage.probability / 100
        out.append(
            Deal(
                id=strawberry.ID(to_global_id("Deal", d.id)),
                title=d.title,
                amount=float(d.amount),
                currency=d.currency,
                pipeline=pipelines[d.pipeline_id],
                stage=DealStage.from_model(stage),
                status=DealStatus(d.status),
                weighted_amount=round(float(weighted), 2),
                owner_id=strawberry.ID(to_global_id("User", d.owner_id)) if d.owner_id else None,
                expected_close=d.expected_close,
                closed_at=d.closed_at,
                lost_reason=d.lost_reason,
                lines=[
                    DealLine(
                        product=Product.from_model(p),
                        quantity=line.quantity,
                        unit_price=float(line.unit_price),
                        total=float(line.unit_price * line.quantity),
                    )
                    for line, p in lines[d.id]
                ],
                created_at=d.created_at,
                customer_uuid=d.customer_id,
            )
        )
    return out


async def pipeline_views(session: TenantSession, pipelines: list[SalesDealPipeline]) -> list[DealPipeline]:
    stages = await svc.stages_of(session, [p.id for p in pipelines], archived=True)
    return [
        DealPipeline(
            key=p.key,
            name=p.name,
            stages=[DealStage.from_model(s) for s in stages[p.id] if s.archived_at is None],
            archived_stages=[DealStage.from_model(s) for s in stages[p.id] if s.archived_at is not None],
        )
        for p in pipelines
    ]


@strawberry.type(description="Open deals of one stage and their value.")
class StageValue:
    key: str
    name: str
    probability: int
    deals: int
    amount: float
    weighted: float = strawberry.field(description="amount × probability")


@strawberry.type(
    description="The weighted value of a deal pipeline's open deals, in the tenant's currency (deals in other currencies are left out)."
)
class PipelineValue:
    pipeline: str
    currency: str
    stages: list[StageValue]
    deals: int
    amount: float
    weighted: float


@strawberry.type(description="One instalment of a contract's payment plan.")
class Instalment:
    id: strawberry.ID
    seq: int
    amount: float
    due_on: dt.date
    paid: float = strawberry.field(description="net of the payments against it (refunds subtract)")
    outstanding: float = strawberry.field(description="amount − paid, never below 0")
    status: InstalmentStatus


@strawberry.type(description="Money received against an instalment, or refunded (negative).")
class Payment:
    id: strawberry.ID
    instalment_seq: int
    amount: float
    received_at: dt.datetime
    note: str | None


@strawberry.type(description="A contract made from a won deal, with its payment plan and payments (合同回款).")
class Contract:
    id: strawberry.ID
    number: str
    deal_id: strawberry.ID
    owner_id: strawberry.ID | None
    amount: float
    currency: str
    signed_on: dt.date
    starts_on: dt.date
    ends_on: dt.date
    received: float = strawberry.field(description="net payments so far")
    outstanding: float = strawberry.field(description="what is still to be paid on its instalments")
    instalments: list[Instalment]
    payments: list[Payment]


async def contract_views(session: TenantSession, contracts: list[SalesContract], now: dt.datetime) -> list[Contract]:
    """Contracts with their instalments and payments: three statements for any number."""
    if not contracts:
        return []
    ids = [c.id for c in contracts]
    plans, paid = await csvc.instalments_of(session, ids), await csvc.payments_of(session, ids)
    today = await csvc.today_of(session, now)
    out = []
    for c in contracts:
        seqs = {i.id: i.seq for i in plans[c.id]}
        out.append(
            Contract(
                id=strawberry.ID(to_global_id("Contract", c.id)),
                number=c.number,
                deal_id=strawberry.ID(to_global_id("Deal", c.deal_id)),
                owner_id=strawberry.ID(to_global_id("User", c.owner_id)) if c.owner_id else None,
                amount=float(c.amount),
                currency=c.currency,
                signed_on=c.signed_on,
                starts_on=c.starts_on,
                ends_on=c.ends_on,
                received=float(sum((i.paid for i in plans[c.id]), Decimal(0))),
                outstanding=float(sum((max(i.amount - i.paid, Decimal(0)) for i in plans[c.id]), Decimal(0))),
                instalments=[
                    Instalment(
                        id=strawberry.ID(to_global_id("Instalment", i.id)),
                        seq=i.seq,
                        amount=float(i.amount),
                        due_on=i.due_on,
                        paid=float(i.paid),
                        outstanding=float(max(i.amount - i.paid, Decimal(0))),
                        status=InstalmentStatus(csvc.instalment_status(i, today)),
                    )
                    for i in plans[c.id]
                ],
                payments=[
                    Payment(
                        id=strawberry.ID(to_global_id("Payment", p.id)),
                        instalment_seq=seqs[p.instalment_id],
                        amount=float(p.amount),
                        received_at=p.received_at,
                        note=p.note,
                    )
                    for p in paid[c.id]
                ],
            )
        )
    return out


@strawberry.input
class DealStageInput:
    key: str
    name: str
    probability: int
    category: DealStatus = DealStatus.OPEN


@strawberry.input
class CreateDealPipelineInput:
    key: str
    name: str
    stages: list[DealStageInput]


@strawberry.input
class CreateProductInput:
    sku: str
    name: str
    price: float
    currency: str | None = strawberry.field(default=None, description="default: the tenant's currency")


@strawberry.input
class DealLineInput:
    product_id: strawberry.ID
    quantity: int = 1
    unit_price: float | None = strawberry.field(default=None, description="default: the product's list price")


@strawberry.input
class CreateDealInput:
    customer_id: strawberry.ID
    title: str
    amount: float | None = strawberry.field(default=None, description="default: the sum of the lines")
    currency: str | None = strawberry.field(default=None, description="default: the tenant's currency")
    pipeline: str | None = strawberry.field(
        default=None, description="a deal pipeline's key; default: the first (made with default stages if none)"
    )
    stage: str | None = strawberry.field(default=None, description="default: the pipeline's first open stage")
    owner_id: strawberry.ID | None = strawberry.field(default=None, description="default: the caller, else the customer's owner")
    expected_close: dt.date | None = None
    lines: list[DealLineInput] = strawberry.field(default_factory=list)


@strawberry.input
class InstalmentInput:
    amount: float
    due_on: dt.date


@strawberry.input
class CreateContractInput:
    deal_id: strawberry.ID
    number: str
    signed_on: dt.date
    starts_on: dt.date
    ends_on: dt.date
    instalments: list[InstalmentInput]


@strawberry.type
class DealPipelinePayload:
    pipeline: DealPipeline | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProductPayload:
    product: Product | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DealPayload:
    deal: Deal | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ContractPayload:
    contract: Contract | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _uuid(value: strawberry.ID, kind: str, field: str) -> uuid.UUID:
    return from_global_id(value, kind, field=field)


def _size(info: Info, first: int) -> int:
    settings = info.context.rt.settings.graphql
    return check_page_size(first, settings.default_page_size, settings.max_page_size)


@strawberry.type
class DealsQuery:
    @strawberry.field(description="The tenant's deal pipelines and their stages.")
    async def deal_pipelines(self, info: Info) -> list[DealPipeline]:
        async with info.context.loaders.lock:
            session = info.context.session
            return await pipeline_views(session, await svc.list_pipelines(session))

    @strawberry.field(description="The product catalogue (archived products left out unless includeArchived).")
    async def products(self, info: Info, include_archived: bool = False) -> list[Product]:
        async with info.context.loaders.lock:
            return [Product.from_model(p) for p in await svc.list_products(info.context.session, include_archived=include_archived)]

    @strawberry.field(description="Deals the caller may see (of their customers), newest first.")
    async def deals(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        status: DealStatus | None = None,
        pipeline: str | None = None,
        first: int = 50,
    ) -> list[Deal]:
        size = _size(info, first)
        cid = _uuid(customer_id, "Customer", "customerId") if customer_id else None
        async with info.context.loaders.lock:
            session = info.context.session
            pid = None
            if pipeline is not None:
                found = [p.id for p in await svc.list_pipelines(session) if p.key == pipeline]
                if not found:
                    return []
                pid = found[0]
            rows = await svc.list_deals(session, customer_id=cid, status=status.value if status else None, pipeline_id=pid, first=size)
            return await deal_views(session, rows)

    @strawberry.field(
        description="The weighted value of a deal pipeline's open deals (default: the first pipeline), per stage, computed in SQL."
    )
    async def pipeline_value(self, info: Info, pipeline: str | None = None) -> PipelineValue | None:
        async with info.context.loaders.lock:
            session = info.context.session
            pipelines = await svc.list_pipelines(session)
            found = [p for p in pipelines if pipeline is None or p.key == pipeline][:1]
            if not found:
                return None
            currency = await svc.tenant_currency(session)
            rows = await svc.pipeline_value(session, found[0].id, currency)
        stages = [
            StageValue(key=k, name=n, probability=p, deals=int(c), amount=round(float(a), 2), weighted=round(float(w), 2))
            for k, n, p, c, a, w in rows
        ]
        return PipelineValue(
            pipeline=found[0].key,
            currency=currency,
            stages=stages,
            deals=sum(s.deals for s in stages),
            amount=round(sum(s.amount for s in stages), 2),
            weighted=round(sum(s.weighted for s in stages), 2),
        )

    @strawberry.field(description="Contracts the caller may see (of their customers), newest first, with payment plans and payments.")
    async def contracts(self, info: Info, customer_id: strawberry.ID | None = None, first: int = 50) -> list[Contract]:
        from guanxi.models import utcnow

        size = _size(info, first)
        cid = _uuid(customer_id, "Customer", "customerId") if customer_id else None
        async with info.context.loaders.lock:
            session = info.context.session
            return await contract_views(session, await csvc.list_contracts(session, customer_id=cid, first=size), utcnow())


@strawberry.type
class DealsMutation:
    @strawberry.mutation(description="Create a deal pipeline with its stages (open ones, a won and a lost one), each with a probability.")
    async def create_deal_pipeline(self, info: Info, input: CreateDealPipelineInput) -> DealPipelinePayload:
        async def run() -> DealPipelinePayload:
            stages = [svc.StageInput(key=s.key, name=s.name, probability=s.probability, category=s.category.value) for s in input.stages]
            async with info.context.transaction() as tx:
                created = await svc.create_pipeline(tx, input.key, input.name, stages)
                view = (await pipeline_views(tx.session, [created]))[0]
            return DealPipelinePayload(pipeline=view)

        return await as_payload(run, DealPipelinePayload)

    @strawberry.mutation(description="Add a product to the catalogue.")
    async def create_product(self, info: Info, input: CreateProductInput) -> ProductPayload:
        async def run() -> ProductPayload:
            async with info.context.transaction() as tx:
                created = await svc.create_product(tx, input.sku, input.name, input.price, input.currency)
            return ProductPayload(product=Product.from_model(created))

        return await as_payload(run, ProductPayload)

    @strawberry.mutation(description="Open a deal for a customer the caller may see.")
    async def create_deal(self, info: Info, input: CreateDealInput) -> DealPayload:
        async def run() -> DealPayload:
            data = svc.DealInput(
                customer_id=_uuid(input.customer_id, "Customer", "customerId"),
                title=input.title,
                amount=None if input.amount is None else Decimal(str(input.amount)),
                currency=input.currency,
                pipeline=input.pipeline,
                stage=input.stage,
                owner_id=_uuid(input.owner_id, "User", "ownerId") if input.owner_id else None,
                expected_close=input.expected_close,
                lines=[
                    svc.LineInput(
                        product_id=_uuid(line.product_id, "Product", "lines.productId"),
                        quantity=line.quantity,
                        unit_price=None if line.unit_price is None else Decimal(str(line.unit_price)),
                    )
                    for line in input.lines
                ],
            )
            async with info.context.transaction() as tx:
                deal = await svc.create_deal(tx, data)
                view = (await deal_views(tx.session, [deal]))[0]
            return DealPayload(deal=view)

        return await as_payload(run, DealPayload)

    @strawberry.mutation(
        description="Move a deal to another stage of its pipeline: a won stage wins it, a lost stage loses it (reason required)."
    )
    async def move_deal(self, info: Info, deal_id: strawberry.ID, stage: str, reason: str | None = None) -> DealPayload:
        async def run() -> DealPayload:
            async with info.context.transaction() as tx:
                deal = await svc.move_deal(tx, _uuid(deal_id, "Deal", "dealId"), stage, reason)
                view = (await deal_views(tx.session, [deal]))[0]
            return DealPayload(deal=view)

        return await as_payload(run, DealPayload)

    @strawberry.mutation(description="Make a won deal a contract with its payment plan (instalments with amounts and due dates).")
    async def create_contract(self, info: Info, input: CreateContractInput) -> ContractPayload:
        async def run() -> ContractPayload:
            from guanxi.models import utcnow

            data = csvc.ContractInput(
                deal_id=_uuid(input.deal_id, "Deal", "dealId"),
                number=input.number,
                signed_on=input.signed_on,
                starts_on=input.starts_on,
                ends_on=input.ends_on,
                instalments=[csvc.InstalmentInput(amount=i.amount, due_on=i.due_on) for i in input.instalments],
            )
            async with info.context.transaction() as tx:
                contract = await csvc.create_contract(tx, data)
                view = (await contract_views(tx.session, [contract], utcnow()))[0]
            return ContractPayload(contract=view)

        return await as_payload(run, ContractPayload)

    @strawberry.mutation(
        description="Record money received against an instalment (more than due is an over-payment), or a refund (negative, "
        "at most what was paid). It lands on the timeline as a `payment` interaction that scoring counts."
    )
    async def record_payment(
        self, info: Info, instalment_id: strawberry.ID, amount: float, received_at: dt.datetime | None = None, note: str | None = None
    ) -> ContractPayload:
        async def run() -> ContractPayload:
            from guanxi.models import utcnow

            async with info.context.transaction() as tx:
                payment = await csvc.record_payment(tx, _uuid(instalment_id, "Instalment", "instalmentId"), amount, received_at, note)
                contract = await csvc.get_contract(tx.session, payment.contract_id)
                view = (await contract_views(tx.session, [contract], utcnow()))[0]
            return ContractPayload(contract=view)

        return await as_payload(run, ContractPayload)
