"""Public entry points: ``/r/{token}`` (count the visit, redirect to the campaign's landing URL)
and the token's QR codes and poster. Unauthenticated by design: a token is 128 random bits, and
the redirect goes only to the campaign's configured landing URL, never to a URL from the request."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from sqlalchemy import select, update

from guanxi import RequestContext, Runtime
from guanxi.core.base.context import Actor
from guanxi.core.domain.models import Customer, Identity, User
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.core.storage.tenancy import unscoped
from guanxi.plugins.referral.campaigns import token_by_value
from guanxi.plugins.referral.links import link_url, visitor_ok
from guanxi.plugins.referral.models import ReferralCampaign, ReferralToken
from guanxi.plugins.referral.poster import PosterInputs, PosterLayout, cache_dir, poster_png
from guanxi.plugins.referral.qr import qr_png, qr_svg
from guanxi.plugins.referral.settings import ReferralSettings
from guanxi.plugins.referral.tokens import is_token

VISIT_ACTOR = Actor(kind="plugin", name="referral")
NO_STORE = {"Cache-Control": "no-store"}


async def _token(runtime: Runtime, value: str) -> tuple[Any, ReferralToken, ReferralCampaign]:
    if not is_token(value):
        raise NotFoundException("unknown referral link")
    # the token names its tenant (tokens are unique across tenants): one deployment serves the
    # links of every tenant, not only the configured default one
    async with runtime.session(None) as session, unscoped(session):
        tenant_id = (await session.execute(select(ReferralToken.tenant_id).where(ReferralToken.token == value))).scalar_one_or_none()
    if tenant_id is None or not await runtime.plugin_enabled("referral", tenant_id) or await runtime.tenant_suspended(tenant_id):
        raise NotFoundException("unknown referral link")  # a tenant that disabled referral, or is suspended, has no links
    async with runtime.session(tenant_id) as session:
        token = await token_by_value(session, value)
        campaign = await session.get(ReferralCampaign, (tenant_id, token.campaign_id)) if token else None
    if token is None or campaign is None:
        raise NotFoundException("unknown referral link")
    return tenant_id, token, campaign


@get("/r/{token:str}", status_code=302)
async def follow_link(
    request: Request[Any, Any, Any],
    token: FromPath[str],
    channel: FromQuery[str | None] = None,
    uid: FromQuery[str | None] = None,
    sig: FromQuery[str | None] = None,
) -> Redirect:
    """Count the visit and redirect. A known visitor (``?channel=…&uid=<external id>&sig=…``,
    signed with ``visitor_secret``, of an identity of the tenant) gets a ``scan`` interaction;
    any other visit is counted anonymously on the token."""
    runtime: Runtime = request.app.state.runtime
    settings: ReferralSettings = runtime.plugin_settings("referral")
    tenant_id, found, campaign = await _token(runtime, token)
    async with runtime.transaction(RequestContext(tenant_id=tenant_id, actor=VISIT_ACTOR)) as tx:
        identity = None
        if channel and uid and visitor_ok(settings.visitor_secret, found.token, channel, uid, sig):
            identity = (
                await tx.session.execute(select(Identity).where(Identity.channel == channel[:32], Identity.external_id == uid[:128]))
            ).scalar_one_or_none()
        if identity is not None:
            await record_interaction(
                tx,
                InteractionInput(
                    customer_id=identity.customer_id,
                    identity_id=identity.id,
                    channel=identity.channel,
                    kind="scan",
                    payload={"referral_token": found.token, "campaign": campaign.key},
                ),
            )
            counter = {"known_visits": ReferralToken.known_visits + 1}
        else:
            counter = {"anonymous_visits": ReferralToken.anonymous_visits + 1}
        await tx.session.execute(update(ReferralToken).where(ReferralToken.id == found.id).values(**counter))
    return Redirect(path=campaign.landing_url, status_code=302, headers=NO_STORE)


@get("/r/{token:str}/qr.png")
async def qr_png_route(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    runtime: Runtime = request.app.state.runtime
    settings: ReferralSettings = runtime.plugin_settings("referral")
    _tenant, found, _campaign = await _token(runtime, token)
    return Response(qr_png(link_url(settings.public_url, found.token)), media_type="image/png")


@get("/r/{token:str}/qr.svg")
async def qr_svg_route(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    runtime: Runtime = request.app.state.runtime
    settings: ReferralSettings = runtime.plugin_settings("referral")
    _tenant, found, _campaign = await _token(runtime, token)
    return Response(qr_svg(link_url(settings.public_url, found.token)), media_type="image/svg+xml")


async def poster_inputs(runtime: Runtime, tenant_id: Any, token: ReferralToken, campaign: ReferralCampaign) -> PosterInputs:
    """What goes on this inviter's poster: the campaign layout, the link, the inviter's name and
    avatar (a customer's first identity avatar)."""
    settings: ReferralSettings = runtime.plugin_settings("referral")
    async with runtime.session(tenant_id) as session:
        if token.inviter_user_id is not None:
            name = (await session.execute(select(User.name).where(User.id == token.inviter_user_id))).scalar_one()
            avatar = None
        else:
            name = (await session.execute(select(Customer.display_name).where(Customer.id == token.inviter_customer_id))).scalar_one()
            avatar = (
                await session.execute(
                    select(Identity.avatar_url)
                    .where(Identity.customer_id == token.inviter_customer_id, Identity.avatar_url.is_not(None))
                    .order_by(Identity.created_at)
                    .limit(1)
                )
            ).scalar_one_or_none()
    layout = msgspec.convert(campaign.poster or {}, PosterLayout)
    return PosterInputs(
        layout=layout,
        url=link_url(settings.public_url, token.token),
        name=name,
        avatar_url=avatar,
        font_path=settings.font_path,
        backgrounds_dir=settings.poster_backgrounds_dir,
    )


@get("/r/{token:str}/poster.png")
async def poster_route(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[bytes]:
    runtime: Runtime = request.app.state.runtime
    settings: ReferralSettings = runtime.plugin_settings("referral")
    tenant_id, found, campaign = await _token(runtime, token)
    inputs = await poster_inputs(runtime, tenant_id, found, campaign)
    data, key, cached = poster_png(inputs, cache=cache_dir(settings.poster_cache_dir), owner=str(found.id))
    return Response(data, media_type="image/png", headers={"ETag": f'"{key}"', "X-Poster-Cache": "hit" if cached else "miss"})


ROUTES = [follow_link, qr_png_route, qr_svg_route, poster_route]
