"""Guanxi (关系): a plugin-based, headless social CRM framework.

The names a plugin author needs, and nothing else.
"""

from guanxi.core.channels import (
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
from guanxi.core.context import Actor, RequestContext
from guanxi.core.errors import ConfigError, ConflictError, GuanxiError, NotFoundError, PluginError, ValidationError
from guanxi.core.inbox import IngestResult, ingest
from guanxi.core.plugins import hookimpl
from guanxi.core.runtime import Runtime, Tx

__all__ = [
    "Actor",
    "Attachment",
    "Capabilities",
    "CapabilityError",
    "Channel",
    "ConfigError",
    "ConflictError",
    "DeliveryError",
    "DeliveryResult",
    "GuanxiError",
    "InboundEvent",
    "IngestResult",
    "NotFoundError",
    "OutboundMessage",
    "PermanentDeliveryError",
    "PluginError",
    "ProfileInput",
    "RequestContext",
    "Runtime",
    "TransientDeliveryError",
    "Tx",
    "ValidationError",
    "hookimpl",
    "ingest",
]
__version__ = "0.1.0"
