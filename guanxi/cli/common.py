"""What every ``guanxi`` command shares: the runtime of the invocation and a way to run one
async job with it. Plugins' commands use these too (``from guanxi.cli.common import …``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from guanxi.core.base.errors import GuanxiError
from guanxi.core.runtime import Runtime

T = TypeVar("T")


def run_async(runtime: Runtime, fn: Callable[[Runtime], Awaitable[T]], *, start_plugins: bool = True, needs_tables: bool = True) -> T:
    """Run one async job with the runtime started (plugins' ``guanxi_startup`` called unless
    ``start_plugins`` is false, as for migrations, which run before plugin tables exist), and
    stop it afterwards.

    Unless ``needs_tables`` is false (``guanxi db upgrade`` and ``db current``), a database
    that was never migrated stops the command first with "run `guanxi db upgrade`", before
    anything (the database file, the server secret) is created."""

    async def job() -> T:
        if needs_tables:
            from guanxi.core.migrate import require_migrated

            try:
                await require_migrated(runtime)
            except BaseException:
                await runtime.engine.dispose()
                raise
        if start_plugins:
            await runtime.start()
        try:
            return await fn(runtime)
        finally:
            if start_plugins:
                await runtime.stop()
            else:
                await runtime.engine.dispose()

    try:
        return asyncio.run(job())
    except GuanxiError as exc:
        raise click.ClickException(str(exc)) from None


def runtime_of(ctx: click.Context) -> Runtime:
    """The runtime ``main()`` built for this invocation (the click context's object)."""
    runtime = ctx.find_object(Runtime)
    if runtime is None:  # pragma: no cover - main() always provides one
        raise click.UsageError("no runtime")
    return runtime


__all__ = ["run_async", "runtime_of"]
