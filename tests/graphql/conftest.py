"""GraphQL test helpers: the kit's fixtures (``guanxi.testing``) under this suite's names."""

from __future__ import annotations

import pytest

from guanxi.testing.plugin import GraphQL, use_tenant

GQL = GraphQL  # the name this suite's tests use

__all__ = ["GQL", "gql", "use_tenant"]


@pytest.fixture
def gql(graphql: GQL) -> GQL:
    """POST a GraphQL operation as the test's tenant; see the kit's ``graphql`` fixture."""
    return graphql
