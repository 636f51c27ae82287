"""Guanxi (关系): a plugin-based, headless social CRM framework.

The names a plugin author needs, and nothing else.
"""

from guanxi.core.context import Actor, RequestContext
from guanxi.core.errors import ConfigError, ConflictError, GuanxiError, NotFoundError, PluginError, ValidationError
from guanxi.core.plugins import hookimpl
from guanxi.core.runtime import Runtime, Tx

__all__ = [
    "Actor",
    "ConfigError",
    "ConflictError",
    "GuanxiError",
    "NotFoundError",
    "PluginError",
    "RequestContext",
    "Runtime",
    "Tx",
    "ValidationError",
    "hookimpl",
]
__version__ = "0.1.0"
