"""``guanxi serve``: the HTTP API."""

from __future__ import annotations

import click

from guanxi.cli.common import run_async, runtime_of

#: a TCP port a server can listen on (the config key server.port has the same bounds)
PORT = click.IntRange(1, 65535)


@click.command()
@click.option("--host", default=None, help="Interface to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=PORT, default=None, help="Port, 1-65535 (default: server.port, 8000).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: server.workers).")
@click.option("--dev", is_flag=True, help="Development: GraphiQL and introspection without credentials (loopback hosts only).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None, dev: bool) -> None:
    """Serve the HTTP API (GraphQL at /graphql, GraphiQL in a browser)."""
    import contextlib
    import os
    import tempfile

    import uvicorn

    settings = runtime_of(ctx).settings.server
    if dev:
        if (host or settings.host) not in ("127.0.0.1", "::1", "localhost"):
            raise click.UsageError("--dev opens GraphiQL without credentials and is allowed on a loopback host only")
        os.environ["GUANXI__SERVER__DEV"] = "true"  # read by each server process's configuration
    from guanxi.core.migrate import require_migrated

    # a database never migrated stops here, before the server creates its secret or the file
    run_async(runtime_of(ctx), require_migrated, start_plugins=False, needs_tables=False)
    host = host if host is not None else settings.host
    port = port if port is not None else settings.port
    workers = workers if workers is not None else settings.workers
    click.echo(f"Guanxi on http://{host}:{port}{runtime_of(ctx).settings.graphql.path} ({workers} worker{'s' if workers > 1 else ''})")
    with contextlib.ExitStack() as stack:
        if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # each worker process writes its metrics here; a scrape of any of them adds them up
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="guanxi-metrics-"))
        uvicorn.run("guanxi.app:create_app", factory=True, host=host, port=port, workers=workers, log_level=settings.log_level)


def register(group: click.Group) -> None:
    """Add these commands to the ``guanxi`` group."""
    group.add_command(serve)
