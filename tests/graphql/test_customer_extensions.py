"""Core's extension point for customer lists: plugins add filter fields and orderings to
``customers`` (``GraphQLContribution.customer_filters`` / ``customer_orderings``)."""

from __future__ import annotations

import pytest
from sqlalchemy import func

from guanxi.core.base.errors import PluginError
from guanxi.core.domain.models import Customer
from guanxi.core.hooks.manager import hookimpl
from guanxi.core.runtime import Runtime
from guanxi.graphql.contrib import CustomerFilterField, CustomerOrdering, GraphQLContribution
from guanxi.graphql.schema import build_schema
from tests.graphql.conftest import GQL


def name_length() -> object:
    return func.length(Customer.display_name)


class NameLength:
    """A fixture plugin: filter by the length of the name, order by it (many ties)."""

    @hookimpl
    def guanxi_graphql(self) -> GraphQLContribution:
        return GraphQLContribution(
            customer_filters=[CustomerFilterField("name_longer_than", int | None, lambda stmt, n: stmt.where(name_length() > n))],
            customer_orderings=[CustomerOrdering("name_length_desc", name_length)],  # type: ignore[arg-type]
        )


class Clasher:
    @hookimpl
    def guanxi_graphql(self) -> GraphQLContribution:
        return GraphQLContribution(customer_filters=[CustomerFilterField("search", str | None, lambda stmt, v: stmt)])


@pytest.fixture
def extra_plugins() -> dict[str, object]:
    return {"namelength": NameLength(), "clasher": Clasher()}


@pytest.mark.plugins("namelength")
async def test_a_plugin_filter_and_ordering_page_through_ties_without_loss_or_repeat(gql: GQL) -> None:
    names = ["Al", "Bo", "Cy", "Dora", "Evan", "Fiona", "Gu"]
    for name in names:
        await gql("mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { customer { id } } }", {"i": {"displayName": name}})
    query = """query($after: String) { customers(filter: { nameLongerThan: 1 }, orderBy: NAME_LENGTH_DESC, first: 2, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { displayName } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(query, {"after": after}))["data"]["customers"]
        assert page["totalCount"] == 7
        seen += [e["node"]["displayName"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(names) and len(seen) == 7
    assert [len(n) for n in seen] == sorted((len(n) for n in names), reverse=True)
    short = await gql("{ customers(filter: { nameLongerThan: 3 }) { totalCount } }")
    assert short["data"]["customers"]["totalCount"] == 3


@pytest.mark.plugins("clasher")
def test_a_plugin_filter_named_like_cores_fails_with_both_owners(runtime: Runtime) -> None:
    with pytest.raises(PluginError, match=r"CustomerFilter\.search is defined by both core and clasher"):
        build_schema(runtime)
