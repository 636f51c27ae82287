"""The exceptions core raises, in one hierarchy.

Every message says what was wrong in words a caller can act on, and never contains a secret.
"""

from __future__ import annotations


class GuanxiError(Exception):
    """Base of every error Guanxi raises on purpose. ``field`` names the input at fault, if any."""

    code = "ERROR"
    #: True for a provider API's failure (its ``code`` is the provider's own, e.g. ``WECOM_41054``)
    provider = False

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(GuanxiError):
    """The configuration is invalid; the message names the key path (``$.database.url``)."""

    code = "BAD_CONFIG"


class PluginError(GuanxiError):
    """A plugin could not be loaded or broke the plugin contract."""

    code = "PLUGIN_ERROR"


class ValidationError(GuanxiError):
    """Input to a service is invalid. ``field`` names the offending input field."""

    code = "VALIDATION"


class NotFoundError(GuanxiError):
    """The object does not exist in the caller's tenant (or was merged away)."""

    code = "NOT_FOUND"


class ConflictError(GuanxiError):
    """The change clashes with the current state (e.g. a duplicate unique value)."""

    code = "CONFLICT"


class NotMigratedError(GuanxiError):
    """The database has no tables yet, or an older schema than this Guanxi needs."""

    code = "NOT_MIGRATED"


class PluginDisabledError(GuanxiError):
    """The plugin is loaded by the deployment but the caller's tenant has not enabled it."""

    code = "PLUGIN_DISABLED"

    def __init__(self, plugin: str, message: str | None = None) -> None:
        super().__init__(message or f"plugin {plugin!r} is not enabled for this tenant")
        self.plugin = plugin


class QuotaExceededError(GuanxiError):
    """A tenant reached one of its limits; the message names the limit and its value."""

    code = "QUOTA_EXCEEDED"


class BusyError(GuanxiError):
    """The database is busy with another writer (on SQLite: another process, such as a bulk
    import, holds the write lock) and the write did not get its turn within the busy timeout.
    Nothing was changed; retrying later is safe."""

    code = "BUSY"
    permanent = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "the database is busy with another writer (e.g. a bulk import); nothing was changed, retry in a few seconds"
        )
