"""Guanxi (关系): a plugin-based, headless social CRM framework.

The names a plugin author needs, and nothing else: channel types, errors, the runtime, the hook
marker and helpers, the events hooks receive and the contracts plugins exchange. Tables are
declared with :mod:`guanxi.models`; tests use :mod:`guanxi.testing`.
"""

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import BusyError, ConfigError, ConflictError, GuanxiError, NotFoundError, PluginError, ValidationError
from guanxi.core.domain.access import Permission
from guanxi.core.domain.channels import (
    Attachment,
    Capabilities,
    CapabilityError,
    Channel,
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
from guanxi.core.services.outbound import ConsentError, Recipient, Refusal, Screening, record_outbound, screen_outbound

__all__ = [
    "Actor",
    "Attachment",
    "BusyError",
    "Capabilities",
    "CapabilityError",
    "Channel",
    "ConfigError",
    "ConflictError",
    "ConsentError",
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
    "PluginError",
    "ProfileInput",
    "Recipient",
    "ReferralProgress",
    "Refusal",
    "RequestContext",
    "Runtime",
    "ScoreComponent",
    "Screening",
    "StageChanged",
    "TagsChanged",
    "TaskChanged",
    "TransientDeliveryError",
    "Tx",
    "ValidationError",
    "collect",
    "hookimpl",
    "ingest",
    "record_outbound",
    "screen_outbound",
]
__version__ = "0.1.0"
