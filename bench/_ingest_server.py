"""Servers for bench/ingest.py (and douyin_ingest.py): the Guanxi app with the plugins the
environment enables (their signed webhook routes, the in-process inbox worker), and a bare
Litestar endpoint that decodes the same JSON body with msgspec, as the baseline.

    python -m bench._ingest_server --app guanxi|baseline|douyin-baseline --port N
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
from litestar import Litestar, Request, get, post


def baseline_app() -> Litestar:
    from guanxi_pigeon.routes import PigeonEvent

    @post("/baseline", status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> dict[str, bool]:
        msgspec.json.decode(await request.body(), type=PigeonEvent)
        return {"ok": True}

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([receive, healthz])


def douyin_baseline_app() -> Litestar:
    """The same for Douyin's bodies: decode the envelope and its JSON-string ``content``."""
    from guanxi.plugins.douyin.callbacks import Envelope

    @post("/baseline", status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> dict[str, bool]:
        envelope = msgspec.json.decode(await request.body(), type=Envelope)
        msgspec.json.decode(envelope.content)
        return {"ok": True}

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([receive, healthz])


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser()
    p.add_argument("--app", choices=["guanxi", "baseline", "douyin-baseline"], required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    if args.app == "guanxi":
        from guanxi.app import create_app

        app = create_app()  # configured by the environment: database, tenant, pigeon plugin
    elif args.app == "douyin-baseline":
        app = douyin_baseline_app()
    else:
        app = baseline_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop", log_level="warning", workers=1)


if __name__ == "__main__":
    main()
