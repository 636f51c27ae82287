"""The maintained count of each tenant's live customers (``customer_counts``): folding its rows.

On PostgreSQL the triggers on ``customers`` append a row per statement that changed a tenant's
live customers (migration ``0024_count_deltas``), so a tenant's count is the sum of a growing
number of rows. :func:`fold` replaces each tenant's rows by one holding their sum, in one
statement, into slot 0 (the triggers never draw it): readers see either the rows or their sum,
the same number. The job ``core.counts_fold`` folds every tenant every minute; an import folds
its tenant when it ends. On SQLite the triggers update one row per tenant in place, and there is
nothing to fold.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from guanxi.core.domain.contracts import JobRun
from guanxi.core.runtime import Runtime

#: the job that folds every tenant's count rows (for the whole deployment)
FOLD_JOB = "core.counts_fold"
FOLD_CRON = "* * * * *"

#: one fold at a time (two folds deleting the same rows in different orders could deadlock)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('guanxi.customer_counts'))"
_FOLD = """
WITH many AS (
    SELECT tenant_id FROM customer_counts {where} GROUP BY tenant_id HAVING count(*) > 1
), gone AS (
    DELETE FROM customer_counts c USING many WHERE c.tenant_id = many.tenant_id RETURNING c.tenant_id, c.n
), folded AS (
    INSERT INTO customer_counts (tenant_id, slot, n) SELECT tenant_id, 0, sum(n) FROM gone GROUP BY tenant_id
    RETURNING 1
)
SELECT count(*) FROM gone"""
_ALL = text(_FOLD.format(where=""))
_ONE = text(_FOLD.format(where="WHERE tenant_id = :tenant_id"))


async def fold(runtime: Runtime, tenant_id: uuid.UUID | None = None) -> int:
    """Fold the count rows of ``tenant_id`` (of every tenant without it) into one row per tenant;
    return how many rows were folded. Runs on an engine connection (the maintenance path, like the
    file sweep): rows a transaction still open appends are not seen, and are folded next time."""
    if runtime.engine.dialect.name != "postgresql":
        return 0
    async with runtime.engine.begin() as conn:
        await conn.execute(text(_LOCK))
        result = await conn.execute(_ALL if tenant_id is None else _ONE, {} if tenant_id is None else {"tenant_id": tenant_id})
        return int(result.scalar_one())


async def run_fold(job: JobRun) -> None:
    await fold(job.runtime)
