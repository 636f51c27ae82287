"""Taking part in attribution: entry points that carry a token, and arrivals that report it.

A follow that came through an entry point carries its ``state``; the webhook keeps it in the
event's payload. When the inbox applies the follow, this module reports the arrival with
``guanxi_contact_arrived`` (and an unfollow with ``guanxi_contact_left``), so that a plugin such as
the referral plugin attributes the new contact without knowing Pigeon.
"""

from __future__ import annotations

from urllib.parse import urlencode

from guanxi import Actor, ContactArrived, ContactLeft, EntryPoint, EntryPointRequest, InboundApplied, InboundEvent, Runtime, Tx

ACTOR = Actor(kind="plugin", name="pigeon")


def entry_points(runtime: Runtime, request: EntryPointRequest) -> list[EntryPoint]:
    """A Pigeon "follow" link that brings the token back as the follow's ``state``."""
    invite_url = runtime.plugin_settings("pigeon").invite_url
    return [EntryPoint(channel="pigeon", kind="link", url=f"{invite_url}?{urlencode({'state': request.token})}")]


def report(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    """Turn a Pigeon follow (unfollow) the inbox just applied into a contact-arrived
    (contact-left) event, in the inbox's own transaction."""
    if event.channel != "pigeon" or event.kind not in ("follow", "unfollow"):
        return
    if event.kind == "unfollow":
        tx.emit(
            "guanxi_contact_left",
            ContactLeft(
                tenant_id=tx.tenant_id,
                actor=ACTOR,
                customer_id=applied.customer_id,
                channel="pigeon",
                external_id=applied.external_id,
                staff_user_id=None,
                reason="unfollowed",
                occurred_at=event.occurred_at,
            ),
        )
        return
    tx.emit(
        "guanxi_contact_arrived",
        ContactArrived(
            tenant_id=tx.tenant_id,
            actor=ACTOR,
            customer_id=applied.customer_id,
            identity_id=applied.identity_id,
            channel="pigeon",
            external_id=applied.external_id,
            state=event.payload.get("state"),
            staff_user_id=None,
            new_customer=applied.new_customer,
            occurred_at=event.occurred_at,
        ),
    )
