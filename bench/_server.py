"""The benchmark's HTTP server: the Guanxi app plus a hand-written baseline route.

``GET /baseline?first=50`` returns the same JSON as the GraphQL page query of
``bench/graphql_list.py`` (``PAGE``), built with five hand-written SQL statements through the
same async engine and encoded with msgspec. Configured by the environment like the real server
(``GUANXI_DATABASE_URL``, ``GUANXI__TENANT``). Run: ``python -m bench._server --port 8123``.
"""

from __future__ import annotations

import argparse
import uuid
from collections import defaultdict
from typing import Any

import msgspec
from litestar import Litestar, Response, get
from sqlalchemy import Uuid, bindparam, text

from guanxi.app import create_app
from guanxi.core.domain.models import UTCDateTime
from guanxi.core.runtime import Runtime
from guanxi.graphql.ids import to_global_id

_T = Uuid()
_TS = UTCDateTime()

SQL_PAGE = (
    text(
        """SELECT c.id, c.display_name, s.name AS stage_name, u.name AS owner_name
FROM customers c
LEFT JOIN stages s ON s.tenant_id = c.tenant_id AND s.id = c.stage_id
LEFT JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.owner_id
WHERE c.tenant_id = :tid AND c.merged_into_id IS NULL
ORDER BY c.created_at DESC, c.id DESC
LIMIT :n"""
    )
    .bindparams(bindparam("tid", type_=_T))
    .columns(id=_T)
)

SQL_COUNT = text("SELECT count(*) FROM customers WHERE tenant_id = :tid AND merged_into_id IS NULL").bindparams(bindparam("tid", type_=_T))

SQL_TAGS = (
    text(
        """SELECT ct.customer_id, t.name FROM customer_tags ct
JOIN tags t ON t.tenant_id = ct.tenant_id AND t.id = ct.tag_id
WHERE ct.tenant_id = :tid AND ct.customer_id IN :ids
ORDER BY t.group_name, t.name"""
    )
    .bindparams(bindparam("tid", type_=_T), bindparam("ids", type_=_T, expanding=True))
    .columns(customer_id=_T)
)

SQL_IDENTITIES = (
    text(
        """SELECT customer_id, channel, nickname FROM identities
WHERE tenant_id = :tid AND customer_id IN :ids
ORDER BY created_at, id"""
    )
    .bindparams(bindparam("tid", type_=_T), bindparam("ids", type_=_T, expanding=True))
    .columns(customer_id=_T)
)

SQL_INTERACTIONS = (
    text(
        """SELECT customer_id, kind, text, occurred_at FROM (
  SELECT customer_id, kind, text, occurred_at,
         ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY occurred_at DESC, id DESC) AS rn
  FROM interactions WHERE tenant_id = :tid AND customer_id IN :ids
) x WHERE rn <= :k ORDER BY customer_id, rn"""
    )
    .bindparams(bindparam("tid", type_=_T), bindparam("ids", type_=_T, expanding=True))
    .columns(customer_id=_T, occurred_at=_TS)
)


SQL_CHANNELS = (
    text(
        """SELECT customer_id, channel, count(*) AS n, max(occurred_at) AS last_at FROM interactions
WHERE tenant_id = :tid AND customer_id IN :ids AND direction = 'in'
GROUP BY customer_id, channel"""
    )
    .bindparams(bindparam("tid", type_=_T), bindparam("ids", type_=_T, expanding=True))
    .columns(customer_id=_T, last_at=_TS)
)


async def baseline_page(runtime: Runtime, first: int, interactions: int = 5, channels: bool = False) -> dict[str, Any]:
    """The page as plain dicts, shaped like the GraphQL response; with ``channels``, each
    customer's inbound channels too (the insights plugin's ``insights { channels }``)."""
    tid = await runtime.tenant_id()
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(SQL_PAGE, {"tid": tid, "n": first})).all()
        total = (await conn.execute(SQL_COUNT, {"tid": tid})).scalar_one()
        ids = [r[0] for r in rows]
        tags: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        idents: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        inter: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        active: dict[uuid.UUID, list[tuple[int, str, Any]]] = defaultdict(list)
        if ids:
            for cid, name in (await conn.execute(SQL_TAGS, {"tid": tid, "ids": ids})).all():
                tags[cid].append({"name": name})
            for cid, channel, nickname in (await conn.execute(SQL_IDENTITIES, {"tid": tid, "ids": ids})).all():
                idents[cid].append({"channel": channel, "nickname": nickname})
            for cid, kind, txt, at in (await conn.execute(SQL_INTERACTIONS, {"tid": tid, "ids": ids, "k": interactions})).all():
                inter[cid].append({"node": {"kind": kind, "text": txt, "occurredAt": at.isoformat()}})
            if channels:
                for cid, channel, n, last_at in (await conn.execute(SQL_CHANNELS, {"tid": tid, "ids": ids})).all():
                    active[cid].append((-n, channel, last_at))
    edges = [
        {
            "node": {
                "id": to_global_id("Customer", cid),
                "displayName": name,
                "stage": {"name": stage} if stage is not None else None,
                "owner": {"name": owner} if owner is not None else None,
                "tags": tags.get(cid, []),
                "identities": idents.get(cid, []),
                "interactions": {"edges": inter.get(cid, [])},
            }
        }
        for cid, name, stage, owner in rows
    ]
    if channels:
        for edge, (cid, *_) in zip(edges, rows, strict=True):
            found = sorted(active.get(cid, []), key=lambda a: (a[0], a[1]))
            edge["node"]["insights"] = {"channels": [{"channel": c, "inbound": -n, "lastAt": at.isoformat()} for n, c, at in found]}
    return {"data": {"customers": {"totalCount": total, "edges": edges}}}


def build_app() -> Litestar:
    runtime = Runtime.from_config()
    app = create_app(runtime, manage_runtime=True)

    @get("/baseline", include_in_schema=False)
    async def baseline(first: int = 50, channels: bool = False) -> Response[bytes]:
        return Response(msgspec.json.encode(await baseline_page(runtime, first, channels=channels)), media_type="application/json")

    app.register(baseline)
    return app


_app: Litestar | None = None


def __getattr__(name: str) -> Any:
    """``bench._server:app`` is built on first access, so importing this module (for
    :func:`baseline_page`) reads no configuration."""
    global _app  # noqa: PLW0603
    if name == "app":
        if _app is None:
            _app = build_app()
        return _app
    raise AttributeError(name)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, http="httptools", loop="uvloop", log_level="warning", workers=1)
