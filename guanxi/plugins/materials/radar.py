"""Radar links: share a material (a signed token), record who opened it and for how long, and
tell the sharer.

* **Share**: a :class:`MaterialShare` row (material, sharer, recipient when known); its token is
  the row's id signed with a key derived from the server secret (:mod:`.tokens`).
* **Open**: a bot or link-preview crawler (``preview_agents``) is recorded as a ``preview``;
  anyone else as a ``view`` by a visitor (a cookie). The visitor is the recipient when the link
  was shared with a customer and nobody else opened it first; a visitor who is known (attached
  earlier) stays that customer. A view by a known customer is a ``material_view`` interaction on
  their timeline.
* **Beacon**: the page reports the time it was visible; ``read_ms`` only grows (a repeated or
  late beacon changes nothing), capped at ``max_read_s``. The final beacon notifies the sharer
  (once per view, core notifications) with what was read and for how long.
* **Forward**: a child share of the same sharer, without a recipient.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from sqlalchemy import func, select

from guanxi.core.base.errors import NotFoundError, ValidationError
from guanxi.core.domain.models import Customer, Interaction
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.interactions import InteractionInput, record_interaction
from guanxi.core.services.notifications import NotificationInput, notify
from guanxi.core.services.tags import change_tags
from guanxi.plugins.materials.library import split
from guanxi.plugins.materials.models import Material, MaterialShare, MaterialView, MaterialVisitor
from guanxi.plugins.materials.settings import MaterialsSettings

STATE_PREFIX = "mv"
CHANNEL = "materials"
KIND = "material_view"


def visitor_state(visitor_id: uuid.UUID) -> str:
    """The ``state`` an entry point carries to identify this visitor when they become a contact
    (24 characters: fits WeCom's 30-character ``state``)."""
    return STATE_PREFIX + base64.urlsafe_b64encode(visitor_id.bytes).decode().rstrip("=")


def visitor_of_state(state: str | None) -> uuid.UUID | None:
    if not state or len(state) != 24 or not state.startswith(STATE_PREFIX):
        return None
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(state[2:] + "=="))
    except (ValueError, binascii.Error):
        return None


def is_preview(user_agent: str | None, settings: MaterialsSettings) -> bool:
    """A missing user agent or one containing a configured substring (case-insensitive)."""
    if not user_agent:
        return True
    agent = user_agent.lower()
    return any(s.lower() in agent for s in settings.preview_agents)


async def share(tx: Tx, material: Material, customer_id: uuid.UUID | None) -> MaterialShare:
    """A new radar link of ``material`` by the caller (a staff user), for ``customer_id`` if known."""
    sharer = tx.ctx.actor.user_id
    if sharer is None:
        raise ValidationError("only a staff user can share a material (this caller is not a user)", field="materialId")
    if material.archived_at is not None:
        raise ValidationError("the material is archived: restore it (restoreMaterial) to share it again", field="materialId")
    if customer_id is not None and await tx.session.get(Customer, (tx.tenant_id, customer_id)) is None:
        raise NotFoundError("customer not found")
    row = MaterialShare(id=uuid.uuid4(), material_id=material.id, sharer_id=sharer, customer_id=customer_id)
    tx.session.add(row)
    await tx.session.flush()
    audit(tx, "material.share", "material", material.id, {"customer_id": str(customer_id) if customer_id else None})
    return row


async def forward(tx: Tx, parent: MaterialShare) -> MaterialShare:
    """A child link of ``parent``: the same material and sharer, no recipient."""
    row = MaterialShare(id=uuid.uuid4(), material_id=parent.material_id, sharer_id=parent.sharer_id, parent_id=parent.id)
    tx.session.add(row)
    await tx.session.flush()
    return row


async def _visitor(tx: Tx, visitor_id: uuid.UUID | None, user_agent: str | None) -> MaterialVisitor:
    found = await tx.session.get(MaterialVisitor, (tx.tenant_id, visitor_id)) if visitor_id else None
    if found is None:
        found = MaterialVisitor(id=uuid.uuid4(), user_agent=(user_agent or "")[:300] or None)
        tx.session.add(found)
        await tx.session.flush()
    return found


async def open_share(
    tx: Tx, found: MaterialShare, material: Material, *, visitor_id: uuid.UUID | None, user_agent: str | None, settings: MaterialsSettings
) -> tuple[MaterialView, MaterialVisitor | None]:
    """Record one opening (see the module docstring); returns the view and the visitor (None for
    a preview, which gets no visitor and no cookie)."""
    base = {"share_id": found.id, "material_id": found.material_id, "sharer_id": found.sharer_id}
    if is_preview(user_agent, settings):
        view = MaterialView(id=uuid.uuid4(), kind="preview", **base)
        tx.session.add(view)
        await tx.session.flush()
        return view, None
    visitor = await _visitor(tx, visitor_id, user_agent)
    if visitor.customer_id is None and found.customer_id is not None and found.parent_id is None:
        others = (
            await tx.session.execute(
                select(func.count()).where(
                    MaterialView.share_id == found.id, MaterialView.kind == "view", MaterialView.visitor_id != visitor.id
                )
            )
        ).scalar_one()
        if not others:
            visitor.customer_id = found.customer_id
    view = MaterialView(id=uuid.uuid4(), kind="view", visitor_id=visitor.id, customer_id=visitor.customer_id, **base)
    tx.session.add(view)
    await tx.session.flush()
    if view.customer_id is not None:
        await record_interaction(
            tx,
            InteractionInput(
                customer_id=view.customer_id,
                channel=CHANNEL,
                kind=KIND,
                text=material.title,
                payload={"material_id": str(material.id), "view_id": str(view.id), "sharer_id": str(found.sharer_id), "read_ms": 0},
                dedupe_key=f"{KIND}:{view.id}",
            ),
        )
        await interest_tags(tx, view.customer_id, [material], settings)
    return view, visitor


async def interest_tags(tx: Tx, customer_id: uuid.UUID, materials: list[Material], settings: MaterialsSettings) -> None:
    """Tag the customer with the viewed materials' tags, in ``interest_tag_group``."""
    if not settings.interest_tag_group:
        return
    labels = sorted({f"{settings.interest_tag_group}/{t}" for m in materials for t in split(m.tags)})
    if labels:
        await change_tags(tx, customer_id, add=labels)


def _seconds(ms: int) -> str:
    s = round(ms / 1000)
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


async def beacon(tx: Tx, found: MaterialShare, view_id: uuid.UUID, ms: int, final: bool, settings: MaterialsSettings) -> MaterialView:
    """Raise the view's read time to ``ms`` (never lower it; capped); on ``final``, notify the
    sharer once. A view of another link is not found."""
    if ms < 0:
        raise ValidationError("ms must not be negative", field="ms")
    view = await tx.session.get(MaterialView, (tx.tenant_id, view_id))
    if view is None or view.share_id != found.id or view.kind != "view":
        raise NotFoundError("view not found")
    ms = min(ms, settings.max_read_s * 1000)
    if ms > view.read_ms:
        view.read_ms = ms
        if view.customer_id is not None:
            interaction = (
                await tx.session.execute(select(Interaction).where(Interaction.dedupe_key == f"{KIND}:{view.id}"))
            ).scalar_one_or_none()
            if interaction is not None:
                interaction.payload = {**interaction.payload, "read_ms": ms}
    if final:
        material = await tx.session.get(Material, (tx.tenant_id, view.material_id))
        who = "An anonymous visitor"
        if view.customer_id is not None:
            customer = await tx.session.get(Customer, (tx.tenant_id, view.customer_id))
            who = customer.display_name if customer is not None and customer.display_name else "Your customer"
        title = material.title if material is not None else "a material"
        await notify(
            tx,
            NotificationInput(
                user_id=view.sharer_id,
                kind="materials.viewed",
                title=f"{who} read “{title}” for {_seconds(view.read_ms)}",
                body=None if found.parent_id is None else "opened from a forward of your link",
                link_type="customer" if view.customer_id is not None else None,
                link_id=view.customer_id,
                dedupe_key=f"materials.viewed:{view.id}",
            ),
        )
    return view


async def identify(tx: Tx, visitor_id: uuid.UUID, customer_id: uuid.UUID, settings: MaterialsSettings) -> int:
    """Attach an anonymous visitor to the customer they turned out to be; their earlier views
    become the customer's (and their materials' interest tags). Returns how many views were
    attached."""
    visitor = await tx.session.get(MaterialVisitor, (tx.tenant_id, visitor_id))
    if visitor is None:
        raise NotFoundError("visitor not found")
    if visitor.customer_id is not None and visitor.customer_id != customer_id:
        return 0  # a browser already known as someone else keeps its first identity
    if await tx.session.get(Customer, (tx.tenant_id, customer_id)) is None:
        raise NotFoundError("customer not found")
    visitor.customer_id = customer_id
    views = (
        (await tx.session.execute(select(MaterialView).where(MaterialView.visitor_id == visitor.id, MaterialView.customer_id.is_(None))))
        .scalars()
        .all()
    )
    for view in views:
        view.customer_id = customer_id
    seen = {v.material_id for v in views if v.kind == "view"}
    if seen:
        materials = {m.id: m for m in (await tx.session.execute(select(Material).where(Material.id.in_(seen)))).scalars()}
        for view in sorted((v for v in views if v.kind == "view"), key=lambda v: v.opened_at):
            # the timeline gets the views made before they were known, at the time they were made
            material = materials.get(view.material_id)
            await record_interaction(
                tx,
                InteractionInput(
                    customer_id=customer_id,
                    channel=CHANNEL,
                    kind=KIND,
                    occurred_at=view.opened_at,
                    text=material.title if material is not None else None,
                    payload={
                        "material_id": str(view.material_id),
                        "view_id": str(view.id),
                        "sharer_id": str(view.sharer_id),
                        "read_ms": view.read_ms,
                        "before_identified": True,
                    },
                    dedupe_key=f"{KIND}:{view.id}",
                ),
            )
        await interest_tags(tx, customer_id, list(materials.values()), settings)
    return len(views)


async def forward_referrer(tx: Tx, visitor_id: uuid.UUID, customer_id: uuid.UUID) -> tuple[MaterialShare, uuid.UUID | None] | None:
    """The forwarded link through which this visitor first came, and who passed it on: the
    customer the parent link was shared with, else the first identified viewer of the parent
    link (None when nobody is known). None when the visitor came through no forward, or passed
    it to themselves."""
    first = (
        await tx.session.execute(
            select(MaterialShare)
            .join(MaterialView, MaterialView.share_id == MaterialShare.id)
            .where(MaterialView.visitor_id == visitor_id, MaterialView.kind == "view", MaterialShare.parent_id.is_not(None))
            .order_by(MaterialView.opened_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if first is None or first.parent_id is None:
        return None
    parent = await tx.session.get(MaterialShare, (tx.tenant_id, first.parent_id))
    referrer = parent.customer_id if parent is not None else None
    if referrer is None:
        referrer = (
            await tx.session.execute(
                select(MaterialView.customer_id)
                .where(MaterialView.share_id == first.parent_id, MaterialView.kind == "view", MaterialView.customer_id.is_not(None))
                .order_by(MaterialView.opened_at)
                .limit(1)
            )
        ).scalar_one_or_none()
    if referrer == customer_id:
        return None
    return first, referrer
