"""GraphQL input types and enums."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from guanxi.core.services.queries import CustomerOrder as CoreOrder
from guanxi.graphql.enums import ConsentStatus, CustomFieldKind, Direction, OnDuplicate, Role

CustomerOrder = strawberry.enum(CoreOrder, name="CustomerOrder", description="How a customer list is sorted.")


@strawberry.input(
    description="A condition on a custom field (see `customFields`); every part given must hold. Values are JSON of the "
    "field's kind: a string for text, choice, date (YYYY-MM-DD) and user (a User id) fields, a number (or decimal string) "
    "for number and money fields, true or false for boolean fields."
)
class FieldConditionInput:
    field: str = strawberry.field(description="the custom field's key")
    eq: JSON | None = strawberry.field(default=None, description="equal to (a multi-choice field: holds this choice)")
    in_: list[JSON] | None = strawberry.field(default=None, name="in", description="equal to one of these")
    gt: JSON | None = strawberry.field(default=None, description="greater than (number, money and date fields)")
    gte: JSON | None = strawberry.field(default=None, description="at least")
    lt: JSON | None = strawberry.field(default=None, description="less than")
    lte: JSON | None = strawberry.field(default=None, description="at most")
    is_set: bool | None = strawberry.field(default=None, description="true: has a value; false: has none")


@strawberry.input(description="Sort customers by a custom field; customers without a value sort below every value.")
class FieldOrderInput:
    field: str = strawberry.field(description="the custom field's key")
    descending: bool = False


@strawberry.input(description="Every condition given must hold (AND).")
class CustomerFilter:
    stages: list[str] | None = strawberry.field(default=None, description="stage keys, any of")
    pipelines: list[str] | None = strawberry.field(default=None, description="pipeline keys: customers standing in any of them")
    tags_any: list[str] | None = strawberry.field(default=None, description="has at least one of these tags (labels)")
    tags_all: list[str] | None = strawberry.field(default=None, description="has every one of these tags")
    owner_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="owned by one of these users")
    unassigned: bool | None = strawberry.field(default=None, description="true: no owner; false: has an owner")
    channels: list[str] | None = strawberry.field(default=None, description="has an identity on one of these channels")
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    search: str | None = strawberry.field(default=None, description="words found in name, company, phones, emails or nicknames")
    fields: list[FieldConditionInput] | None = strawberry.field(default=None, description="conditions on custom fields, all must hold")


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
    pipeline: str | None = strawberry.field(
        default=None, description="pipeline key; default: the pipeline whose arrival rule (`sources`) names the source, else the default"
    )
    on_duplicate: OnDuplicate = strawberry.field(
        default=OnDuplicate.CREATE, description="when another customer has one of these phones or e-mails: create anyway, refuse, or link"
    )
    tags: list[str] = strawberry.field(default_factory=list)
    fields: JSON | None = strawberry.field(default=None, description='custom field values by key, e.g. {"grade": "A"}')


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
    fields: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="custom field values to set by key; a key set to null clears that field, others stay"
    )


@strawberry.input(description="A new custom field of customers.")
class DefineCustomFieldInput:
    key: str = strawberry.field(description="lower_snake_case, unique in the tenant; used in filters, ordering and imports")
    label: str
    kind: CustomFieldKind
    choices: list[str] = strawberry.field(default_factory=list, description="the allowed values of choice fields, in order")
    position: int = strawberry.field(default=0, description="where the field is listed (smallest first)")


@strawberry.input(description="Only the parts given are changed; a field's key and kind never change.")
class UpdateCustomFieldInput:
    label: str | None = None
    choices: list[str] | None = strawberry.field(default=None, description="the new choices; one still held by customers is refused")
    position: int | None = None
    archived: bool | None = strawberry.field(default=None, description="true: hidden and read-only; false: restored")


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
