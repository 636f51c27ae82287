"""The ``guanxi`` command line: the root group and ``main``. Each module of this package adds
its commands through ``register(group)``; enabled plugins add theirs (``guanxi_cli`` hook)."""

from __future__ import annotations

import logging
import sys

import click

from guanxi.cli import access, data, database, pipelines, plugins, queues, scaffold, server
from guanxi.cli.common import run_async, runtime_of
from guanxi.core.base.errors import GuanxiError
from guanxi.core.base.logs import configure_logging
from guanxi.core.runtime import Runtime


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="guanxi")
def cli() -> None:
    """Guanxi (关系): a plugin-based, headless social CRM.

    Configuration comes from guanxi.toml in the working directory (or GUANXI_CONFIG) and
    GUANXI_* environment variables; see docs/operations.md."""


def build_cli(runtime: Runtime) -> click.Group:
    """A fresh command group: core's commands plus the enabled plugins' (so two runtimes with
    different plugins never share commands)."""
    group = click.Group(
        name="guanxi",
        commands=dict(cli.commands),
        help=cli.help,
        params=list(cli.params),
        context_settings=cli.context_settings,
        callback=cli.callback,
    )
    for module in (server, database, plugins, data, access, queues, scaffold, pipelines):
        module.register(group)
    runtime.pm.hook.guanxi_cli(group=group)
    return group


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``guanxi`` command."""
    try:
        runtime = Runtime.from_config()
    except GuanxiError as exc:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        click.echo(f"guanxi: {exc}", err=True)
        sys.exit(2)
    configure_logging(
        runtime.settings.server.log_level, trace=runtime.settings.plugins.trace, log_format=runtime.settings.server.log_format
    )
    group = build_cli(runtime)
    try:
        group.main(args=argv, obj=runtime, standalone_mode=True)
    except GuanxiError as exc:  # pragma: no cover - standalone_mode exits first
        click.echo(f"guanxi: {exc}", err=True)
        sys.exit(1)


__all__ = ["build_cli", "cli", "main", "run_async", "runtime_of"]
