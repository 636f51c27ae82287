"""The grade derived from the score (issue 20 item 2): a tenant rule (score ≥ 70 → A, ≥ 40 → B,
else C) sets the single-choice field ``grade`` whenever the scoring plugin computes scores, through
core's ``guanxi_customers_scored`` hook (sales and scoring never import each other). Pinned
through GraphQL (the rule, its mistakes, the customers filtered by grade), the recompute and the
incremental path, the audit trail, the statement count of a batch and tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from guanxi import ScoreComponent, hookimpl
from guanxi.core.base.context import RequestContext
from guanxi.core.domain.models import AuditEvent
from guanxi.core.runtime import Runtime
from guanxi.core.services import fields
from guanxi.core.services.pipelines import create_tenant
from guanxi.graphql.ids import from_global_id
from guanxi.plugins.sales import grading
from guanxi.plugins.sales.grading_graphql import GradingMutation, GradingQuery
from guanxi.testing.plugin import api_key
from guanxi.testing.sql import count_statements
from tests.access.conftest import make_user
from tests.plugins.sales.conftest import Team, new_customer

pytestmark = pytest.mark.plugins("sales", "scoring", "fixedscore")

SET = """mutation($input: SetGradeRuleInput!) { setGradeRule(input: $input) {
  rule { field bands { grade minScore } otherwise } errors { code field message } } }"""
RULE = {"field": "grade", "bands": [{"grade": "B", "minScore": 40}, {"grade": "A", "minScore": 70}], "otherwise": "C"}
BY_GRADE = """query($g: JSON!) { customers(filter: {fields: [{field: "grade", eq: $g}]}) { edges { node { displayName } } } }"""


class FixedScores:
    """A scoring component of fixed points per customer, so totals are known."""

    def __init__(self) -> None:
        self.points: dict[uuid.UUID, float] = {}

    @hookimpl
    def guanxi_score_components(self, customer_ids: list[uuid.UUID]) -> list[ScoreComponent]:
        return [ScoreComponent(customer_id=c, name="fixed", value=self.points[c]) for c in customer_ids if c in self.points]


FIXED = FixedScores()


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    FIXED.points.clear()
    return {"fixedscore": FIXED}


async def _grade_field(runtime: Runtime, tenant_id: uuid.UUID, kind: str = "single_choice", key: str = "grade") -> None:
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        choices = ["A", "B", "C"] if kind == "single_choice" else []
        await fields.define_field(tx, fields.FieldInput(key=key, label="客户等级", kind=kind, choices=choices))


async def _names(team: Team, grade: str) -> set[str]:
    body = await team.call["admin"](BY_GRADE, {"g": grade})
    return {e["node"]["displayName"] for e in body["data"]["customers"]["edges"]}


async def test_a_manager_sets_the_rule_and_a_recompute_grades_every_customer_by_score(runtime: Runtime, team: Team) -> None:
    from guanxi.plugins.scoring.recompute import recompute_tenant, rescore

    await _grade_field(runtime, team.tenant_id)
    made = (await team.call["mia"](SET, {"input": RULE}))["data"]["setGradeRule"]
    assert made == {
        "rule": {"field": "grade", "bands": [{"grade": "A", "minScore": 70.0}, {"grade": "B", "minScore": 40.0}], "otherwise": "C"},
        "errors": [],
    }
    assert (await team.call["li"]("{ gradeRule { field otherwise } }"))["data"]["gradeRule"] == {"field": "grade", "otherwise": "C"}
    ids = {}
    for name, points in (("hot", 500.0), ("warm", 55.0), ("cold", -500.0)):
        ids[name] = from_global_id(await new_customer(runtime, team.tenant_id, name, owner=team.users["li"]), "Customer")
        FIXED.points[ids[name]] = points
    await recompute_tenant(runtime, team.tenant_id)
    assert (await _names(team, "A"), await _names(team, "B"), await _names(team, "C")) == ({"hot"}, {"warm"}, {"cold"})
    FIXED.points[ids["cold"]] = 60.0  # the incremental path (after an event) re-grades one customer
    await rescore(runtime, team.tenant_id, ids["cold"], "test")
    assert await _names(team, "B") == {"warm", "cold"}
    async with runtime.session(team.tenant_id) as s:
        entries = (
            await s.scalars(select(AuditEvent).where(AuditEvent.object_id == ids["cold"], AuditEvent.action == "customer.fields"))
        ).all()
    assert [e.changes["fields"] for e in entries] == [["grade"], ["grade"]]  # C, then B; a recompute that changes nothing writes nothing
    assert entries[-1].changes["actor"] == "scoring"


async def test_without_a_rule_or_after_clearing_it_scores_leave_the_grade_alone(runtime: Runtime, team: Team) -> None:
    from guanxi.plugins.scoring.recompute import recompute_tenant

    await _grade_field(runtime, team.tenant_id)
    cid = from_global_id(await new_customer(runtime, team.tenant_id, "hot", owner=team.users["li"]), "Customer")
    FIXED.points[cid] = 500.0
    await recompute_tenant(runtime, team.tenant_id)
    assert await _names(team, "A") == set()
    assert (await team.call["mia"](SET, {"input": RULE}))["data"]["setGradeRule"]["errors"] == []
    cleared = (await team.call["mia"]("mutation { clearGradeRule { rule { field } errors { code } } }"))["data"]["clearGradeRule"]
    assert cleared == {"rule": None, "errors": []}
    again = (await team.call["mia"]("mutation { clearGradeRule { errors { code } } }"))["data"]["clearGradeRule"]
    assert again == {"errors": [{"code": "NOT_FOUND"}]}
    await recompute_tenant(runtime, team.tenant_id)
    assert await _names(team, "A") == set() and (await team.call["li"]("{ gradeRule { field } }"))["data"]["gradeRule"] is None


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"field": "tier"}, "field", "no custom field 'tier'"),
        ({"field": "budget"}, "field", "single-choice"),
        ({"bands": [{"grade": "S", "minScore": 90}]}, "bands[0].grade", "'S' is not a choice"),
        ({"bands": [{"grade": "A", "minScore": 70}, {"grade": "B", "minScore": 70}]}, "bands", "same minScore"),
        ({"bands": []}, "bands", "1 to 20 bands"),
        ({"otherwise": "D"}, "otherwise", "'D' is not a choice"),
    ],
)
async def test_a_bad_rule_is_a_validation_error_naming_the_input(
    runtime: Runtime, team: Team, change: dict[str, Any], field: str, needle: str
) -> None:
    await _grade_field(runtime, team.tenant_id)
    await _grade_field(runtime, team.tenant_id, kind="number", key="budget")
    made = (await team.call["mia"](SET, {"input": {**RULE, **change}}))["data"]["setGradeRule"]
    assert made["rule"] is None
    (error,) = made["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION", field) and needle in error["message"], error


async def test_a_salesperson_may_read_the_rule_but_not_set_it(runtime: Runtime, team: Team) -> None:
    await _grade_field(runtime, team.tenant_id)
    body = await team.call["li"](SET, {"input": RULE})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await team.call["li"]("{ gradeRule { field } }"))["data"]["gradeRule"] is None


@pytest.mark.parametrize("size", [3, 30])
async def test_grading_a_batch_costs_the_same_statements_whatever_its_size(runtime: Runtime, team: Team, size: int) -> None:
    """Read the rule, the field and the current grades; delete, insert, touch the customers; one
    multi-row insert of the audit entries: seven statements for 3 customers as for 30."""
    await _grade_field(runtime, team.tenant_id)
    assert (await team.call["mia"](SET, {"input": RULE}))["data"]["setGradeRule"]["errors"] == []
    ids = [from_global_id(await new_customer(runtime, team.tenant_id, f"c{i}"), "Customer") for i in range(size)]
    async with runtime.transaction(RequestContext(tenant_id=team.tenant_id)) as tx:
        with count_statements(runtime.engine) as seen:
            changed = await grading.apply_rule(tx, {cid: 100.0 + i for i, cid in enumerate(ids)})  # all A (their scores so far: C)
    assert changed == size
    assert len(seen) == 7, seen


#: (root field, operation) of the grading part of the sales plugin
ATTACKS = [
    ("gradeRule", "{ gradeRule { field bands { grade minScore } otherwise } }"),
    (
        "setGradeRule",
        'mutation { setGradeRule(input: {field: "grade", bands: [{grade: "A", minScore: 1}]}) { rule { field } errors { code } } }',
    ),
    ("clearGradeRule", "mutation { clearGradeRule { errors { code } } }"),
]


def test_every_grading_root_field_is_attacked() -> None:
    fields_ = {f.python_name for t in (GradingQuery, GradingMutation) for f in t.__strawberry_definition__.fields}  # type: ignore[attr-defined]
    camel = {"".join(w if i == 0 else w.title() for i, w in enumerate(f.split("_"))) for f in fields_}
    assert camel == {name for name, _ in ATTACKS}


@pytest.mark.parametrize(("field", "operation"), ATTACKS, ids=[name for name, _ in ATTACKS])
async def test_another_tenants_admin_neither_sees_nor_changes_the_rule(
    runtime: Runtime, team: Team, http: Any, field: str, operation: str
) -> None:
    await _grade_field(runtime, team.tenant_id)
    assert (await team.call["mia"](SET, {"input": RULE}))["data"]["setGradeRule"]["errors"] == []
    async with runtime.write_session(None) as session:
        beta = await create_tenant(session, f"beta-{uuid.uuid4().hex[:8]}", "Beta")
    await make_user(runtime, beta, "admin@beta.example", "admin")
    key = await api_key(runtime, beta, "admin")
    response = await http.post("/graphql", json={"query": operation}, headers={"Authorization": f"Bearer {key}"})
    answer = response.json()
    payload = answer["data"][field]
    if field == "gradeRule":
        assert payload is None
    else:
        assert payload["errors"][0]["code"] in ("VALIDATION", "NOT_FOUND"), answer  # beta has no grade field, nor a rule
    async with runtime.session(team.tenant_id) as s:
        rule = await grading.get_rule(s)
    assert rule is not None and rule.field_key == "grade" and [b["grade"] for b in rule.bands] == ["A", "B"]
