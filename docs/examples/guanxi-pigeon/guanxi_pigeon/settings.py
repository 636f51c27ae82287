"""The ``[plugins.pigeon]`` config section."""

from __future__ import annotations

from typing import Annotated

import msgspec

from guanxi import AccountSpec, ConfigAccount


class PigeonAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A Pigeon account's public settings: Pigeon's id for it (unique across tenants)."""

    account_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PigeonSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    webhook_secret: str = ""


class PigeonSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    api_base_url: str = "https://api.pigeon.example"
    #: Secret: set it in the environment (GUANXI__PLUGINS__PIGEON__API_TOKEN), not in the file.
    api_token: str = ""
    #: A Pigeon account to import on ``guanxi db upgrade`` (single-company deployments): its key
    #: (the webhook URL is ``/webhooks/pigeon/<account>``), Pigeon's id for it, the secret that
    #: signs its webhooks (GUANXI__PLUGINS__PIGEON__WEBHOOK_SECRET; "" imports nothing) and the
    #: slug of its tenant ("": the configured tenant).
    account: str = "main"
    account_id: str = "pigeon"
    webhook_secret: str = ""
    tenant: str = ""
    timeout_s: float = 10.0
    #: Pigeon's "follow us" deep link; an entry point adds ``?state=<token>`` to it.
    invite_url: str = "https://pigeon.example/follow"


def account_spec(settings: PigeonSettings) -> AccountSpec:
    """Pigeon accounts hold the webhook secret; the config section's account is imported."""
    configured = ConfigAccount(
        key=settings.account,
        tenant=settings.tenant,
        settings={"account_id": settings.account_id},
        secrets={"webhook_secret": settings.webhook_secret},
    )
    return AccountSpec(
        channel="pigeon",
        settings=PigeonAccount,
        secrets=PigeonSecrets,
        provider_id="account_id",
        config_accounts=(configured,) if settings.webhook_secret else (),
    )
