"""Who may do what in automation (``guanxi_permissions``), per subpackage."""

from __future__ import annotations

from guanxi import Permission

SEGMENTS = [
    Permission(
        name="automation.segments.read",
        roles=("admin", "manager", "marketing", "sales"),
        fields=("Query.segments", "Query.segment", "Query.segmentPreview"),
        description="See segments, count and preview them (a salesperson counts and sees only own customers)",
    ),
    Permission(
        name="automation.segments.manage",
        roles=("admin", "manager", "marketing"),
        fields=(
            "Mutation.createSegment",
            "Mutation.updateSegment",
            "Mutation.addSegmentMembers",
            "Mutation.refreshSegment",
            "Mutation.deleteSegment",
        ),
        description="Create, redefine, refresh and delete segments",
    ),
]

BULK = [
    Permission(
        name="automation.bulk.read",
        roles=("admin", "manager", "marketing"),
        fields=("Query.bulkSends", "Query.bulkSend"),
        description="See bulk sends and their figures",
    ),
    Permission(
        name="automation.bulk.send",
        roles=("admin", "manager", "marketing"),
        fields=("Mutation.createBulkSend", "Mutation.cancelBulkSend"),
        description="Create bulk sends (群发) to a segment, and cancel them",
    ),
    Permission(
        name="automation.bulk.approve",
        roles=("admin",),
        fields=("Mutation.approveBulkSend", "Mutation.rejectBulkSend"),
        description="Approve or reject bulk sends waiting for approval",
    ),
]


def all_permissions() -> list[Permission]:
    from guanxi.plugins.automation.journeys.permissions import JOURNEYS

    return [*SEGMENTS, *BULK, *JOURNEYS]
