"""Operations behind the GraphQL mutations and the CLI: the tenant's business accounts, replying
to a comment (through core's one outbound check), and the accounts' fan figures (social value:
only what the API gives, §D.10)."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import select

from guanxi.core.base.context import RequestContext
from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.models import Interaction, utcnow
from guanxi.core.runtime import Runtime
from guanxi.core.services import outbound
from guanxi.plugins.douyin import tokens
from guanxi.plugins.douyin.callbacks import CHANNEL
from guanxi.plugins.douyin.client import DouyinClient, number
from guanxi.plugins.douyin.models import DouyinAuthorization
from guanxi.plugins.douyin.state import douyin_state

MAX_COMMENT = 1000


async def tenant_accounts(runtime: Runtime, tenant_id: uuid.UUID, status: str | None = None) -> list[DouyinAuthorization]:
    """The business accounts connected to the tenant (through the tenant chokepoint)."""
    stmt = select(DouyinAuthorization).order_by(DouyinAuthorization.connected_at, DouyinAuthorization.open_id)
    if status is not None:
        stmt = stmt.where(DouyinAuthorization.status == status)
    async with runtime.session(tenant_id) as session:
        return list((await session.execute(stmt)).scalars())


class CommentReply(msgspec.Struct, frozen=True, kw_only=True):
    comment_id: str
    interaction_id: uuid.UUID


async def reply_comment(runtime: Runtime, ctx: RequestContext, interaction_id: uuid.UUID, text: str) -> CommentReply:
    """Reply to the comment an interaction recorded, as the business account it was made to.
    The customer passes core's outbound check (consent, the channel enabled) and the reply lands
    on their timeline (``comment_reply``)."""
    if not text.strip() or len(text) > MAX_COMMENT:
        raise ValidationError(f"text must be 1 to {MAX_COMMENT} characters", field="text")
    async with runtime.session(ctx.tenant_id, ctx.owners) as session:
        comment = await session.get(Interaction, (ctx.tenant_id, interaction_id))
        if comment is None or comment.channel != CHANNEL or comment.kind != "comment":
            raise NotFoundError("no Douyin comment has this id", field="interactionId")
        screening = await outbound.screen_outbound(runtime, session, CHANNEL, [comment.customer_id], text=text, window=False)
    if not screening.allowed:
        raise screening.refused[0].error()
    account = str(comment.payload.get("account_open_id") or "")
    item_id, comment_id = str(comment.payload.get("item_id") or ""), str(comment.payload.get("comment_id") or "")
    if not account or not item_id or not comment_id:
        raise ValidationError("this comment event carried no item or comment id to reply to", field="interactionId")

    async def reply(client: DouyinClient, token: str) -> str:
        return await client.reply_comment(token, account, item_id=item_id, comment_id=comment_id, content=text)

    reply_id = await tokens.with_token(runtime, ctx.tenant_id, account, reply)
    async with runtime.transaction(ctx) as tx:
        recorded = await outbound.record_outbound(
            tx,
            screening.allowed[0],
            CHANNEL,
            text=text,
            kind="comment_reply",
            payload={"account_open_id": account, "item_id": item_id, "comment_id": comment_id, "reply_id": reply_id},
            dedupe_key=f"douyin:comment_reply:{comment_id}:{reply_id or utcnow().isoformat()}",
        )
    return CommentReply(comment_id=reply_id, interaction_id=recorded.id)


async def refresh_fans(runtime: Runtime, ctx: RequestContext, open_id: str) -> DouyinAuthorization:
    """Fetch the business account's fan figures (``/data/external/user/fans/``) and keep the
    latest day's ``total_fans`` and ``new_fans`` on it; figures the API leaves out stay unknown."""
    async with runtime.session(ctx.tenant_id) as session:
        if await session.get(DouyinAuthorization, (ctx.tenant_id, open_id)) is None:
            raise NotFoundError(f"no Douyin account {open_id!r} is connected to this tenant", field="openId")
    date_type = douyin_state(runtime).settings.fans_date_type

    async def fans(client: DouyinClient, token: str) -> list[dict[str, object]]:
        return await client.fans(token, open_id, date_type=date_type)

    days = await tokens.with_token(runtime, ctx.tenant_id, open_id, fans)
    latest = max(days, key=lambda d: str(d.get("date") or ""), default=None)
    async with runtime.transaction(ctx) as tx:
        row = await tx.session.get(DouyinAuthorization, (ctx.tenant_id, open_id))
        assert row is not None
        if latest is not None:
            row.total_fans = number(latest.get("total_fans"))
            row.new_fans = number(latest.get("new_fans"))
            row.fans_date = str(latest.get("date") or "")[:10] or None
        row.fans_updated_at = utcnow()
        return row
