"""CSV import of customers: validation first, all or nothing, matching instead of duplicates,
dry runs, custom attributes, streaming with progress, events after commit."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from guanxi import hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import AuditEvent, ContactPoint, Customer, CustomerTag, Identity, Stage, StageChange, Tag
from guanxi.core.runtime import Runtime
from guanxi.core.services import customers
from guanxi.core.services.users import create_user
from guanxi.importer.csv_import import MAX_LISTED_ERRORS, ImportReport, RowError, import_customers
from guanxi.testing.sql import count_statements


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


async def count(runtime: Runtime, tenant_id: uuid.UUID, model: Any) -> int:
    async with runtime.session(tenant_id) as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


class Recorder:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.updated: list[dict[str, Any]] = []

    @hookimpl
    def guanxi_customer_created(self, event):  # type: ignore[no-untyped-def]
        self.created.append(event.customer.display_name)

    @hookimpl
    async def guanxi_customer_updated(self, event):  # type: ignore[no-untyped-def]
        self.updated.append(event.changed)


RECORDER = Recorder()


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"recorder": RECORDER}


async def test_import_creates_customers_with_tags_identity_stage_and_owner(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    async with runtime.transaction(ctx) as tx:
        owner = await create_user(tx, email="emma@example.com", name="Emma", role="sales")
    path = write_csv(
        tmp_path / "customers.csv",
        ["Name", "Company", "Phones", "EMAIL", "Stage", "Owner_Email", "Tags", "Source", "External ID", "Channel"],
        [
            ["王芳", "上海云帆教育科技有限公司", "138-0013-8000; +44 20 7946 0958", "Wang.Fang@Example.com", "sql", "EMMA@example.com",
             "行业/教育; vip", "event", "wmAbC123", "wecom"],
            ["Liam Smith", "", "", "liam@example.com", "", "", "", "", "", ""],
        ],
    )  # fmt: skip
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert (report.rows_read, report.created, report.updated, report.errors, report.dry_run) == (2, 2, 0, [], False)
    async with runtime.session(ctx.tenant_id) as s:
        wang = (await s.execute(select(Customer).where(Customer.display_name == "王芳"))).scalar_one()
        assert wang.company == "上海云帆教育科技有限公司" and wang.source == "event" and wang.owner_id == owner.id
        assert wang.phones == ["13800138000", "+442079460958"] and wang.emails == ["wang.fang@example.com"]
        assert wang.search_text == customers.search_text(wang)
        stage = await s.get(Stage, (ctx.tenant_id, wang.stage_id))
        assert stage is not None and stage.key == "sql"
        history = (await s.execute(select(StageChange).where(StageChange.customer_id == wang.id))).scalars().all()
        assert [(h.from_stage_id, h.to_stage_id, h.reason) for h in history] == [(None, wang.stage_id, "imported")]
        labels = (
            await s.execute(
                select(Tag.group_name, Tag.name).join(CustomerTag, CustomerTag.tag_id == Tag.id).where(CustomerTag.customer_id == wang.id)
            )
        ).all()
        assert sorted(labels) == [("", "vip"), ("行业", "教育")]
        identity = (await s.execute(select(Identity).where(Identity.customer_id == wang.id))).scalar_one()
        assert (identity.channel, identity.external_id) == ("wecom", "wmAbC123")
        points = set(await s.execute(select(ContactPoint.kind, ContactPoint.value).where(ContactPoint.customer_id == wang.id)))
        assert points == {("phone", "13800138000"), ("phone", "+442079460958"), ("email", "wang.fang@example.com")}
        liam = (await s.execute(select(Customer).where(Customer.display_name == "Liam Smith"))).scalar_one()
        first = (await s.execute(select(Stage).order_by(Stage.position).limit(1))).scalar_one()
        assert liam.stage_id == first.id and liam.owner_id is None and liam.company is None
        audit = (await s.execute(select(AuditEvent).where(AuditEvent.action == "customer.import"))).scalar_one()
        assert set(audit.changes["created_ids"]) == {str(wang.id), str(liam.id)} and audit.changes["file"] == "customers.csv"


async def test_one_bad_row_writes_nothing_and_reports_row_column_and_reason(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    rows = [[f"Customer {i}", f"c{i}@example.com", "lead", ""] for i in range(10)]
    rows[3] = ["Bad email", "not-an-email", "lead", ""]  # row 5 of the file (header = row 1)
    rows[6] = ["", "c6@example.com", "won!", "///"]  # row 8: three problems
    path = write_csv(tmp_path / "bad.csv", ["display_name", "email", "stage", "tags"], rows)
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert (report.rows_read, report.created, report.updated, report.error_count) == (10, 0, 0, 4)
    assert report.errors[0] == RowError(row=5, column="email", message="'not-an-email' is not an email address")
    assert [(e.row, e.column) for e in report.errors[1:]] == [(8, "display_name"), (8, "stage"), (8, "tags")]
    assert "unknown stage 'won!'" in report.errors[2].message and "lead" in report.errors[2].message
    assert await count(runtime, ctx.tenant_id, Customer) == 0
    assert await count(runtime, ctx.tenant_id, AuditEvent) == 0


async def test_header_problems_are_reported_on_row_one(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", ["company", "external_id"], [["ACME", "x"]])
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert {(e.row, e.column) for e in report.errors} == {(1, "display_name"), (1, "channel")}
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert (await import_customers(runtime, ctx.tenant_id, empty)).errors[0].row == 1


async def test_excel_bom_blank_lines_and_non_utf8_bytes(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    """A UTF-8 BOM is fine and blank lines are skipped (they still count as rows); bytes that
    are not UTF-8 (a GBK export) are reported with their line and nothing is written."""
    ok = tmp_path / "excel.csv"
    ok.write_bytes("\ufeffName,Email\r\n张伟,zw@example.com\r\n\r\nLi Na,bad\r\n".encode())
    report = await import_customers(runtime, ctx.tenant_id, ok)
    assert report.rows_read == 2 and [(e.row, e.column) for e in report.errors] == [(4, "Email")]
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("name,company\nAnn,ACME\n张伟,上海公司\n".encode("gbk"))
    report = await import_customers(runtime, ctx.tenant_id, gbk)
    assert [(e.row, e.column) for e in report.errors] == [(3, "")] and "not valid" in report.errors[0].message
    assert await count(runtime, ctx.tenant_id, Customer) == 0


async def test_unknown_owner_and_a_row_longer_than_the_header_are_errors(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", ["name", "owner_email"], [["Ann", "nobody@example.com"], ["Bob", "", "extra"]])
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert [(e.row, e.column) for e in report.errors] == [(2, "owner_email"), (3, "")]
    assert "no user with email" in report.errors[0].message


async def test_errors_listed_are_capped_but_all_counted(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "many.csv", ["name", "phone"], [[f"C{i}", "x"] for i in range(MAX_LISTED_ERRORS + 50)])
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert len(report.errors) == MAX_LISTED_ERRORS and report.error_count == MAX_LISTED_ERRORS + 50


@pytest.mark.plugins("recorder")
async def test_duplicate_email_updates_the_existing_customer_instead_of_creating_one(
    runtime: Runtime, ctx: RequestContext, tmp_path: Path
) -> None:
    async with runtime.transaction(ctx) as tx:
        ann = await customers.create_customer(
            tx, customers.CustomerInput(display_name="Ann", emails=["ann@example.com"], phones=["13900000001"])
        )
    RECORDER.created.clear()
    RECORDER.updated.clear()
    path = write_csv(
        tmp_path / "dupes.csv",
        ["display_name", "email", "phone", "stage", "tags", "vip level"],
        [
            ["Ann Lee", "ANN@example.com", "13900000002", "mql", "vip", "gold"],  # matches Ann by email
            ["New Person", "new@example.com", "13700000000", "", "", ""],
            ["New P.", "", "137 0000 0000", "", "意向/高", ""],  # same phone as the row above: same customer
        ],
    )
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert (report.created, report.updated, report.errors) == (1, 2, [])
    assert await count(runtime, ctx.tenant_id, Customer) == 2
    async with runtime.session(ctx.tenant_id) as s:
        updated = await s.get(Customer, (ctx.tenant_id, ann.id))
        assert updated is not None
        assert (updated.display_name, updated.emails, updated.phones) == ("Ann Lee", ["ann@example.com"], ["13900000001", "13900000002"])
        assert updated.attributes == {"vip level": "gold"}
        points = set((await s.execute(select(ContactPoint.value).where(ContactPoint.customer_id == ann.id))).scalars())
        assert points == {"ann@example.com", "13900000001", "13900000002"}
        reasons = (
            (await s.execute(select(StageChange.reason).where(StageChange.customer_id == ann.id).order_by(StageChange.changed_at)))
            .scalars()
            .all()
        )
        assert reasons == ["created", "imported"]
        new = (await s.execute(select(Customer).where(Customer.id != ann.id))).scalar_one()
        assert new.display_name == "New P." and new.phones == ["13700000000"] and new.emails == ["new@example.com"]
    assert RECORDER.created == ["New P."]
    assert len(RECORDER.updated) == 1 and set(RECORDER.updated[0]) >= {"display_name", "phones", "attributes"}
    # importing the same file again creates nothing: every row matches
    again = await import_customers(runtime, ctx.tenant_id, path)
    assert (again.created, again.updated) == (0, 3)
    assert await count(runtime, ctx.tenant_id, Customer) == 2
    assert await count(runtime, ctx.tenant_id, CustomerTag) == 2


async def test_identity_column_matches_the_customer_that_owns_the_account(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    from guanxi.core.services.identities import IdentityInput, attach_identity

    async with runtime.transaction(ctx) as tx:
        bo = await customers.create_customer(tx, customers.CustomerInput(display_name="Bo"))
        await attach_identity(tx, bo.id, IdentityInput(channel="douyin", external_id="_000abc", nickname="小波"))
    path = write_csv(tmp_path / "i.csv", ["name", "channel", "external_id", "email"], [["Bo Wang", "douyin", "_000abc", "bo@example.com"]])
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert (report.created, report.updated) == (0, 1)
    async with runtime.session(ctx.tenant_id) as s:
        c = await s.get(Customer, (ctx.tenant_id, bo.id))
        assert c is not None and c.emails == ["bo@example.com"] and "小波" in c.search_text
        assert (await s.execute(select(func.count()).select_from(Identity))).scalar_one() == 1


@pytest.mark.plugins("recorder")
async def test_dry_run_reports_exact_counts_and_writes_or_fires_nothing(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    async with runtime.transaction(ctx) as tx:
        await customers.create_customer(tx, customers.CustomerInput(display_name="Old", emails=["old@example.com"]))
    RECORDER.created.clear()
    path = write_csv(
        tmp_path / "dry.csv", ["name", "email", "tags"], [["Old", "old@example.com", "x"], ["A", "a@example.com", "y"], ["B", "", "y"]]
    )
    report = await import_customers(runtime, ctx.tenant_id, path, dry_run=True)
    assert (report.dry_run, report.rows_read, report.created, report.updated, report.errors) == (True, 3, 2, 1, [])
    assert await count(runtime, ctx.tenant_id, Customer) == 1
    for model in (Tag, CustomerTag, StageChange, ContactPoint):
        assert await count(runtime, ctx.tenant_id, model) == (1 if model in (StageChange, ContactPoint) else 0)
    async with runtime.session(ctx.tenant_id) as s:
        assert (await s.execute(select(AuditEvent.action).where(AuditEvent.action == "customer.import"))).first() is None
    assert RECORDER.created == []


async def test_unknown_column_becomes_an_attribute_with_one_warning(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "attrs.csv", ["name", "WeChat Level", "birthday"], [[f"C{i}", "gold" if i % 2 else "", "05-01"] for i in range(50)]
    )
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert report.created == 50 and report.errors == []
    assert len(report.warnings) == 2 and "'WeChat Level'" in report.warnings[0] and "'birthday'" in report.warnings[1]
    async with runtime.session(ctx.tenant_id) as s:
        attrs = {c.display_name: c.attributes for c in (await s.execute(select(Customer))).scalars()}
    assert attrs["C1"] == {"WeChat Level": "gold", "birthday": "05-01"}
    assert attrs["C2"] == {"birthday": "05-01"}  # an empty cell sets nothing


async def test_large_file_streams_in_batches_with_progress(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    n = 20_000
    path = tmp_path / "large.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["display_name", "company", "phones", "emails", "stage", "tags", "source", "external_id", "channel"])
        for i in range(n):
            writer.writerow([
                f"客户{i}", f"公司{i % 300}", f"+86138{i:08d}", f"c{i}@example.com", ("lead", "mql", "sql")[i % 3],
                ("vip", "行业/教育", "行业/零售;意向/高", "")[i % 4], "web", f"wm{i:012d}", "wecom",
            ])  # fmt: skip
    calls: list[tuple[int, int | None]] = []
    report = await import_customers(runtime, ctx.tenant_id, path, on_progress=lambda done, total: calls.append((done, total)))
    assert isinstance(report, ImportReport)
    assert (report.rows_read, report.created, report.updated, report.error_count) == (n, n, 0, 0)
    validating = [c for c in calls if c[1] is None]
    writing = [c for c in calls if c[1] is not None]
    assert len(validating) >= n // 500 and len(writing) >= n // 500
    assert [d for d, _ in writing] == sorted(d for d, _ in writing) and writing[-1] == (n, n)
    assert await count(runtime, ctx.tenant_id, Customer) == n
    assert await count(runtime, ctx.tenant_id, Identity) == n
    assert await count(runtime, ctx.tenant_id, ContactPoint) == 2 * n
    assert await count(runtime, ctx.tenant_id, Tag) == 4
    assert await count(runtime, ctx.tenant_id, AuditEvent) == n // 500


async def test_the_example_file_in_fixtures_imports_cleanly(runtime: Runtime, ctx: RequestContext) -> None:
    """tests/fixtures/customers_example.csv is the sample shown to users; keep it valid."""
    path = Path(__file__).parents[1] / "fixtures" / "customers_example.csv"
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert (report.created, report.updated, report.errors, len(report.warnings)) == (4, 0, [], 1)
    assert await count(runtime, ctx.tenant_id, Identity) == 2


async def test_import_and_update_customer_merge_attributes_alike(runtime: Runtime, ctx: RequestContext, tmp_path: Path) -> None:
    """One semantics for attributes: the import's attribute columns and updateCustomer's patch
    both set the keys given and keep the others (an empty cell, like a key not sent, removes nothing)."""
    start = {"grade": "A", "city": "上海", "prefs": {"lang": "zh"}}
    async with runtime.transaction(ctx) as tx:
        by_import = await customers.create_customer(
            tx, customers.CustomerInput(display_name="Ann", emails=["ann@example.com"], attributes=start)
        )
        by_api = await customers.create_customer(
            tx, customers.CustomerInput(display_name="Bob", emails=["bob@example.com"], attributes=start)
        )
    path = write_csv(tmp_path / "grades.csv", ["display_name", "email", "grade", "city"], [["Ann", "ann@example.com", "B", ""]])
    report = await import_customers(runtime, ctx.tenant_id, path)
    assert (report.updated, report.errors) == (1, [])
    async with runtime.transaction(ctx) as tx:
        await customers.update_customer(tx, by_api.id, customers.CustomerPatch(attributes={"grade": "B"}))
    async with runtime.session(ctx.tenant_id) as s:
        imported, patched = (await s.get(Customer, (ctx.tenant_id, by_import.id))), (await s.get(Customer, (ctx.tenant_id, by_api.id)))
        assert imported is not None and patched is not None
        assert imported.attributes == patched.attributes == {"grade": "B", "city": "上海", "prefs": {"lang": "zh"}}


def test_merge_patch_follows_rfc_7396_examples() -> None:
    """The examples of RFC 7396, appendix A."""
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, expected in cases:
        assert customers.merge_patch(target, patch) == expected


async def test_columns_named_like_custom_fields_set_typed_values_and_bad_cells_are_refused(
    runtime: Runtime, ctx: RequestContext, tmp_path: Path
) -> None:
    """A column whose header is a custom field's key or label sets that field (checked like the
    API checks it); a bad cell is an error naming row and column and nothing is written; a later
    import replaces the value of the fields it names."""
    from guanxi.core.domain.models import CustomerFieldValue
    from guanxi.core.services import fields

    async with runtime.transaction(ctx) as tx:
        await create_user(tx, email="emma@example.com", name="Emma", role="sales")
        await fields.define_field(tx, fields.FieldInput(key="grade", label="客户等级", kind="single_choice", choices=["A", "B", "C"]))
        await fields.define_field(tx, fields.FieldInput(key="budget", label="Budget", kind="money"))
        await fields.define_field(tx, fields.FieldInput(key="products", label="Products", kind="multi_choice", choices=["crm", "bi"]))
        await fields.define_field(tx, fields.FieldInput(key="vip", label="VIP", kind="boolean"))
        await fields.define_field(tx, fields.FieldInput(key="advisor", label="Advisor", kind="user"))
        await fields.define_field(tx, fields.FieldInput(key="renewal", label="Renewal", kind="date"))
    header = ["name", "email", "客户等级", "budget", "Products", "vip", "advisor", "renewal"]
    bad = write_csv(
        tmp_path / "bad.csv",
        header,
        [["Wang", "w@x.cn", "Z", "lots", "crm;erp", "maybe", "nobody@x.cn", "soon"]],
    )
    report = await import_customers(runtime, ctx.tenant_id, bad)
    assert {(e.row, e.column) for e in report.errors} == {
        (2, "客户等级"), (2, "budget"), (2, "Products"), (2, "vip"), (2, "advisor"), (2, "renewal"),
    }  # fmt: skip
    assert await count(runtime, ctx.tenant_id, Customer) == 0
    good = write_csv(
        tmp_path / "good.csv",
        header,
        [
            ["Wang", "w@x.cn", "A", "12000.50", "bi;crm", "是", "emma@example.com", "2027-03-01"],
            ["Li", "l@x.cn", "", "300", "", "no", "", ""],
        ],
    )
    report = await import_customers(runtime, ctx.tenant_id, good)
    assert report.errors == [] and report.created == 2
    assert not any("客户等级" in w for w in report.warnings)  # not stored as an attribute
    async with runtime.session(ctx.tenant_id) as s:
        ids = {c.display_name: c.id for c in (await s.execute(select(Customer))).scalars()}
        values = await fields.field_values_of(s, ids.values())
        wang = {d.key: v for d, v in values[ids["Wang"]]}
        li = {d.key: v for d, v in values[ids["Li"]]}
    assert wang["grade"] == "A" and str(wang["budget"]) == "12000.500000" and wang["products"] == ["crm", "bi"]
    assert wang["vip"] is True and str(wang["renewal"]) == "2027-03-01" and isinstance(wang["advisor"], uuid.UUID)
    assert li == {"budget": wang["budget"].__class__("300"), "vip": False}
    again = write_csv(tmp_path / "again.csv", ["email", "name", "grade"], [["w@x.cn", "Wang", "B"]])
    report = await import_customers(runtime, ctx.tenant_id, again)
    assert report.updated == 1
    async with runtime.session(ctx.tenant_id) as s:
        wang = {d.key: v for d, v in (await fields.field_values_of(s, [ids["Wang"]]))[ids["Wang"]]}
        grades = (await s.execute(select(func.count()).select_from(CustomerFieldValue))).scalar_one()
    assert wang["grade"] == "B" and wang["vip"] is True
    assert grades == 7 + 2  # Wang: grade, budget, two products, vip, advisor, renewal; Li: budget, vip


def _numbered_rows(start: int, n: int) -> list[list[Any]]:
    return [
        [f"C{i}", f"+86138{i:08d}", f"c{i}@example.com", ("lead", "mql")[i % 2], f"g/{i % 3};vip", f"wm{i}", "wecom"]
        for i in range(start, start + n)
    ]


async def _import_statements(runtime: Runtime, ctx: RequestContext, path: Path, batch_size: int) -> int:
    """Statements of one import, less the tenant's cached settings (plugins enabled, status),
    which are re-read when their cache expires, not per row or batch."""
    with count_statements(runtime.engine) as seen:
        report = await import_customers(runtime, ctx.tenant_id, path, batch_size=batch_size)
    assert report.error_count == 0
    return len([s for s in seen if not s.lstrip().startswith(("SELECT tenants.", "SELECT tenant_plugins."))])


async def test_each_write_batch_costs_the_same_statements_however_many_rows_it_holds(
    runtime: Runtime, ctx: RequestContext, tmp_path: Path
) -> None:
    """N+1 guard: a batch of new customers is 3 key lookups (identities, emails, phones), one
    executemany per table (customers, contact points, identities, stage history, tag links) and
    one audit entry, whether it holds 20 rows or 60; a batch of rows that match existing
    customers is 3 lookups, the customers, their nicknames and tags, and one audit entry."""
    header = ["name", "phone", "email", "stage", "tags", "external_id", "channel"]
    warm_up = write_csv(tmp_path / "warm-up.csv", header, _numbered_rows(0, 3))  # creates the tags
    await _import_statements(runtime, ctx, warm_up, 10)
    counts: dict[tuple[int, int], int] = {}
    paths: dict[tuple[int, int], Path] = {}
    start = 3
    for batches, size in ((2, 20), (3, 20), (3, 60)):
        paths[batches, size] = write_csv(tmp_path / f"{batches}x{size}.csv", header, _numbered_rows(start, batches * size))
        start += batches * size
        counts[batches, size] = await _import_statements(runtime, ctx, paths[batches, size], size)
    # on PostgreSQL (no row-level security here) the five tables' rows go in by COPY, which is
    # one call per table and batch too but no cursor statement: 4 statements are left
    copies = 5 if runtime.engine.dialect.name == "postgresql" and not runtime.settings.database.row_level_security else 0
    assert counts[3, 20] - counts[2, 20] == 9 - copies
    assert counts[3, 60] == counts[3, 20]
    again = {key: await _import_statements(runtime, ctx, path, key[1]) for key, path in paths.items()}
    assert again[3, 20] - again[2, 20] == 7
    assert again[3, 60] == again[3, 20]


@pytest.mark.parametrize("tuning", [True, False])
async def test_import_runs_with_the_collector_tuned_and_restores_it(
    runtime: Runtime, ctx: RequestContext, tmp_path: Path, tuning: bool
) -> None:
    """With ``server.gc_tuning`` (the default) both passes run with the heap frozen and the
    server's thresholds; Python's settings are back when the import returns. Off: untouched."""
    import gc

    import msgspec

    from guanxi.core.base.collector import THRESHOLDS

    runtime.settings = msgspec.structs.replace(runtime.settings, server=msgspec.structs.replace(runtime.settings.server, gc_tuning=tuning))
    path = write_csv(tmp_path / "c.csv", ["display_name", "email"], [[f"C{i}", f"c{i}@example.com"] for i in range(30)])
    before = (gc.get_threshold(), gc.get_freeze_count())
    seen: set[tuple[tuple[int, int, int], bool]] = set()
    report = await import_customers(
        runtime, ctx.tenant_id, path, batch_size=10, on_progress=lambda *_: seen.add((gc.get_threshold(), gc.get_freeze_count() > 0))
    )
    assert report.created == 30
    assert seen == ({(THRESHOLDS, True)} if tuning else {(before[0], before[1] > 0)})
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
