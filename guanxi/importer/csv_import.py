"""CSV import of customers (``guanxi import customers FILE``).

**File.** UTF-8 (a BOM is fine), comma-separated, a header row first. Column names are matched
case-insensitively (spaces and dashes count as underscores):

=====================  =========================================================================
``display_name``       required (``name`` is accepted instead)
``company``            company name
``phone`` / ``phones`` phone numbers separated by ``;`` (normalised like the API does)
``email`` / ``emails`` email addresses separated by ``;``
``stage``              stage key of the default pipeline (``lead``, ``mql``, ...)
``owner_email``        email of an active staff user of the tenant
``tags``               labels separated by ``;``, each ``name`` or ``group/name``
``source``             where the customer came from (``web``, ``event``, ...)
``external_id``        with ``channel``: the customer's account on that channel (an Identity)
=====================  =========================================================================

A column named like a custom field (its key, or its label, case-insensitively) sets that field,
checked like the API checks it (:mod:`guanxi.core.services.fields`): numbers and money as
``12000.50``, dates as ``YYYY-MM-DD``, multi-choice values separated by ``;``, booleans as
``true``/``false`` (``yes``/``no``, ``1``/``0``, ``是``/``否``), user fields by the user's e-mail; a
non-empty cell replaces the customer's value of that field. Any other column becomes a custom
attribute (``Customer.attributes[<header>]``, a string); the report warns once per such column.
Empty cells mean "no value"; blank lines are skipped. Row numbers count CSV records with the
header as row 1, as a spreadsheet shows them (an undecodable byte is reported with its line
number).

**All or nothing.** Pass 1 reads the file (streaming, row by row) and validates every row with
the services' own rules (:func:`~guanxi.core.services.customers.normalize_phone`,
:func:`~guanxi.core.services.customers.normalize_email`, :func:`~guanxi.core.services.tags.split_tag`,
the stage keys, the tenant's users). If any row is invalid nothing is written; the report lists
the errors (the first :data:`MAX_LISTED_ERRORS`, plus ``error_count``). The valid rows wait in a
temporary spool (:mod:`guanxi.importer.spool`); pass 2 reads them back and writes them in batches
of ``batch_size`` rows inside ONE transaction: an error or a crash part-way leaves the database
as it was. Memory stays bounded by the batch size.

**Matching (no duplicates).** A row updates an existing customer instead of creating one when
one of its keys already belongs to a customer, tried in this order: the identity
(``channel`` + ``external_id``), then each email, then each phone. The first key that matches
decides; a value shared by several customers picks the oldest of them. Rows earlier in the same
file count as existing customers, so duplicates within the file collapse into one customer.
An update sets the display name and every non-empty scalar cell (company, stage, owner, source),
adds phones, emails, tags and the identity (never removes any), and merges attributes as
``updateCustomer`` does (:func:`~guanxi.core.services.customers.merge_patch`: the row's
attribute columns are set, the customer's other attributes stay; an empty cell removes nothing). A stage
change is recorded in the stage history (reason ``imported``). New customers without a stage
start in the pipeline's first stage.

**Audit and events.** One audit entry ``customer.import`` per batch lists the ids created and
updated. After the commit, ``guanxi_customer_created`` fires for every created customer and
``guanxi_customer_updated`` for every existing customer whose fields changed, as for the API.
They are in-process calls; the import keeps the needed ids (or changes) in memory only when a
plugin implements the hook, so an import without listeners costs nothing extra. Stage, tag and identity events are not fired
separately (the created/updated snapshot carries the result). A dry run does the whole import
in a transaction it rolls back, so its counts are exact and nothing is written or fired (on
SQLite it holds the write lock meanwhile, like a real import).

**Progress.** ``on_progress(done, total)`` is called every batch: during validation ``done`` is
the number of rows checked and ``total`` is None (unknown until the file has been read); while
writing, ``done`` is the number of rows written and ``total`` the number of data rows.

**Speed.** Every row is parsed and checked once. A write batch costs the same number of SQL
statements whatever its size and whatever the size of the tenant (:mod:`guanxi.importer.writing`:
one lookup per key kind, one Core executemany per table, one audit entry), so the cost per row
stays flat as the file grows. Both passes run with the garbage collector tuned as in a server
(:func:`~guanxi.core.base.collector.tuned_gc`: the heap alive at the start frozen, the young
generation collected less often; ``server.gc_tuning = false`` keeps Python's defaults), which
took a sixth off the time of an import on SQLite. ``bench/import_customers.py`` compares an
import with a raw ``executemany`` of the same rows into the same tables. On PostgreSQL the import refreshes the
planner statistics (``ANALYZE``) as the tenant grows inside the transaction, see
:func:`~guanxi.importer.matching.refresh_statistics`.

The module is split by what each part holds: :mod:`~guanxi.importer.reading` (CSV records and
the header), :mod:`~guanxi.importer.validation` (rows checked), :mod:`~guanxi.importer.spool`,
:mod:`~guanxi.importer.matching` (existing customers by key), :mod:`~guanxi.importer.writing`
and :mod:`~guanxi.importer.events`.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from guanxi.core.base.collector import tuned_gc
from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ValidationError
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services import counts
from guanxi.core.storage.db import WRITE
from guanxi.importer.events import fire_events
from guanxi.importer.matching import refresh_statistics
from guanxi.importer.reading import FileError, Header, is_blank, parse_header, records
from guanxi.importer.report import MAX_LISTED_ERRORS, ImportReport, RowError
from guanxi.importer.spool import RowSpool
from guanxi.importer.validation import Lookups, Row, RowParser
from guanxi.importer.writing import Writer

__all__ = ["MAX_LISTED_ERRORS", "ImportReport", "RowError", "import_customers"]

IMPORT_ACTOR = Actor(kind="system", name="import")


async def import_customers(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    path: str | os.PathLike[str],
    *,
    actor: Actor | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int, int | None], None] | None = None,
    batch_size: int = 500,
    encoding: str = "utf-8-sig",
) -> ImportReport:
    """Import customers from a CSV file into a tenant, all or nothing (see the module docs).

    :param actor: who imports (recorded in the audit trail and stage history); default: system.
    :param dry_run: validate and match everything, then roll back: nothing is written or fired.
    :param on_progress: called as ``on_progress(done, total)`` every batch; ``total`` is None
        while validating and the number of data rows while writing.
    :param batch_size: rows per write batch (memory use grows with it).
    :returns: the report; with ``errors`` nothing was written.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise ValidationError("batch size must be at least 1", field="batchSize")
    path = Path(path)
    report = ImportReport(dry_run=dry_run)
    lk = await Lookups.load(runtime, tenant_id)

    def progress(done: int, total: int | None) -> None:
        if on_progress is not None:
            on_progress(done, total)

    with tuned_gc(runtime.settings.server.gc_tuning), RowSpool() as spool:
        header = await _validate(path, encoding, lk, report, spool, batch_size, progress)
        if report.error_count or header is None:
            report.seconds = round(time.perf_counter() - started, 3)
            return report
        writer = await _write(runtime, tenant_id, actor or IMPORT_ACTOR, lk, path.name, spool, dry_run, progress)
    report.created, report.updated = writer.created, writer.updated
    if not dry_run:
        await counts.fold(runtime, tenant_id)  # the count's row per write batch into one (PostgreSQL)
        await fire_events(runtime, tenant_id, writer.tx.ctx.actor, writer)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def _validate(
    path: Path,
    encoding: str,
    lk: Lookups,
    report: ImportReport,
    spool: RowSpool,
    batch_size: int,
    progress: Callable[[int, int | None], None],
) -> Header | None:
    """Pass 1: check every row, write nothing; the valid rows go to the spool in batches."""
    header: Header | None = None
    parser: RowParser | None = None
    batch: list[Row] = []
    try:
        for row, cells in records(path, encoding):
            if parser is None:
                header = parse_header(cells, report, lk.custom_fields)
                if header is None:
                    break
                parser = RowParser(header, lk)
                continue
            if is_blank(cells):
                continue
            report.rows_read += 1
            parsed = parser.parse(row, cells, report)
            if parsed is not None and not report.error_count:
                batch.append(parsed)
            if report.rows_read % batch_size == 0:
                spool.append(batch)
                batch = []
                progress(report.rows_read, None)
                await asyncio.sleep(0)  # let other tasks run during a long file
    except FileError as exc:
        report.add_error(exc.row, "", str(exc))
    spool.append(batch)
    if header is None and not report.error_count:
        report.add_error(1, "", "the file is empty: a header row is required")
    progress(report.rows_read, None)
    return header


async def _write(
    runtime: Runtime,
    tenant_id: uuid.UUID,
    actor: Actor,
    lk: Lookups,
    file_name: str,
    spool: RowSpool,
    dry_run: bool,
    progress: Callable[[int, int | None], None],
) -> Writer:
    """Pass 2: write the spooled rows in one transaction (rolled back for a dry run)."""
    total = spool.rows
    ctx = RequestContext(tenant_id=tenant_id, actor=actor)
    async with runtime.session(tenant_id) as session:
        writer = Writer(Tx(runtime, session, ctx), lk, file_name)
        await session.begin()
        await session.connection(execution_options={WRITE: True})  # SQLite: take the write lock now
        try:
            done = 0
            next_analyze = 2000
            for batch in spool.batches():
                await writer.write(batch)
                done += len(batch)
                progress(done, total)
                if done >= next_analyze:
                    await refresh_statistics(session, runtime.engine.dialect.name)
                    next_analyze *= 2
        except BaseException:
            await session.rollback()
            raise
        if dry_run:
            await session.rollback()
        else:
            await session.commit()
    return writer
