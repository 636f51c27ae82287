"""GraphQL input types and enums."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from guanxi.core.services.queries import CustomerOrder as CoreOrder
from guanxi.graphql.enums import ConsentStatus, Direction, Role

CustomerOrder = strawberry.enum(CoreOrder, name="CustomerOrder", description="How a customer list is sorted.")


@strawberry.input(description="Every condition given must hold (AND).")
class CustomerFilter:
    stages: list[str] | None = strawberry.field(default=None, description="stage keys, any of")
    tags_any: list[str] | None = strawberry.field(default=None, description="has at least one of these tags (labels)")
    tags_all: list[str] | None = strawberry.field(default=None, description="has every one of these tags")
    owner_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="owned by one of these users")
    unassigned: bool | None = strawberry.field(default=None, description="true: no owner; false: has an owner")
    channels: list[str] | None = strawberry.field(default=None, description="has an identity on one of these channels")
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    search: str | None = strawberry.field(default=None, description="words found in name, company, phones, emails or nicknames")


@strawberry.input
class CreateCustomerInput:
    display_name: str
    company: str | None = None
    phones: list[str] = strawberry.field(default_factory=list)
    emails: list[str] = strawberry.field(default_factory=list)
    attributes: JSON | None = None
    owner_id: strawberry.ID | None = None
    stage: str | None = strawberry.field(default=None, description="stage key; default: the pipeline's first stage")
    source: str | None = None
    tags: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="Only the fields given are changed; null clears an optional field.")
class UpdateCustomerInput:
    display_name: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    phones: list[str] | None = strawberry.UNSET
    emails: list[str] | None = strawberry.UNSET
    attributes: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="A JSON merge patch (RFC 7396) of the attributes: the keys given are set (objects merged), "
        "a key set to null is removed, other keys stay; null removes every attribute.",
    )
    owner_id: strawberry.ID | None = strawberry.UNSET
    source: str | None = strawberry.UNSET


@strawberry.input
class IdentityInput:
    channel: str
    external_id: str
    union_id: str | None = None
    nickname: str | None = None
    avatar_url: str | None = None
    follower_count: int | None = None
    profile: JSON | None = None


@strawberry.input
class RecordInteractionInput:
    customer_id: strawberry.ID
    channel: str
    kind: str
    direction: Direction = Direction.IN
    occurred_at: dt.datetime | None = None
    text: str | None = None
    payload: JSON | None = None
    dedupe_key: str | None = strawberry.field(default=None, description="a second interaction with the same key is ignored")


@strawberry.input
class CreateTaskInput:
    customer_id: strawberry.ID
    title: str
    assignee_id: strawberry.ID | None = None
    due_at: dt.datetime | None = None
    notes: str | None = None


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    role: Role = Role.SALES
    team: str | None = None


#: ConsentStatus was defined here before the enums moved to guanxi.graphql.enums
__all__ = ["ConsentStatus"]
