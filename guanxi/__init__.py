"""Guanxi (关系): a plugin-based, headless social CRM framework.

The names a plugin author needs, and nothing else: channel types, errors, the runtime, the hook
marker and helpers, the events hooks receive and the contracts plugins exchange. Tables are
declared with :mod:`guanxi.models`; tests use :mod:`guanxi.testing`.
"""

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import (
    ConfigError,
    ConflictError,
    GuanxiError,
    NotFoundError,
    PluginDisabledError,
    PluginError,
    ValidationError,
)
from guanxi.core.domain.access import Permission
from guanxi.core.domain.channels import (
    AccountSpec,
    Attachment,
    Capabilities,
    CapabilityError,
    Channel,
    ConfigAccount,
    DeliveryError,
    DeliveryResult,
    InboundEvent,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileInput,
    TransientDeliveryError,
)
from guanxi.core.domain.contracts import EntryPoint, EntryPointRequest, ScoreComponent
from guanxi.core.domain.events import (
    ContactArrived,
    ContactLeft,
    CustomerCreated,
    CustomerData,
    CustomersMerged,
    CustomerUpdated,
    Event,
    IdentityAttached,
    InboundApplied,
    InteractionRecorded,
    MessageStatusChanged,
    ReferralProgress,
    StageChanged,
    TagsChanged,
    TaskChanged,
)
from guanxi.core.hooks.manager import collect, hookimpl
from guanxi.core.queues.inbox import IngestResult, ingest
from guanxi.core.runtime import Runtime, Tx

__all__ = [
    "AccountSpec",
    "Actor",
    "Attachment",
    "Capabilities",
    "CapabilityError",
    "Channel",
    "ConfigAccount",
    "ConfigError",
    "ConflictError",
    "ContactArrived",
    "ContactLeft",
    "CustomerCreated",
    "CustomerData",
    "CustomerUpdated",
    "CustomersMerged",
    "DeliveryError",
    "DeliveryResult",
    "EntryPoint",
    "EntryPointRequest",
    "Event",
    "GuanxiError",
    "IdentityAttached",
    "InboundApplied",
    "InboundEvent",
    "IngestResult",
    "InteractionRecorded",
    "MessageStatusChanged",
    "NotFoundError",
    "OutboundMessage",
    "PermanentDeliveryError",
    "Permission",
    "PluginDisabledError",
    "PluginError",
    "ProfileInput",
    "ReferralProgress",
    "RequestContext",
    "Runtime",
    "ScoreComponent",
    "StageChanged",
    "TagsChanged",
    "TaskChanged",
    "TransientDeliveryError",
    "Tx",
    "ValidationError",
    "collect",
    "hookimpl",
    "ingest",
]
__version__ = "0.1.0"
