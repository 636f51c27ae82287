"""The plugin's part of the GraphQL schema: ``Customer.douyin``, ``douyinAccounts`` and three
mutations (connect an account, reply to a comment, refresh an account's fan figures)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence

import strawberry
from sqlalchemy import func, select
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from guanxi.core.domain.models import Identity, Interaction
from guanxi.graphql.contrib import GraphQLContribution
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.plugins.douyin import oauth, service
from guanxi.plugins.douyin.callbacks import CHANNEL, LEAD_PHONE_PREFIX
from guanxi.plugins.douyin.models import DouyinAuthorization


@strawberry.enum(description="Whether Guanxi can act for a Douyin business account.")
class DouyinAccountStatus(enum.Enum):
    CONNECTED = strawberry.enum_value("connected", description="authorized; its tokens work")
    DISCONNECTED = strawberry.enum_value(
        "disconnected", description="revoked in Douyin, or its refresh token is used up: authorize it again (`reason` says which)"
    )


@strawberry.type(description="A Douyin business account that authorized an app for this tenant.")
class DouyinAccount:
    open_id: str
    nickname: str | None
    avatar_url: str | None
    status: DouyinAccountStatus
    reason: str | None = strawberry.field(description="Why it is disconnected.")
    app: str | None = strawberry.field(description="The tenant's own app (channel account key); null for the deployment's app.")
    scopes: list[str]
    connected_at: dt.datetime
    total_fans: int | None = strawberry.field(description="Fans on `fansDate`, as Douyin's fans data gave it; null until fetched.")
    new_fans: int | None = strawberry.field(description="New fans on `fansDate`, as Douyin gave it.")
    fans_date: str | None = strawberry.field(description="The day (yyyy-MM-dd) the fan figures describe.")

    @classmethod
    def of(cls, row: DouyinAuthorization) -> DouyinAccount:
        return cls(
            open_id=row.open_id,
            nickname=row.nickname,
            avatar_url=row.avatar_url,
            status=DouyinAccountStatus(row.status),
            reason=row.reason,
            app=row.app_key or None,
            scopes=list(row.scopes or []),
            connected_at=row.connected_at,
            total_fans=row.total_fans,
            new_fans=row.new_fans,
            fans_date=row.fans_date,
        )


@strawberry.type(description="A comment the customer left on one of the business account's videos.")
class DouyinComment:
    interaction_id: strawberry.ID = strawberry.field(description="The comment's interaction (reply with replyDouyinComment).")
    text: str | None
    item_id: str | None
    comment_id: str | None
    at: dt.datetime


@strawberry.type
class DouyinLeadAnswer:
    label: str
    value: str


@strawberry.type(description="The customer as Douyin knows them.")
class CustomerDouyin:
    open_id: str
    nickname: str | None
    avatar_url: str | None
    union_id: str | None
    last_comment: DouyinComment | None
    lead_answers: list[DouyinLeadAnswer] = strawberry.field(description="The answers of their latest lead form (留资).")


async def _load(info: Info, ids: Sequence[uuid.UUID]) -> list[CustomerDouyin | None]:
    """Two queries for every customer on the page: their Douyin identities, and their latest comments."""
    execute = info.context.loaders.execute
    idents = (
        (
            await execute(
                select(Identity).where(Identity.channel == CHANNEL, Identity.customer_id.in_(list(ids))).order_by(Identity.updated_at)
            )
        )
        .scalars()
        .all()
    )
    if not idents:
        return [None for _ in ids]
    latest = (
        select(Interaction.customer_id, func.max(Interaction.occurred_at).label("at"))
        .where(Interaction.channel == CHANNEL, Interaction.kind == "comment", Interaction.customer_id.in_(list(ids)))
        .group_by(Interaction.customer_id)
        .subquery()
    )
    comments = {
        c.customer_id: c
        for c in (
            await execute(
                select(Interaction)
                .join(latest, (Interaction.customer_id == latest.c.customer_id) & (Interaction.occurred_at == latest.c.at))
                .where(Interaction.channel == CHANNEL, Interaction.kind == "comment")
            )
        ).scalars()
    }
    # the most recently updated identity wins, an account (open_id) over a lead's phone contact
    by_customer = {i.customer_id: i for i in sorted(idents, key=lambda i: not i.external_id.startswith(LEAD_PHONE_PREFIX))}
    out: list[CustomerDouyin | None] = []
    for cid in ids:
        ident = by_customer.get(cid)
        if ident is None:
            out.append(None)
            continue
        c = comments.get(cid)
        answers = ident.profile.get("lead_answers") if isinstance(ident.profile.get("lead_answers"), dict) else {}
        out.append(
            CustomerDouyin(
                open_id=ident.external_id,
                nickname=ident.nickname,
                avatar_url=ident.avatar_url,
                union_id=ident.union_id,
                last_comment=DouyinComment(
                    interaction_id=strawberry.ID(to_global_id("Interaction", c.id)),
                    text=c.text,
                    item_id=c.payload.get("item_id") or None,
                    comment_id=c.payload.get("comment_id") or None,
                    at=c.occurred_at,
                )
                if c is not None
                else None,
                lead_answers=[DouyinLeadAnswer(label=str(k), value=str(v)) for k, v in answers.items()],
            )
        )
    return out


@strawberry.type
class CustomerDouyinField:
    @strawberry.field(description="The customer's Douyin account, last comment and lead answers; null when they have none.")
    async def douyin(self, info: Info) -> CustomerDouyin | None:
        state = info.context.state
        loader = state.get("douyin_customers")
        if loader is None:

            async def load(ids: list[uuid.UUID]) -> list[CustomerDouyin | None]:
                return await _load(info, ids)

            loader = state["douyin_customers"] = DataLoader(load_fn=load)
        return await loader.load(self.uuid)  # type: ignore[attr-defined]


@strawberry.type
class DouyinQuery:
    @strawberry.field(description="The Douyin business accounts connected to this tenant, with their state and fan figures.")
    async def douyin_accounts(self, info: Info, status: DouyinAccountStatus | None = None) -> list[DouyinAccount]:
        rows = await service.tenant_accounts(info.context.rt, info.context.ctx.tenant_id, str(status.value) if status else None)
        return [DouyinAccount.of(r) for r in rows]


@strawberry.type
class DouyinAuthorizePayload:
    authorize_url: str | None = strawberry.field(default=None, description="Open it to authorize; Douyin returns to the OAuth callback.")
    state: str | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DouyinCommentReplyPayload:
    comment_id: str | None = strawberry.field(default=None, description="Douyin's id of the reply.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DouyinAccountPayload:
    account: DouyinAccount | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DouyinMutation:
    @strawberry.mutation(description="An authorization URL for a business account to authorize the app (the deployment's by default).")
    async def connect_douyin_account(self, info: Info, app: str | None = None) -> DouyinAuthorizePayload:
        async def run() -> DouyinAuthorizePayload:
            started = await oauth.start(info.context.rt, info.context.ctx, app)
            return DouyinAuthorizePayload(authorize_url=started.url, state=started.state)

        return await as_payload(run, DouyinAuthorizePayload)

    @strawberry.mutation(description="Reply to a customer's comment, as the business account it was made to.")
    async def reply_douyin_comment(self, info: Info, interaction_id: strawberry.ID, text: str) -> DouyinCommentReplyPayload:
        async def run() -> DouyinCommentReplyPayload:
            iid = from_global_id(str(interaction_id), "Interaction", field="interactionId")
            reply = await service.reply_comment(info.context.rt, info.context.ctx, iid, text)
            info.context.reset_reads()
            return DouyinCommentReplyPayload(comment_id=reply.comment_id)

        return await as_payload(run, DouyinCommentReplyPayload)

    @strawberry.mutation(description="Fetch a business account's fan figures from Douyin's fans data.")
    async def refresh_douyin_fans(self, info: Info, open_id: str) -> DouyinAccountPayload:
        async def run() -> DouyinAccountPayload:
            row = await service.refresh_fans(info.context.rt, info.context.ctx, open_id)
            return DouyinAccountPayload(account=DouyinAccount.of(row))

        return await as_payload(run, DouyinAccountPayload)


def contribution() -> GraphQLContribution:
    return GraphQLContribution(query=DouyinQuery, mutation=DouyinMutation, extend={"Customer": CustomerDouyinField})
