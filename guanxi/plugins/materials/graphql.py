"""The materials plugin in the GraphQL schema: ``Query.materials``, ``Mutation.createMaterial``,
``Mutation.archiveMaterial`` / ``restoreMaterial`` and ``Mutation.shareMaterial``."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid

import strawberry
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.services.customers import get_customer
from guanxi.graphql.contrib import NodeType
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id, to_global_id
from guanxi.graphql.messaging import Message, SendMessagePayload
from guanxi.graphql.types import Node, User
from guanxi.plugins.materials import library, radar, report, scripts
from guanxi.plugins.materials.models import Material
from guanxi.plugins.materials.routes import link_url

MAX_PAGE = 100


@strawberry.type(name="Material", description="A piece of the material library (素材).")
class MaterialType(Node):
    id: strawberry.ID
    kind: str = strawberry.field(description="article, image, file, video, link or miniprogram")
    title: str
    body: str | None = strawberry.field(description="an article's sanitised HTML; an upload's file name")
    url: str | None = strawberry.field(description="a video's or link's URL (never fetched by the server)")
    media_type: str | None = strawberry.field(description="an upload's type, found from its content")
    size: int | None
    folder: str
    tags: list[str]
    roles: list[str] = strawberry.field(description="roles that may see it; empty: every role")
    has_thumbnail: bool = strawberry.field(description="an uploaded image's thumbnail exists (served at a radar link's /thumb)")
    appid: str | None = strawberry.field(description="a mini-program card's app id")
    page_path: str | None = strawberry.field(description="a mini-program card's page (the share's card adds the radar token)")
    created_at: dt.datetime
    archived_at: dt.datetime | None = strawberry.field(
        description="when it was archived (archiveMaterial): out of the library, not shared again; its links stay open"
    )

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
            has_thumbnail=m.thumb_key is not None,
            appid=m.appid,
            page_path=m.page_path,
            created_at=m.created_at,
            archived_at=m.archived_at,
        )


@strawberry.input
class CreateMaterialInput:
    kind: str = strawberry.field(description="article, video or link (images, files and mini-program cards: POST /materials/upload)")
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
    card: MiniProgramCard | None = strawberry.field(
        default=None, description="a mini-program material's card, to send from the WeCom sidebar (JS-SDK sendChatMessage)"
    )


@strawberry.type(description="What a mini-program card message carries: the page opens with the radar token as `gx`.")
class MiniProgramCard:
    appid: str
    page_path: str = strawberry.field(description="the card's page with `gx=<token>` added; the page reports opens to POST /m/<token>/open")
    title: str
    image_url: str = strawberry.field(description="the cover (the uploaded image) at the radar link")


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
    leads: int = strawberry.field(
        description="viewers who became customers after their first view (identified visitors, forwarded friends)"
    )
    revenue: float = strawberry.field(
        description="money received from viewers after their first view (purchase and payment amounts, tenant currency; "
        "not split between materials)"
    )


@strawberry.type(description="How often one salesperson sent a script.")
class ScriptUseType:
    salesperson: User | None
    count: int
    last_used_at: dt.datetime


@strawberry.type(name="Script", description="A reply snippet (话术); {{name}}-style variables are filled from the customer.")
class ScriptType(Node):
    id: strawberry.ID
    scene: str
    title: str
    text: str
    variables: list[str]
    uses: int = strawberry.field(description="sends by everyone")
    usage: list[ScriptUseType] = strawberry.field(description="sends per salesperson, most first")


@strawberry.input
class CreateScriptInput:
    scene: str = strawberry.field(description="lower_snake_case: first_contact, price_objection, after_sales …")
    title: str
    text: str


@strawberry.type
class ScriptPayload:
    script: ScriptType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _scripts(info: Info, rows: list[scripts.Script]) -> list[ScriptType]:
    """The scripts with their usage: one statement for the uses, one batch for the users."""
    async with info.context.loaders.lock:
        uses = await scripts.uses_of(info.context.session, [r.id for r in rows])
    user_ids = list({u.user_id for us in uses.values() for u in us})
    found = await asyncio.gather(*[info.context.loaders.users.load(i) for i in user_ids])
    people = {u.id: User.from_model(u) for u in found if u is not None}
    return [
        ScriptType(
            id=strawberry.ID(to_global_id("Script", r.id)),
            scene=r.scene,
            title=r.title,
            text=r.text,
            variables=scripts.variables(r.text),
            uses=sum(u.count for u in uses[r.id]),
            usage=[ScriptUseType(salesperson=people.get(u.user_id), count=u.count, last_used_at=u.last_used_at) for u in uses[r.id]],
        )
        for r in rows
    ]


def _roles(info: Info) -> tuple[str, ...]:
    return tuple(info.context.ctx.actor.roles)


@strawberry.type
class MaterialsQuery:
    @strawberry.field(
        description="Materials the caller's roles may see, newest first; filter by folder, tag or kind. "
        "archived: false (the library, default), true (the archived ones) or null (both)."
    )
    async def materials(
        self,
        info: Info,
        folder: str | None = None,
        tag: str | None = None,
        kind: str | None = None,
        first: int = 20,
        archived: bool | None = False,
    ) -> list[MaterialType]:
        if not 0 < first <= MAX_PAGE:
            raise ValidationError(f"first must be between 1 and {MAX_PAGE}", field="first")
        stmt = library.list_stmt(_roles(info), folder=folder, tag=tag, kind=kind, archived=archived)
        rows = await info.context.loaders.execute(stmt.limit(first))
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
                    leads=r.leads,
                    revenue=round(r.revenue, 2),
                )
            )
        return out

    @strawberry.field(description="Scripts (话术) of a scene, or matching every word of search in title or text.")
    async def scripts(self, info: Info, scene: str | None = None, search: str | None = None, first: int = 20) -> list[ScriptType]:
        if not 0 < first <= MAX_PAGE:
            raise ValidationError(f"first must be between 1 and {MAX_PAGE}", field="first")
        rows = await info.context.loaders.execute(scripts.list_stmt(scene=scene, search=search).limit(first))
        return await _scripts(info, list(rows.scalars()))

    @strawberry.field(description="A script's text filled for a customer (what sendScript would send).")
    async def render_script(self, info: Info, script_id: strawberry.ID, customer_id: strawberry.ID) -> str:
        sid = from_global_id(script_id, "Script", field="scriptId")
        cid = from_global_id(customer_id, "Customer", field="customerId")
        async with info.context.loaders.lock:
            script = await scripts.get_script(info.context.session, sid)
            customer = await get_customer(info.context.session, cid)
        return scripts.render(script.text, customer)


@strawberry.type
class MaterialsMutation:
    @strawberry.mutation(description="Add a script (话术) to a scene.")
    async def create_script(self, info: Info, input: CreateScriptInput) -> ScriptPayload:
        async def run() -> ScriptPayload:
            async with info.context.transaction() as tx:
                row = await scripts.create_script(tx, scripts.ScriptInput(scene=input.scene, title=input.title, text=input.text))
            return ScriptPayload(script=(await _scripts(info, [row]))[0])

        return await as_payload(run, ScriptPayload)

    @strawberry.mutation(description="Send a script, filled for the customer, through sendMessage (consent, capabilities, idempotency).")
    async def send_script(
        self, info: Info, script_id: strawberry.ID, customer_id: strawberry.ID, channel: str, idempotency_key: str
    ) -> SendMessagePayload:
        async def run() -> SendMessagePayload:
            sid = from_global_id(script_id, "Script", field="scriptId")
            cid = from_global_id(customer_id, "Customer", field="customerId")
            async with info.context.transaction() as tx:
                row, created = await scripts.send_script(tx, sid, cid, channel, idempotency_key)
            return SendMessagePayload(message=Message.from_model(row), created=created)

        return await as_payload(run, SendMessagePayload)

    @strawberry.mutation(description="Create an article (HTML sanitised), a video or a link card.")
    async def create_material(self, info: Info, input: CreateMaterialInput) -> MaterialPayload:
        async def run() -> MaterialPayload:
            if input.kind in library.UPLOAD_KINDS:
                raise ValidationError("images, files and mini-program cards are uploaded through POST /materials/upload", field="kind")
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

    @strawberry.mutation(
        description="Archive a material: out of the library (materials(archived: true) lists it) and not shared again; "
        "the radar links already sent stay open and its views stay in the report."
    )
    async def archive_material(self, info: Info, id: strawberry.ID) -> MaterialPayload:
        return await _set_archived(info, id, True)

    @strawberry.mutation(description="Bring an archived material back into the library.")
    async def restore_material(self, info: Info, id: strawberry.ID) -> MaterialPayload:
        return await _set_archived(info, id, False)

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
            token = url.rsplit("/", 1)[1]
            card = None
            if material.kind == "miniprogram" and material.appid and material.page_path:
                sep = "&" if "?" in material.page_path else "?"
                card = MiniProgramCard(
                    appid=material.appid, page_path=f"{material.page_path}{sep}gx={token}", title=material.title, image_url=f"{url}/file"
                )
            return MaterialSharePayload(share=MaterialShareType(token=token, url=url, card=card))

        return await as_payload(run, MaterialSharePayload)


async def _set_archived(info: Info, id: strawberry.ID, archived: bool) -> MaterialPayload:
    async def run() -> MaterialPayload:
        mid = from_global_id(id, "Material", field="id")
        async with info.context.transaction() as tx:
            row = await library.set_archived(tx, mid, _roles(info), archived)
        return MaterialPayload(material=MaterialType.from_model(row))

    return await as_payload(run, MaterialPayload)


async def _by_id(info: Info, ids: list[uuid.UUID]) -> dict[uuid.UUID, MaterialType]:
    rows = await info.context.loaders.execute(library.list_stmt(_roles(info), archived=None).where(Material.id.in_(ids)))
    return {m.id: MaterialType.from_model(m) for m in rows.scalars()}


NODES = (NodeType("Material", _by_id, guard="Query.materials"),)
