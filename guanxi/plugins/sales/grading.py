"""A customer's grade (A/B/C, a single-choice custom field) derived from the scoring total by a
tenant rule: ``score ≥ 70 → A, ≥ 40 → B, else C``.

The score reaches the sales plugin through core's ``guanxi_customers_scored`` hook (the scoring
plugin calls it with the totals it just stored, in its transaction); the plugins never import
each other. :func:`apply_rule` writes the grades of a whole batch in a constant number of
statements (read the rule, the field and the batch's current grades; delete and insert the
changed ones; touch those customers; one multi-row insert of audit entries), never one per
customer. A changed grade is recorded as a field write is: the customer's ``updated_at`` and a
``customer.fields`` audit entry naming the field (by the scoring rule's actor)."""

from __future__ import annotations

import math
import uuid
from typing import Final

from sqlalchemy import delete, insert, select, update

from guanxi import NotFoundError, Tx, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import Customer, CustomerFieldValue, FieldDefinition, utcnow
from guanxi.core.services.audit import audit
from guanxi.core.services.fields import get_field
from guanxi.core.storage.tenancy import TenantSession
from guanxi.plugins.sales.models import SalesGradeRule

MAX_BANDS: Final = 20


async def get_rule(session: TenantSession) -> SalesGradeRule | None:
    return (await session.execute(select(SalesGradeRule))).scalar_one_or_none()


async def set_rule(tx: Tx, field_key: str, bands: list[tuple[str, float]], otherwise: str | None) -> SalesGradeRule:
    """Set the tenant's grade rule (replacing any): ``field_key`` names a single-choice customer
    field, each band a choice of it and the lowest score that earns it; ``otherwise`` (a choice,
    or None: the field is cleared) for scores below every band. Every mistake is a
    ``VALIDATION`` naming the input's field. Audited (``sales.grade_rule.set``)."""
    session = tx.session
    try:
        defn = await get_field(session, field_key)
    except NotFoundError:
        raise ValidationError(f"no custom field {field_key!r} (define a single-choice field first)", field="field") from None
    if defn.archived_at is not None:
        raise ValidationError(f"custom field {field_key!r} is archived", field="field")
    if defn.kind != "single_choice":
        raise ValidationError(f"custom field {field_key!r} is {defn.kind}: a grade needs a single-choice field", field="field")
    if not 1 <= len(bands) <= MAX_BANDS:
        raise ValidationError(f"give 1 to {MAX_BANDS} bands", field="bands")
    for i, (grade, lowest) in enumerate(bands):
        if grade not in defn.choices:
            raise ValidationError(f"{grade!r} is not a choice of {field_key} ({', '.join(defn.choices)})", field=f"bands[{i}].grade")
        if not math.isfinite(lowest):
            raise ValidationError("minScore must be a finite number", field=f"bands[{i}].minScore")
    if len({lowest for _, lowest in bands}) != len(bands):
        raise ValidationError("two bands have the same minScore", field="bands")
    if otherwise is not None and otherwise not in defn.choices:
        raise ValidationError(f"{otherwise!r} is not a choice of {field_key} ({', '.join(defn.choices)})", field="otherwise")
    ordered = [{"grade": g, "min": float(m)} for g, m in sorted(bands, key=lambda b: -b[1])]
    rule = await get_rule(session)
    if rule is None:
        rule = SalesGradeRule(field_key=field_key, bands=ordered, otherwise=otherwise, updated_at=utcnow())
        session.add(rule)
    else:
        rule.field_key, rule.bands, rule.otherwise, rule.updated_at = field_key, ordered, otherwise, utcnow()
    await session.flush()
    audit(tx, "sales.grade_rule.set", "gradeRule", None, {"field": field_key, "bands": ordered, "otherwise": otherwise})
    return rule


async def clear_rule(tx: Tx) -> bool:
    """Remove the tenant's grade rule (grades already set stay). True if there was one."""
    rule = await get_rule(tx.session)
    if rule is None:
        return False
    await tx.session.delete(rule)
    await tx.session.flush()
    audit(tx, "sales.grade_rule.clear", "gradeRule", None, {"field": rule.field_key})
    return True


def grade_of(total: float, bands: list[dict[str, float | str]], otherwise: str | None) -> str | None:
    """The grade of a total: the first band (highest first) whose minimum it reaches."""
    for band in bands:
        if total >= float(band["min"]):
            return str(band["grade"])
    return otherwise


async def apply_rule(tx: Tx, totals: dict[uuid.UUID, float]) -> int:
    """Set the grade field of the scored customers from their totals, set-based. Returns how many
    grades changed. Without a rule, or with its field gone, archived or no longer single-choice,
    nothing is written; a band's grade that is no longer a choice leaves those customers as they are."""
    session = tx.session
    rule = await get_rule(session)
    if rule is None or not totals:
        return 0
    defn = (
        await session.execute(select(FieldDefinition).where(FieldDefinition.entity == "customer", FieldDefinition.key == rule.field_key))
    ).scalar_one_or_none()
    if defn is None or defn.archived_at is not None or defn.kind != "single_choice":
        return 0
    choices = set(defn.choices)
    target = {cid: g for cid, total in totals.items() if (g := grade_of(total, rule.bands, rule.otherwise)) is None or g in choices}
    current = dict(
        (
            await session.execute(
                select(CustomerFieldValue.customer_id, CustomerFieldValue.text_value).where(
                    CustomerFieldValue.field_id == defn.id, CustomerFieldValue.customer_id.in_(list(target))
                )
            )
        ).all()
    )
    changed = [cid for cid, grade in target.items() if current.get(cid) != grade]
    if not changed:
        return 0
    await session.execute(
        delete(CustomerFieldValue)
        .where(CustomerFieldValue.field_id == defn.id, CustomerFieldValue.customer_id.in_(changed))
        .execution_options(synchronize_session=False)
    )
    rows = [
        {"tenant_id": tx.tenant_id, "id": new_id(), "customer_id": cid, "field_id": defn.id, "text_value": target[cid]}
        for cid in changed
        if target[cid] is not None
    ]
    if rows:
        await session.execute(insert(CustomerFieldValue), rows)
    await session.execute(
        update(Customer).where(Customer.id.in_(changed)).values(updated_at=utcnow()).execution_options(synchronize_session=False)
    )
    for cid in changed:
        audit(tx, "customer.fields", "customer", cid, {"fields": [defn.key], "by": "sales.grade_rule"})
    await session.flush()
    return len(changed)
