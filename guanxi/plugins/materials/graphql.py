"""The materials plugin in the GraphQL schema: ``Query.materials``, ``Mutation.createMaterial``
and ``Mutation.shareMaterial``."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid

import strawberry
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.graphql.contrib import NodeType
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.types import Node, User
from guanxi.plugins.materials import library, radar, report
from guanxi.plugins.materials.models import Material
from guanxi.plugins.materials.routes import link_url

MAX_PAGE = 100


@strawberry.type(name="Material", description="A piece of the material library (素材).")
class MaterialType(Node):
    id: strawberry.ID
    kind: str = strawberry.field(description="article, image, file, video or link")
    title: str
    body: str | None = strawberry.field(description="an article's sanitised HTML; an upload's file name")
    url: str | None = strawberry.field(description="a video's or link's URL (never fetched by the server)")
    media_type: str | None = strawberry.field(description="an upload's type, found from its content")
    size: int | None
    folder: str
    tags: list[str]
    roles: list[str] = strawberry.field(description="roles that may see it; empty: every role")
    created_at: dt.datetime

    @classmethod
    def from_model(cls, m: Material) -> MaterialType:
        return cls(
            id=strawberry.ID(to_global_id("Material", m.id)),
            kind=m.kind,
            title=m.title,
            body=m.body,
            url=m.url,
            media_type=m.media_type,
            size=m.size,
            folder=m.folder,
            tags=library.split(m.tags),
            roles=library.split(m.roles),
            created_at=m.created_at,
        )


@strawberry.input
class CreateMaterialInput:
    kind: str = strawberry.field(description="article, video or link (images and files: POST /materials/upload)")
    title: str
    body: str | None = strawberry.field(default=None, description="an article's HTML (sanitised when stored)")
    url: str | None = None
    folder: str = ""
    tags: list[str] = strawberry.field(default_factory=list)
    roles: list[str] = strawberry.field(default_factory=list)


@strawberry.type
class MaterialPayload:
    material: MaterialType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A radar link: open it to see the material; views are recorded for the sharer.")
class MaterialShareType:
    token: str
    url: str


@strawberry.type
class MaterialSharePayload:
    share: MaterialShareType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.enum(description="What a content report row is about.")
class MaterialReportBy(enum.Enum):
    MATERIAL = "material"
    SALESPERSON = "sharer"


@strawberry.type(description="Content performance of one material or one salesperson (the sharer of the links).")
class MaterialReportRow:
    material: MaterialType | None = strawberry.field(description="set when grouped by material (null: not visible to you)")
    salesperson: User | None = strawberry.field(description="set when grouped by salesperson")
    views: int = strawberry.field(description="openings by people (previews by crawlers excluded)")
    unique_viewers: int = strawberry.field(description="distinct customers, or anonymous browsers until identified")
    average_read_ms: int
    previews: int = strawberry.field(description="openings by bots and link-preview crawlers")
    forwards: int = strawberry.field(description="child links made by forwarding")


def _roles(info: Info) -> tuple[str, ...]:
    return tuple(info.context.ctx.actor.roles)


@strawberry.type
class MaterialsQuery:
    @strawberry.field(description="Materials the caller's roles may see, newest first; filter by folder, tag or kind.")
    async def materials(
        self, info: Info, folder: str | None = None, tag: str | None = None, kind: str | None = None, first: int = 20
    ) -> list[MaterialType]:
        if not 0 < first <= MAX_PAGE:
            raise ValidationError(f"first must be between 1 and {MAX_PAGE}", field="first")
        rows = await info.context.loaders.execute(library.list_stmt(_roles(info), folder=folder, tag=tag, kind=kind).limit(first))
        return [MaterialType.from_model(m) for m in rows.scalars()]

    @strawberry.field(description="Views, unique viewers, average read time and forwards per material or per salesperson.")
    async def material_report(
        self, info: Info, by: MaterialReportBy = MaterialReportBy.MATERIAL, first: int = 20
    ) -> list[MaterialReportRow]:
        if not 0 < first <= MAX_PAGE:
            raise ValidationError(f"first must be between 1 and {MAX_PAGE}", field="first")
        async with info.context.loaders.lock:
            rows = await report.report(info.context.session, by.value, first)
        out = []
        materials = await _by_id(info, [r.key for r in rows]) if by is MaterialReportBy.MATERIAL else {}
        users = await asyncio.gather(*[info.context.loaders.users.load(r.key) for r in rows]) if by is MaterialReportBy.SALESPERSON else []
        people = {u.id: User.from_model(u) for u in users if u is not None}
        for r in rows:
            person = people.get(r.key)
            out.append(
                MaterialReportRow(
                    material=materials.get(r.key),
                    salesperson=person,
                    views=r.views,
                    unique_viewers=r.unique_viewers,
                    average_read_ms=r.average_read_ms,
                    previews=r.previews,
                    forwards=r.forwards,
                )
            )
        return out


@strawberry.type
class MaterialsMutation:
    @strawberry.mutation(description="Create an article (HTML sanitised), a video or a link card.")
    async def create_material(self, info: Info, input: CreateMaterialInput) -> MaterialPayload:
        async def run() -> MaterialPayload:
            if input.kind in ("image", "file"):
                raise ValidationError("images and files are uploaded through POST /materials/upload", field="kind")
            data = library.MaterialInput(
                kind=input.kind,
                title=input.title,
                body=input.body,
                url=input.url,
                folder=input.folder,
                tags=list(input.tags),
                roles=list(input.roles),
            )
            async with info.context.transaction() as tx:
                row = await library.create_material(tx, data)
            return MaterialPayload(material=MaterialType.from_model(row))

        return await as_payload(run, MaterialPayload)

    @strawberry.mutation(description="A radar link of a material for a customer (or for anyone, without customerId).")
    async def share_material(
        self, info: Info, material_id: strawberry.ID, customer_id: strawberry.ID | None = None
    ) -> MaterialSharePayload:
        async def run() -> MaterialSharePayload:
            mid = from_global_id(material_id, "Material", field="materialId")
            cid = from_global_id(customer_id, "Customer", field="customerId") if customer_id else None
            async with info.context.transaction() as tx:
                material = await library.material_for(tx.session, mid, _roles(info))
                row = await radar.share(tx, material, cid)
            url = link_url(info.context.rt, row.id)
            return MaterialSharePayload(share=MaterialShareType(token=url.rsplit("/", 1)[1], url=url))

        return await as_payload(run, MaterialSharePayload)


async def _by_id(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, MaterialType]:
    rows = await info.context.loaders.execute(library.list_stmt(_roles(info)).where(Material.id.in_(ids)))
    return {m.id: MaterialType.from_model(m) for m in rows.scalars()}


NODES = (NodeType("Material", _by_id, guard="Query.materials"),)
