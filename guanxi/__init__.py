"""Guanxi (关系): a plugin-based, headless social CRM framework.

The names a plugin author needs, and nothing else: channel types, errors, the runtime, the hook
marker and helpers, the events hooks receive, the contracts plugins exchange, and the helpers
every channel repeats (webhook signatures, delivery errors from HTTP answers). Tables are
declared with :mod:`guanxi.models`; a channel's webhook route comes from :mod:`guanxi.webhooks`;
tests use :mod:`guanxi.testing`.
"""

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import (
    BusyError,
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
    Receipt,
    StaffChannel,
    StaffNotice,
    TransientDeliveryError,
)
from guanxi.core.domain.contracts import ActionRun, EntryPoint, EntryPointRequest, JobKind, JobRun, JourneyAction, ScoreComponent
from guanxi.core.domain.events import (
    ContactArrived,
    ContactLeft,
    CustomerCreated,
    CustomerData,
    CustomerReferred,
    CustomersMerged,
    CustomerUpdated,
    Event,
    IdentityAttached,
    InboundApplied,
    InteractionRecorded,
    MessageStatusChanged,
    NotificationCreated,
    ReferralProgress,
    SegmentMembershipChanged,
    StageChanged,
    TagsChanged,
    TaskChanged,
)
from guanxi.core.domain.providers import SignatureError, delivery_error, parse_retry_after, sign, verify_signature
from guanxi.core.hooks.manager import collect, hookimpl
from guanxi.core.queues.inbox import IngestResult, ingest
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services.files import FILE_URL, add_file_ref
from guanxi.core.services.outbound import ConsentError, Recipient, Refusal, Screening, record_outbound, screen_outbound

__all__ = [
    "FILE_URL",
    "AccountSpec",
    "ActionRun",
    "Actor",
    "Attachment",
    "BusyError",
    "Capabilities",
    "CapabilityError",
    "Channel",
    "ConfigAccount",
    "ConfigError",
    "ConflictError",
    "ConsentError",
    "ContactArrived",
    "ContactLeft",
    "CustomerCreated",
    "CustomerData",
    "CustomerReferred",
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
    "JobKind",
    "JobRun",
    "JourneyAction",
    "MessageStatusChanged",
    "NotFoundError",
    "NotificationCreated",
    "OutboundMessage",
    "PermanentDeliveryError",
    "Permission",
    "PluginDisabledError",
    "PluginError",
    "ProfileInput",
    "Receipt",
    "Recipient",
    "ReferralProgress",
    "Refusal",
    "RequestContext",
    "Runtime",
    "ScoreComponent",
    "Screening",
    "SegmentMembershipChanged",
    "SignatureError",
    "StaffChannel",
    "StaffNotice",
    "StageChanged",
    "TagsChanged",
    "TaskChanged",
    "TransientDeliveryError",
    "Tx",
    "ValidationError",
    "add_file_ref",
    "collect",
    "delivery_error",
    "hookimpl",
    "ingest",
    "parse_retry_after",
    "record_outbound",
    "screen_outbound",
    "sign",
    "verify_signature",
]
__version__ = "0.1.0"
