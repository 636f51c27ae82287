"""Configuration: a TOML file decoded by msgspec into typed, frozen Structs.

Layout of ``guanxi.toml`` (every key optional)::

    tenant = "demo"                      # the default tenant (CLI, plugin webhooks, dev mode)

    [database]
    url = "sqlite+aiosqlite:///guanxi.db"

    [plugins]
    enabled = ["example"]
    trace = false

    [plugins.example]                    # one section per enabled plugin, typed by that plugin
    greeting = "hi"

Environment variables override the file: ``GUANXI_CONFIG`` (the file's path),
``GUANXI_DATABASE_URL``, ``GUANXI_PLUGINS`` (comma-separated enabled list), and any key through
``GUANXI__SECTION__KEY`` (double underscores separate the path, e.g.
``GUANXI__PLUGINS__WECOM__SECRET``). A bad value fails at start with its key path and the reason.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from guanxi.core.base.errors import ConfigError

DEFAULT_CONFIG_FILE = "guanxi.toml"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///guanxi.db"
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# Range and form checks are msgspec constraints, so an error names the exact key
# (``$.server.port``); checks that relate two keys stay in ``__post_init__``.
Url = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9+]+://", description="a SQLAlchemy URL")]
Positive = Annotated[int, msgspec.Meta(ge=1)]
PluginName = Annotated[str, msgspec.Meta(pattern=_PLUGIN_NAME.pattern)]


class DatabaseSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: Url = DEFAULT_DATABASE_URL
    echo: bool = False
    pool_size: Positive = 10
    busy_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 5000
    # PostgreSQL: set the tenant on every transaction for the policies of `guanxi db rls enable`
    row_level_security: bool = False
    # PostgreSQL: let the server JIT-compile queries whose estimated cost passes jit_above_cost
    # (off: Guanxi's statements are short, and a compile cost more than the statement saved)
    jit: bool = False


class PluginSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    enabled: list[PluginName] = msgspec.field(default_factory=list)
    trace: bool = False
    #: how long a process trusts what it read of a tenant's plugin choices (enabled plugins,
    #: setting overrides) before reading them again: the bound on how late a change made in
    #: another process applies here
    tenant_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0

    def __post_init__(self) -> None:
        if len(set(self.enabled)) != len(self.enabled):
            raise ValueError("a plugin is listed twice in enabled")


class GraphQLSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: Annotated[str, msgspec.Meta(pattern=r"^/")] = "/graphql"
    graphiql: bool = True
    max_depth: Positive = 12
    max_aliases: Positive = 30
    max_tokens: Positive = 5000
    max_string_length: Positive = 10_000
    default_page_size: Positive = 20
    max_page_size: Positive = 100

    def __post_init__(self) -> None:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size must not be larger than max_page_size")


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    workers: Positive = 1
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # "json": one JSON object per line, with the request id and the tenant
    log_format: Literal["text", "json"] = "text"
    gc_tuning: bool = True
    # development only: GraphiQL and introspection answer without credentials (loopback hosts only)
    dev: bool = False
    #: where deleting a tenant writes its export first (personal data: keep it private)
    export_dir: str = ".guanxi/exports"

    def __post_init__(self) -> None:
        if self.dev and self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("dev mode opens GraphiQL without credentials and is allowed on a loopback host only")


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """API keys and JWT bearer tokens. Secrets are never logged nor shown in errors."""

    # HMAC key for API key hashes; empty: read (or create, 0600) secret_file
    secret: str = ""
    secret_file: str = ".guanxi/secret"
    #: earlier server secrets, still accepted to open channel-account secrets sealed under them
    #: and to verify API and operator keys hashed under them (rotation: see
    #: guanxi.core.base.sealing; an API key is re-hashed under ``secret`` at its next use)
    previous_secrets: list[str] = msgspec.field(default_factory=list)
    # JWT bearer tokens: HS256 with jwt_secret, RS256 with a PEM public key or a JWKS file
    jwt_secret: str = ""
    jwt_public_key_file: str = ""
    jwt_jwks_file: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_leeway_s: Annotated[int, msgspec.Meta(ge=0)] = 30
    # how long a verified key is trusted before it is read again (revocation delay elsewhere)
    key_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    # per caller (API key or token subject): sustained requests per second, and the burst
    rate_per_s: Annotated[float, msgspec.Meta(gt=0)] = 50.0
    rate_burst: Positive = 200


class QueueSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The inbox and outbox workers (see guanxi.core.queues.inbox and guanxi.core.queues.outbox)."""

    run_workers: bool = True
    batch: Positive = 10
    poll_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    lease_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    inbox_max_attempts: Positive = 8
    outbox_max_attempts: Positive = 6
    send_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    rate_per_s: dict[str, Annotated[float, msgspec.Meta(gt=0)]] = msgspec.field(default_factory=dict)
    # the scheduler (guanxi.core.queues.scheduler): a run longer than this is stopped and retried
    job_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # the staff delivery queue (guanxi.core.queues.staff)
    staff_max_attempts: Positive = 6


class FilesSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The core file store (uploads of plugins, mail attachments), content-addressed: a local
    directory (``backend = "local"``, ``root``) or an S3-compatible bucket (``backend = "s3"``,
    the ``s3_*`` keys; install the ``s3`` extra)."""

    backend: Literal["local", "s3"] = "local"
    root: str = ".guanxi/files"
    max_bytes: Positive = 20 * 1024 * 1024
    s3_bucket: str = ""
    #: the endpoint of an S3-compatible service (MinIO, OSS, COS); "" is AWS S3
    s3_endpoint_url: str = ""
    s3_region: str = ""
    #: "" takes boto3's usual credentials (environment, instance role)
    s3_access_key_id: str = ""
    #: Secret: set it in the environment (GUANXI__FILES__S3_SECRET_ACCESS_KEY), not in the file.
    s3_secret_access_key: str = ""
    #: object names are ``<prefix><sha256>``
    s3_prefix: str = ""
    s3_addressing_style: Literal["auto", "virtual", "path"] = "auto"
    #: Stored bytes no reference holds are deleted once they were last stored longer ago than
    #: this (by erasure at once, otherwise by the daily ``core.files_sweep`` job): bytes stored
    #: for a message still on its way to its reference (the inbox) are never swept under it.
    orphan_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 86400.0


class NotifySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Staff notifications and core's task reminders (guanxi.core.services.reminders)."""

    # remind a task's assignee before the due time (task.due_soon) and when it passes (task.overdue)
    task_reminders: bool = True
    # how long before the due time the due-soon reminder goes out
    task_due_soon_s: Annotated[int, msgspec.Meta(ge=0)] = 3600


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The Prometheus endpoint (see guanxi/metrics.py). Secrets are never logged nor shown in errors."""

    enabled: bool = True
    path: Annotated[str, msgspec.Meta(pattern=r"^/")] = "/metrics"
    # a scraper sends `Authorization: Bearer <token>`; empty: only loopback clients may scrape
    token: str = ""
    # GraphQL operation names kept as label values per process; later names count as "other"
    max_operation_names: Positive = 100


class TracingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """OpenTelemetry traces (see guanxi/core/base/tracing.py); needs the otel extra when enabled."""

    enabled: bool = False
    # OTLP over HTTP, e.g. "http://otel-collector:4318/v1/traces"; empty: OTEL_EXPORTER_OTLP_* or the default
    otlp_endpoint: str = ""
    service_name: str = "guanxi"
    # the share of new traces recorded (a trace continued from a stored context follows its parent)
    sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0


class QuotaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Every tenant's limits unless the operator set its own (0: no limit)."""

    customers: Annotated[int, msgspec.Meta(ge=0)] = 0
    requests_per_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: channel name -> outbound messages per day (the tenant's day); "*" for every other channel
    messages_per_day: dict[str, Annotated[int, msgspec.Meta(ge=0)]] = msgspec.field(default_factory=dict)


class CoreSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tenant: str = "demo"
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    plugins: PluginSettings = msgspec.field(default_factory=PluginSettings)
    graphql: GraphQLSettings = msgspec.field(default_factory=GraphQLSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    queues: QueueSettings = msgspec.field(default_factory=QueueSettings)
    notifications: NotifySettings = msgspec.field(default_factory=NotifySettings)
    files: FilesSettings = msgspec.field(default_factory=FilesSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    tracing: TracingSettings = msgspec.field(default_factory=TracingSettings)
    quotas: QuotaSettings = msgspec.field(default_factory=QuotaSettings)

    def __post_init__(self) -> None:
        if self.metrics.enabled and self.metrics.path.rstrip("/") == self.graphql.path.rstrip("/"):
            raise ValueError("metrics.path must differ from graphql.path")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The whole configuration: the core part plus one decoded section per enabled plugin."""

    core: CoreSettings
    plugin_sections: Mapping[str, Mapping[str, Any]] = msgspec.field(default_factory=dict)
    source: str = "<defaults>"

    @property
    def database(self) -> DatabaseSettings:
        return self.core.database

    @property
    def enabled_plugins(self) -> list[str]:
        return list(self.core.plugins.enabled)


class ConfigSource(str):
    """Where the configuration came from (the file's path, or ``<defaults>``), plus which key
    paths environment variables set, so that an error in such a value names the variable
    rather than the file."""

    env: dict[str, str]

    def __new__(cls, value: str, env: Mapping[str, str] | None = None) -> ConfigSource:
        self = super().__new__(cls, value)
        self.env = dict(env or {})
        return self

    def label(self, path: str) -> str:
        """Who set ``path`` (``$.server.port``): the environment variable that set it (or a table
        above it), else the file (or ``<defaults>``)."""
        probe = path
        while True:
            if probe in self.env:
                return f"environment variable {self.env[probe]}"
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= 0:
                return str(self)
            probe = probe[:cut]


def _set_path(tree: dict[str, Any], path: list[str], value: Any, variable: str) -> None:
    node = tree
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"environment variable {variable}: `$.{'.'.join(path)}` cannot be set, `{key}` is not a table")
        node = child
    node[path[-1]] = value


def _env_value(raw: str, variable: str) -> Any:
    """Environment values are strings (converted to numbers or booleans where the key wants
    one); a value starting with ``[`` or ``{`` is read as a TOML array or inline table."""
    if raw.lstrip().startswith(("[", "{")):
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"environment variable {variable}: {raw[:40]!r} is not a TOML array or table: {exc}") from None
    return raw


def _apply_env(tree: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply the overrides; return which key path (``$.a.b``) each variable set."""
    origins: dict[str, str] = {}

    def put(path: list[str], value: Any, variable: str) -> None:
        _set_path(tree, path, value, variable)
        origins["$." + ".".join(path)] = variable

    if url := environ.get("GUANXI_DATABASE_URL"):
        put(["database", "url"], url, "GUANXI_DATABASE_URL")
    if (enabled := environ.get("GUANXI_PLUGINS")) is not None:
        names = [n.strip() for n in enabled.split(",") if n.strip()]
        put(["plugins", "enabled"], names, "GUANXI_PLUGINS")
    for key, raw in environ.items():
        if key.startswith("GUANXI__"):
            path = [p.lower() for p in key[len("GUANXI__") :].split("__") if p]
            if path:
                put(path, _env_value(raw, key), key)
    return origins


def _decode(kind: type[Any], data: Any, prefix: str, source: str) -> Any:
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        # msgspec ends its messages with "- at `$.a.b`"; re-root the path under the section.
        match = re.search(r" - at `\$(.*)`$", message)
        if match:
            path = prefix + match.group(1)
            reason = message[: match.start()]
        else:
            path, reason = prefix, message
        raise ConfigError(f"{_label(source, path)}: invalid config at `{path}`: {reason}") from None


def _label(source: str, path: str) -> str:
    return source.label(path) if isinstance(source, ConfigSource) else source


def read_raw(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], ConfigSource]:
    """Read the TOML file (if any) and apply environment overrides; return the tree and its source."""
    env = os.environ if environ is None else environ
    explicit = path is not None or "GUANXI_CONFIG" in env
    file = Path(path if path is not None else env.get("GUANXI_CONFIG", DEFAULT_CONFIG_FILE))
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if file.exists():
        try:
            tree = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        source = str(file)
    elif explicit:
        raise ConfigError(f"config file {file} does not exist")
    origins = _apply_env(tree, env)
    return tree, ConfigSource(source, origins)


def load_core(tree: Mapping[str, Any], source: str) -> tuple[CoreSettings, dict[str, Any]]:
    """Decode the core part; return it and the raw plugin sections (still undecoded)."""
    data = {k: v for k, v in tree.items()}
    plugins = dict(data.get("plugins", {})) if isinstance(data.get("plugins"), dict) else data.get("plugins")
    sections: dict[str, Any] = {}
    if isinstance(plugins, dict):
        for key in list(plugins):
            if isinstance(plugins[key], dict):
                sections[key] = plugins.pop(key)
        data["plugins"] = plugins
    core = _decode(CoreSettings, data, "$", source)
    for name in sections:
        if name not in core.plugins.enabled:
            raise ConfigError(
                f"{_label(source, f'$.plugins.{name}')}: invalid config at `$.plugins.{name}`: section for plugin {name!r}, "
                f"which is not enabled (enabled: {', '.join(core.plugins.enabled) or 'none'})"
            )
    return core, sections


def decode_plugin_section(name: str, schema: type[Any], raw: Any, source: str) -> Any:
    """Decode one plugin's section with the Struct type the plugin declared."""
    return _decode(schema, raw if raw is not None else {}, f"$.plugins.{name}", source)


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[CoreSettings, dict[str, Any], ConfigSource]:
    """Read file and environment; decode the core part. Plugin sections are decoded by the plugin
    manager once it knows each enabled plugin's schema (see :func:`guanxi.core.hooks.manager.load`)."""
    tree, source = read_raw(path, environ)
    core, sections = load_core(tree, source)
    return core, sections, source
