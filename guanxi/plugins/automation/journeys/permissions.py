"""Who may do what with journeys."""

from __future__ import annotations

from guanxi import Permission

JOURNEYS = [
    Permission(
        name="automation.journeys.read",
        roles=("admin", "manager", "marketing"),
        fields=("Query.journeys", "Query.journey", "Query.journeySchema", "Query.journeyDryRun"),
        description="See journeys, their definitions and figures, and dry-run them",
    ),
    Permission(
        name="automation.journeys.manage",
        roles=("admin", "manager", "marketing"),
        fields=("Mutation.saveJourney", "Mutation.setJourneyStatus"),
        description="Define journeys (new versions) and activate, pause or archive them",
    ),
    Permission(
        name="automation.journeys.secret",
        roles=("admin",),
        fields=("Query.journeyWebhookSecret",),
        description="Read the secret journey webhooks are signed with",
    ),
]
