"""Custom fields of customers in the API: their definitions (``customFields``; defined and
changed by admins) and setting values on a customer (``setCustomerFields``, or ``fields`` of
``createCustomer`` / ``updateCustomer``). Values are read through ``Customer.fields`` and
filtered and sorted through ``customers(filter: {fields: …}, orderByField: …)``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.domain.models import FieldDefinition
from guanxi.core.runtime import Tx
from guanxi.core.services import customers, fields
from guanxi.graphql import inputs
from guanxi.graphql.enums import CustomFieldKind
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.ids import from_global_id
from guanxi.graphql.types import Customer


@strawberry.type(description="A custom field of the tenant's customers.")
class CustomField:
    key: str
    label: str
    kind: CustomFieldKind
    choices: list[str] = strawberry.field(description="allowed values of choice fields, in order (empty for other kinds)")
    position: int
    archived: bool
    created_at: dt.datetime

    @classmethod
    def from_model(cls, d: FieldDefinition) -> CustomField:
        return cls(
            key=d.key,
            label=d.label,
            kind=CustomFieldKind(d.kind),
            choices=list(d.choices),
            position=d.position,
            archived=d.archived_at is not None,
            created_at=d.created_at,
        )


@strawberry.type
class CustomFieldPayload:
    field: CustomField | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SetCustomerFieldsPayload:
    customer: Customer | None = None
    changed: list[str] = strawberry.field(default_factory=list, description="keys of the fields whose value changed")
    errors: list[UserError] = strawberry.field(default_factory=list)


def _user_id(raw: str, where: str) -> Any:
    return from_global_id(raw, "User", field=where)


def values_input(value: Any, field: str) -> dict[str, Any]:
    """A ``fields`` JSON input: an object of values by field key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object of values by field key, not {type(value).__name__}", field=field)
    return dict(value)


async def set_values(tx: Tx, customer_id: Any, value: Any, field: str = "fields") -> list[str]:
    """Set the values of a ``fields`` input on a customer (API user ids decoded)."""
    return await fields.set_customer_fields(tx, customer_id, values_input(value, field), parse_user=_user_id, where=field)


@strawberry.type
class FieldsQuery:
    @strawberry.field(description="The tenant's custom fields of customers, in order.")
    async def custom_fields(self, info: Info, include_archived: bool = False) -> list[CustomField]:
        async with info.context.loaders.lock:
            rows = await fields.list_fields(info.context.session, include_archived=include_archived)
        return [CustomField.from_model(d) for d in rows]


@strawberry.type
class FieldsMutation:
    @strawberry.mutation(description="Define a custom field of customers (admins).")
    async def define_custom_field(self, info: Info, input: inputs.DefineCustomFieldInput) -> CustomFieldPayload:
        async def run() -> CustomFieldPayload:
            data = fields.FieldInput(
                key=input.key, label=input.label, kind=input.kind.value, choices=list(input.choices), position=input.position
            )
            async with info.context.transaction() as tx:
                row = await fields.define_field(tx, data)
            return CustomFieldPayload(field=CustomField.from_model(row))

        return await as_payload(run, CustomFieldPayload)

    @strawberry.mutation(description="Rename, reorder, change the choices of, archive or restore a custom field (admins).")
    async def update_custom_field(self, info: Info, key: str, input: inputs.UpdateCustomFieldInput) -> CustomFieldPayload:
        async def run() -> CustomFieldPayload:
            def given(v: Any) -> Any:
                return msgspec.UNSET if v is None else v

            patch = fields.FieldPatch(
                label=given(input.label),
                choices=given(list(input.choices) if input.choices is not None else None),
                position=given(input.position),
                archived=given(input.archived),
            )
            async with info.context.transaction() as tx:
                row = await fields.update_field(tx, key, patch)
            return CustomFieldPayload(field=CustomField.from_model(row))

        return await as_payload(run, CustomFieldPayload)

    @strawberry.mutation(
        description='Set custom field values of a customer by key ({"grade": "A", "budget": 12000}); null clears a field, '
        "fields not named stay. A value of the wrong type is refused (VALIDATION, `field` names it: fields.grade)."
    )
    async def set_customer_fields(self, info: Info, customer_id: strawberry.ID, values: JSON) -> SetCustomerFieldsPayload:
        async def run() -> SetCustomerFieldsPayload:
            async with info.context.transaction() as tx:
                cid = from_global_id(customer_id, "Customer", field="customerId")
                changed = await set_values(tx, cid, values, "values")
                c = await customers.get_customer(tx.session, cid)
            return SetCustomerFieldsPayload(customer=Customer.from_row(c, info.context), changed=changed)

        return await as_payload(run, SetCustomerFieldsPayload)
