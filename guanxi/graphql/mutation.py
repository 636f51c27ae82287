"""Core mutations. Each runs one transaction through the core services; bad input comes back
as typed ``errors`` on the payload, with the field named."""

from __future__ import annotations

from typing import Any

import msgspec
import strawberry
from strawberry.types import Info

from guanxi.core.base.errors import ValidationError
from guanxi.core.services import consent, customers, identities, interactions, merge, tags, tasks, users
from guanxi.graphql import inputs
from guanxi.graphql.enums import ConsentStatus
from guanxi.graphql.errors import UserError, as_payload
from guanxi.graphql.fields import set_values
from guanxi.graphql.ids import from_global_id
from guanxi.graphql.types import Customer, Identity, Interaction, Task, User


@strawberry.type
class CustomerPayload:
    customer: Customer | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
    linked: bool = strawberry.field(
        default=False, description="createCustomer with onDuplicate: LINK: the customer is an existing one, not a new one"
    )


@strawberry.type
class IdentityPayload:
    identity: Identity | None = None
    customer: Customer | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class InteractionPayload:
    interaction: Interaction | None = None
    created: bool = strawberry.field(default=False, description="false when the dedupe key was already recorded")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TaskPayload:
    task: Task | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UserPayload:
    user: User | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="What a merge moves (or would move, in a dry run).")
class MergePlan:
    identities: int
    interactions: int
    tags: int
    tasks: int
    stage_changes: int
    consents: int
    filled_fields: list[str]
    dry_run: bool


@strawberry.type
class MergePayload:
    plan: MergePlan | None = None
    customer: Customer | None = strawberry.field(default=None, description="the survivor")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UndoMergePayload:
    customer: Customer | None = strawberry.field(default=None, description="the customer given back its data")
    survivor: Customer | None = strawberry.field(default=None, description="the former survivor")
    errors: list[UserError] = strawberry.field(default_factory=list)


def json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON input that must be an object (``null`` means empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object, not {type(value).__name__}", field=field)
    return dict(value)


def _attributes_patch(value: Any) -> Any:
    """``attributes`` of ``updateCustomer``: a JSON merge patch (an object), or null for none."""
    if value is strawberry.UNSET:
        return msgspec.UNSET
    return None if value is None else json_object(value, "attributes")


def _unset_to_msgspec(value: Any) -> Any:
    return msgspec.UNSET if value is strawberry.UNSET else value


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a customer (and tag it).")
    async def create_customer(self, info: Info, input: inputs.CreateCustomerInput) -> CustomerPayload:
        async def run() -> CustomerPayload:
            data = customers.CustomerInput(
                display_name=input.display_name,
                company=input.company,
                phones=list(input.phones),
                emails=list(input.emails),
                attributes=json_object(input.attributes, "attributes"),
                stage=input.stage,
                source=input.source,
                pipeline=input.pipeline,
                on_duplicate=str(input.on_duplicate.value),
                owner_id=from_global_id(input.owner_id, "User", field="ownerId") if input.owner_id else None,
            )
            async with info.context.transaction() as tx:
                c, linked = await customers.create_or_link(tx, data)
                if input.tags:
                    await tags.change_tags(tx, c.id, add=list(input.tags))
                if input.fields is not None:
                    await set_values(tx, c.id, input.fields)
            return CustomerPayload(customer=Customer.from_row(c, info.context), linked=linked)

        return await as_payload(run, CustomerPayload)

    @strawberry.mutation(description="Change some fields of a customer.")
    async def update_customer(self, info: Info, id: strawberry.ID, input: inputs.UpdateCustomerInput) -> CustomerPayload:
        async def run() -> CustomerPayload:
            owner = _unset_to_msgspec(input.owner_id)
            if isinstance(owner, str):
                owner = from_global_id(owner, "User", field="ownerId")
            if input.display_name is None:
                raise ValidationError("display name cannot be cleared", field="displayName")
            patch = customers.CustomerPatch(
                display_name=msgspec.UNSET if input.display_name is strawberry.UNSET else input.display_name,
                company=_unset_to_msgspec(input.company),
                phones=msgspec.UNSET if input.phones is strawberry.UNSET else list(input.phones or []),
                emails=msgspec.UNSET if input.emails is strawberry.UNSET else list(input.emails or []),
                attributes=_attributes_patch(input.attributes),
                owner_id=owner,
                source=_unset_to_msgspec(input.source),
            )
            async with info.context.transaction() as tx:
                c = await customers.update_customer(tx, from_global_id(id, "Customer"), patch)
                if input.fields is not strawberry.UNSET and input.fields is not None:
                    await set_values(tx, c.id, input.fields)
            return CustomerPayload(customer=Customer.from_row(c, info.context))

        return await as_payload(run, CustomerPayload)

    @strawberry.mutation(
        description="Move a customer to another lifecycle stage, saying why: a stage of its pipeline, or of `pipeline` "
        "(it then stands in that pipeline; the history keeps both)."
    )
    async def move_customer_stage(
        self, info: Info, id: strawberry.ID, stage: str, reason: str | None = None, pipeline: str | None = None
    ) -> CustomerPayload:
        async def run() -> CustomerPayload:
            async with info.context.transaction() as tx:
                c = await customers.set_stage(tx, from_global_id(id, "Customer"), stage, reason=reason, pipeline=pipeline)
            return CustomerPayload(customer=Customer.from_row(c, info.context))

        return await as_payload(run, CustomerPayload)

    @strawberry.mutation(description="Add and remove tags (labels `name` or `group/name`; new tags are created).")
    async def tag_customer(
        self, info: Info, id: strawberry.ID, add: list[str] | None = None, remove: list[str] | None = None
    ) -> CustomerPayload:
        async def run() -> CustomerPayload:
            async with info.context.transaction() as tx:
                cid = from_global_id(id, "Customer")
                await tags.change_tags(tx, cid, add=list(add or []), remove=list(remove or []))
                c = await customers.get_customer(tx.session, cid)
            return CustomerPayload(customer=Customer.from_row(c, info.context))

        return await as_payload(run, CustomerPayload)

    @strawberry.mutation(description="Attach a channel account to a customer (or refresh its profile).")
    async def attach_identity(self, info: Info, customer_id: strawberry.ID, input: inputs.IdentityInput) -> IdentityPayload:
        async def run() -> IdentityPayload:
            data = identities.IdentityInput(
                channel=input.channel,
                external_id=input.external_id,
                union_id=input.union_id,
                nickname=input.nickname,
                avatar_url=input.avatar_url,
                follower_count=input.follower_count,
                profile=json_object(input.profile, "profile"),
            )
            async with info.context.transaction() as tx:
                cid = from_global_id(customer_id, "Customer", field="customerId")
                ident = await identities.attach_identity(tx, cid, data)
                c = await customers.get_customer(tx.session, cid)
            return IdentityPayload(identity=Identity.from_model(ident), customer=Customer.from_row(c, info.context))

        return await as_payload(run, IdentityPayload)

    @strawberry.mutation(description="Append an interaction to a customer's timeline (a note, a call, a visit …).")
    async def record_interaction(self, info: Info, input: inputs.RecordInteractionInput) -> InteractionPayload:
        async def run() -> InteractionPayload:
            data = interactions.InteractionInput(
                customer_id=from_global_id(input.customer_id, "Customer", field="customerId"),
                channel=input.channel,
                kind=input.kind,
                direction=input.direction.value,
                occurred_at=input.occurred_at,
                text=input.text,
                payload=json_object(input.payload, "payload"),
                dedupe_key=input.dedupe_key,
            )
            async with info.context.transaction() as tx:
                row, created = await interactions.record_interaction(tx, data)
            return InteractionPayload(interaction=Interaction.from_model(row, info.context), created=created)

        return await as_payload(run, InteractionPayload)

    @strawberry.mutation(description="Merge `mergedId` into `survivorId`; `dryRun` reports what would move.")
    async def merge_customers(
        self, info: Info, survivor_id: strawberry.ID, merged_id: strawberry.ID, dry_run: bool = False
    ) -> MergePayload:
        async def run() -> MergePayload:
            async with info.context.transaction() as tx:
                plan = await merge.merge_customers(
                    tx,
                    from_global_id(survivor_id, "Customer", field="survivorId"),
                    from_global_id(merged_id, "Customer", field="mergedId"),
                    dry_run=dry_run,
                )
                c = await customers.get_customer(tx.session, plan.survivor_id)
            fields = {
                f: getattr(plan, f)
                for f in ("identities", "interactions", "tags", "tasks", "stage_changes", "consents", "filled_fields", "dry_run")
            }
            return MergePayload(plan=MergePlan(**fields), customer=Customer.from_row(c, info.context))

        return await as_payload(run, MergePayload)

    @strawberry.mutation(
        description="Undo the merge that made `mergedId` a tombstone: its identities, interactions, tags, tasks, stage "
        "history, consents, custom field values and plugin rows go back to it, and the survivor loses what the merge "
        "filled in. Refused (CONFLICT) once the survivor was merged again or took in another customer since."
    )
    async def undo_merge(self, info: Info, merged_id: strawberry.ID) -> UndoMergePayload:
        async def run() -> UndoMergePayload:
            from guanxi.core.services.merge_undo import undo_merge

            async with info.context.transaction() as tx:
                restored, survivor = await undo_merge(tx, from_global_id(merged_id, "Customer", field="mergedId"))
            return UndoMergePayload(customer=Customer.from_row(restored, info.context), survivor=Customer.from_row(survivor, info.context))

        return await as_payload(run, UndoMergePayload)

    @strawberry.mutation(description="Create a follow-up task (assigned to the customer's owner unless given).")
    async def create_task(self, info: Info, input: inputs.CreateTaskInput) -> TaskPayload:
        async def run() -> TaskPayload:
            data = tasks.TaskInput(
                customer_id=from_global_id(input.customer_id, "Customer", field="customerId"),
                title=input.title,
                assignee_id=from_global_id(input.assignee_id, "User", field="assigneeId") if input.assignee_id else None,
                due_at=input.due_at,
                notes=input.notes,
            )
            async with info.context.transaction() as tx:
                t = await tasks.create_task(tx, data)
            return TaskPayload(task=Task.from_model(t, info.context))

        return await as_payload(run, TaskPayload)

    @strawberry.mutation(description="Mark a task done.")
    async def complete_task(self, info: Info, id: strawberry.ID) -> TaskPayload:
        async def run() -> TaskPayload:
            async with info.context.transaction() as tx:
                t = await tasks.complete_task(tx, from_global_id(id, "Task"))
            return TaskPayload(task=Task.from_model(t, info.context))

        return await as_payload(run, TaskPayload)

    @strawberry.mutation(description="Record a customer's consent to be contacted on a channel.")
    async def set_consent(
        self, info: Info, customer_id: strawberry.ID, channel: str, status: ConsentStatus, source: str | None = None
    ) -> CustomerPayload:
        async def run() -> CustomerPayload:
            async with info.context.transaction() as tx:
                cid = from_global_id(customer_id, "Customer", field="customerId")
                await consent.set_consent(tx, cid, channel, status.value, source)
                c = await customers.get_customer(tx.session, cid)
            return CustomerPayload(customer=Customer.from_row(c, info.context))

        return await as_payload(run, CustomerPayload)

    @strawberry.mutation(description="Add a staff user.")
    async def create_user(self, info: Info, input: inputs.CreateUserInput) -> UserPayload:
        async def run() -> UserPayload:
            async with info.context.transaction() as tx:
                u = await users.create_user(tx, email=input.email, name=input.name, role=input.role.value, team=input.team)
            return UserPayload(user=User.from_model(u))

        return await as_payload(run, UserPayload)
