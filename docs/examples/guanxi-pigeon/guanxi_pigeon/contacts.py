"""Taking part in attribution: entry points that carry a token, and arrivals that report it.

A follow that came through an entry point carries its ``state``; the webhook keeps it in the
interaction's payload. Once the follow is recorded, this module reports the arrival with
``guanxi_contact_arrived`` (and an unfollow with ``guanxi_contact_left``), so that a plugin such as
the referral plugin attributes the new contact without knowing Pigeon.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import func, select

from guanxi import RequestContext, Runtime
from guanxi.core.context import Actor
from guanxi.core.contracts import EntryPoint, EntryPointRequest
from guanxi.core.events import ContactArrived, ContactLeft, InteractionRecorded
from guanxi.core.models import Identity, Interaction

ACTOR = Actor(kind="plugin", name="pigeon")


def entry_points(runtime: Runtime, request: EntryPointRequest) -> list[EntryPoint]:
    """A Pigeon "follow" link that brings the token back as the follow's ``state``."""
    invite_url = runtime.plugin_settings("pigeon").invite_url
    return [EntryPoint(channel="pigeon", kind="link", url=f"{invite_url}?{urlencode({'state': request.token})}")]


async def report(runtime: Runtime, event: InteractionRecorded) -> None:
    """Turn a recorded Pigeon follow (unfollow) into a contact-arrived (contact-left) event."""
    if event.channel != "pigeon" or event.kind not in ("follow", "unfollow"):
        return
    async with runtime.transaction(RequestContext(tenant_id=event.tenant_id, actor=ACTOR)) as tx:
        row = (
            await tx.session.execute(
                select(Identity.id, Identity.external_id)
                .join(Interaction, Interaction.identity_id == Identity.id)
                .where(Interaction.id == event.interaction_id)
            )
        ).one_or_none()
        if row is None:
            return
        if event.kind == "unfollow":
            tx.emit(
                "guanxi_contact_left",
                ContactLeft(
                    tenant_id=event.tenant_id,
                    actor=ACTOR,
                    customer_id=event.customer_id,
                    channel="pigeon",
                    external_id=row.external_id,
                    staff_user_id=None,
                    reason="unfollowed",
                    occurred_at=event.occurred_at,
                ),
            )
            return
        # Nothing on the customer's timeline before the follow (ids are time-ordered): a new customer.
        earlier = select(func.count()).where(Interaction.customer_id == event.customer_id, Interaction.id < event.interaction_id)
        new_customer = (await tx.session.execute(earlier)).scalar_one() == 0
        tx.emit(
            "guanxi_contact_arrived",
            ContactArrived(
                tenant_id=event.tenant_id,
                actor=ACTOR,
                customer_id=event.customer_id,
                identity_id=row.id,
                channel="pigeon",
                external_id=row.external_id,
                state=event.payload.get("state"),
                staff_user_id=None,
                new_customer=new_customer,
                occurred_at=event.occurred_at,
            ),
        )
