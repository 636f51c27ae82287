"""Fixed sets of values are GraphQL enums, equal to the sets the domain uses, and every error
code Guanxi raises has its UserError.code."""

from __future__ import annotations

import re
from pathlib import Path

from guanxi.core.domain.access import ROLES
from guanxi.core.domain.channels import ATTACHMENT_KINDS
from guanxi.core.domain.models import JOB_STATUSES, STATUS_SOURCES, TENANT_STATUSES
from guanxi.core.services.interactions import DIRECTIONS
from guanxi.core.services.pipelines import CATEGORIES
from guanxi.graphql.enums import (
    AttachmentKind,
    ConsentStatus,
    Direction,
    ErrorCode,
    JobStatus,
    Role,
    StageCategory,
    StatusSource,
    TenantStatus,
    error_code,
)
from tests.graphql.conftest import GQL

PACKAGE = Path(__file__).resolve().parents[2] / "guanxi"


def test_enums_hold_exactly_the_domains_values() -> None:
    assert [r.value for r in Role] == list(ROLES)
    assert {c.value for c in StageCategory} == set(CATEGORIES)
    assert {d.value for d in Direction} == set(DIRECTIONS)
    assert {s.value for s in ConsentStatus} == {"opted_in", "opted_out"}
    assert [s.value for s in JobStatus] == list(JOB_STATUSES)
    assert [k.value for k in AttachmentKind] == list(ATTACHMENT_KINDS)
    assert [s.value for s in StatusSource] == list(STATUS_SOURCES)
    assert [s.value for s in TenantStatus] == list(TENANT_STATUSES)
    fixed = (Role, StageCategory, Direction, ConsentStatus, JobStatus, AttachmentKind, StatusSource, TenantStatus)
    assert all(m.name == m.value.upper() for e in fixed for m in e)


def test_every_error_code_raised_in_the_code_base_is_an_error_code_member() -> None:
    """A code a service raises that the enum lacks would be reported only as ERROR."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'\bcode\s*=\s*"([A-Z][A-Z_]+)"', text))
    assert found, "the scan found no codes"
    assert found - {m.value for m in ErrorCode} == set()


def test_a_code_outside_the_enum_is_reported_by_its_kind_with_the_code_as_detail() -> None:
    assert error_code("NOT_FOUND") == (ErrorCode.NOT_FOUND, None)
    assert error_code("WECOM_41054", provider=True) == (ErrorCode.PROVIDER_ERROR, "WECOM_41054")
    assert error_code("LOYALTY_EXPIRED") == (ErrorCode.ERROR, "LOYALTY_EXPIRED")


async def test_status_like_fields_answer_enum_values(gql: GQL) -> None:
    created = await gql("""mutation { createCustomer(input: {displayName: "E"}) { customer { id stage { category } } } }""")
    customer = created["data"]["createCustomer"]["customer"]
    assert customer["stage"] == {"category": "OPEN"}
    await gql(
        'mutation($c: ID!) { setConsent(customerId: $c, channel: "sms", status: OPTED_OUT) { errors { code } } }', {"c": customer["id"]}
    )
    await gql(
        'mutation($c: ID!) { recordInteraction(input: {customerId: $c, channel: "web", kind: "note", direction: INTERNAL}) { created } }',
        {"c": customer["id"]},
    )
    body = await gql(
        "query($c: ID!) { customer(id: $c) { consents { status } interactions { edges { node { direction } } } } users { role } }",
        {"c": customer["id"]},
    )
    got = body["data"]
    assert got["customer"]["consents"] == [{"status": "OPTED_OUT"}]
    assert [e["node"]["direction"] for e in got["customer"]["interactions"]["edges"]] == ["INTERNAL"]
    missing = await gql('mutation { updateCustomer(id: "nope", input: {}) { errors { code detail } } }')
    assert missing["data"]["updateCustomer"]["errors"] == [{"code": "BAD_ID", "detail": None}]
