"""Hook implementations: wiring only."""

from __future__ import annotations

from typing import Any

import msgspec

from guanxi import AccountSpec, Channel, EntryPoint, EntryPointRequest, InboundApplied, InboundEvent, Runtime, Tx, hookimpl
from guanxi_pigeon import contacts
from guanxi_pigeon.channel import PigeonChannel
from guanxi_pigeon.routes import pigeon_webhook
from guanxi_pigeon.settings import PigeonSettings, account_spec


@hookimpl
def guanxi_config_schema() -> type[msgspec.Struct]:
    return PigeonSettings


@hookimpl
def guanxi_channels(runtime: Runtime) -> list[Channel]:
    return [PigeonChannel(runtime.plugin_settings("pigeon"))]


@hookimpl
def guanxi_channel_accounts(runtime: Runtime) -> list[AccountSpec]:
    return [account_spec(runtime.plugin_settings("pigeon"))]


@hookimpl
def guanxi_routes() -> list[Any]:
    return [pigeon_webhook]


@hookimpl
def guanxi_entry_points(runtime: Runtime, request: EntryPointRequest) -> list[EntryPoint]:
    return contacts.entry_points(runtime, request)


@hookimpl
def guanxi_inbound_applied(tx: Tx, event: InboundEvent, applied: InboundApplied) -> None:
    contacts.report(tx, event, applied)
