"""Data types that plugins exchange through hooks without importing each other.

A plugin that offers something (a channel turning an attribution token into a QR code, a
plugin adding a part to a customer's score) and a plugin that uses it agree on these types only;
neither imports the other (checked by import-linter).
"""

from __future__ import annotations

import uuid

import msgspec


class ScoreComponent(msgspec.Struct, frozen=True, kw_only=True):
    """One part of one customer's score, as a plugin contributes it through
    :func:`guanxi.core.hooks.specs.guanxi_score_components`.

    ``name`` identifies the component (``referral.social``); ``value`` is in points (may be
    negative); ``reasons`` say in words where the points come from, e.g.
    ``["12 direct referrals x 5", "30 indirect referrals x 1"]``, so that the score can be explained.
    """

    customer_id: uuid.UUID
    name: str
    value: float
    reasons: list[str] = msgspec.field(default_factory=list)


class EntryPointRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the channels for a way in that carries an attribution ``token``.

    ``token`` is at most 30 characters of ``[A-Za-z0-9_-]`` (it fits WeCom's contact-way
    ``state``). The inviter is a staff user (``inviter_user_id``) or a customer
    (``inviter_customer_id``); ``staff_user_id`` is the staff member new contacts should be
    added to (the inviter, or the owner of the inviting customer), if any.
    """

    token: str
    campaign_id: uuid.UUID
    campaign_name: str
    inviter_user_id: uuid.UUID | None = None
    inviter_customer_id: uuid.UUID | None = None
    staff_user_id: uuid.UUID | None = None


class EntryPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A channel's answer to an :class:`EntryPointRequest`.

    ``kind`` is ``qr`` (``url`` is what the QR code encodes or an image of it, as the provider
    returns it) or ``link`` (a URL to open). ``reference`` is the provider's id of the entry point
    (WeCom's contact-way ``config_id``), to delete or refresh it later.
    """

    channel: str
    kind: str
    url: str
    reference: str | None = None
