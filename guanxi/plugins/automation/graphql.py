"""The automation plugin's part of the schema, assembled from its subpackages' parts."""

from __future__ import annotations

from strawberry.tools import merge_types

from guanxi.graphql.contrib import GraphQLContribution
from guanxi.plugins.automation.bulk import graphql as bulk
from guanxi.plugins.automation.journeys import graphql as journeys
from guanxi.plugins.automation.segments import graphql as segments

#: each subpackage's ``(Query, Mutation)`` classes; a new subpackage adds its pair here
PARTS: list[tuple[type, type]] = [
    (segments.SegmentQuery, segments.SegmentMutation),
    (bulk.BulkQuery, bulk.BulkMutation),
    (journeys.JourneyQuery, journeys.JourneyMutation),
]


def contribution() -> GraphQLContribution:
    """The subpackages' Query and Mutation classes, merged into one of each."""
    query = merge_types("AutomationQuery", tuple(q for q, _ in PARTS))
    mutation = merge_types("AutomationMutation", tuple(m for _, m in PARTS))
    return GraphQLContribution(query=query, mutation=mutation, customer_filters=segments.CUSTOMER_FILTERS)
