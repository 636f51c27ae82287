"""The schema's enums for values that are a fixed set: roles, stage categories, directions,
consent statuses and error codes. GraphQL names are UPPER_CASE; each member's value is what the
database and the services use (``Role.SALES.value == "sales"``), so converting is ``Role(row.role)``
one way and ``.value`` the other. tests/graphql/test_enums.py keeps them equal to the domain's sets."""

from __future__ import annotations

import enum

import strawberry


@strawberry.enum(description="Whether a customer agreed to be contacted on a channel (setConsent, Consent.status).")
class ConsentStatus(enum.Enum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


@strawberry.enum(description="A staff member's (or an API key's) role; see the permission table in docs/operations.md.")
class Role(enum.Enum):
    ADMIN = "admin"
    MANAGER = "manager"
    MARKETING = "marketing"
    SALES = "sales"
    SERVICE = "service"
    READONLY = "readonly"


@strawberry.enum(description="What reaching a lifecycle stage means.")
class StageCategory(enum.Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    RETAINED = "retained"
    CHURNED = "churned"


@strawberry.enum(description="Who an interaction went from: the customer (IN), the company (OUT), or staff only (INTERNAL).")
class Direction(enum.Enum):
    IN = "in"
    OUT = "out"
    INTERNAL = "internal"


@strawberry.enum(description="The type of a custom field's values.")
class CustomFieldKind(enum.Enum):
    TEXT = "text"
    NUMBER = "number"
    MONEY = "money"
    DATE = "date"
    SINGLE_CHOICE = "single_choice"
    MULTI_CHOICE = "multi_choice"
    USER = "user"
    BOOLEAN = "boolean"


@strawberry.enum(description="Which tasks by due date, in the caller's time zone (myTasks, teamTasks).")
class TaskDue(enum.Enum):
    ANY = "any"
    OVERDUE = strawberry.enum_value("overdue", description="due before now and not done")
    TODAY = strawberry.enum_value("today", description="due today (local day)")
    THIS_WEEK = strawberry.enum_value("this_week", description="due from today to the end of Sunday")
    LATER = strawberry.enum_value("later", description="due after this week")
    NONE = strawberry.enum_value("none", description="no due date")


@strawberry.enum(description="Which tasks by completion.")
class TaskStatus(enum.Enum):
    OPEN = "open"
    DONE = "done"
    ALL = "all"


@strawberry.enum(description="A durable job's state (ScheduledJob.status, scheduledJobs(status:)).")
class JobStatus(enum.Enum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@strawberry.enum(description="What a message attachment is (sendMessage attachments).")
class AttachmentKind(enum.Enum):
    IMAGE = "image"
    FILE = "file"
    VIDEO = "video"
    LINK = "link"
    MINIPROGRAM = "miniprogram"


@strawberry.enum(description="Where a message status entry came from: the outbox (its worker or sendMessage) or a provider's receipt.")
class StatusSource(enum.Enum):
    OUTBOX = "outbox"
    RECEIPT = "receipt"


@strawberry.enum(description="A tenant's state: SUSPENDED keys get 403, its webhooks are stored but not processed.")
class TenantStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@strawberry.enum(description="What createCustomer does when another customer has one of the new phones or e-mails.")
class OnDuplicate(enum.Enum):
    CREATE = strawberry.enum_value("create", description="create a second customer anyway (duplicateSuggestions finds it later)")
    REFUSE = strawberry.enum_value("refuse", description="refuse with code DUPLICATE, naming the phone or e-mail")
    LINK = strawberry.enum_value(
        "link", description="give back the existing customer (the oldest the caller may see), with the new contact points added"
    )


@strawberry.enum(description="Why a mutation did not do what was asked (UserError.code).")
class ErrorCode(enum.Enum):
    ERROR = strawberry.enum_value("ERROR", description="another error; `detail` may name it more precisely")
    VALIDATION = strawberry.enum_value("VALIDATION", description="an input is invalid; `field` names it")
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="the object does not exist in this tenant (or was merged away)")
    CONFLICT = strawberry.enum_value("CONFLICT", description="the change clashes with the current state")
    BAD_ID = strawberry.enum_value("BAD_ID", description="an id is malformed or of another type")
    BAD_CURSOR = strawberry.enum_value("BAD_CURSOR", description="a cursor was not returned by this API for this ordering")
    BAD_PAGE_SIZE = strawberry.enum_value("BAD_PAGE_SIZE", description="`first` or `last` is negative or above the largest page")
    NO_CONSENT = strawberry.enum_value("NO_CONSENT", description="the customer opted out of this channel")
    DELIVERY_FAILED = strawberry.enum_value("DELIVERY_FAILED", description="the channel refused or failed the delivery")
    CHANNEL_CAPABILITY = strawberry.enum_value("CHANNEL_CAPABILITY", description="the channel cannot do this")
    UNAUTHENTICATED = strawberry.enum_value("UNAUTHENTICATED", description="credentials are missing or invalid")
    FORBIDDEN = strawberry.enum_value("FORBIDDEN", description="the caller's role may not do this")
    BUSY = strawberry.enum_value("BUSY", description="the database is busy; retry shortly")
    NOT_A_USER = strawberry.enum_value("NOT_A_USER", description="the caller is not a signed-in staff user")
    PROVIDER_ERROR = strawberry.enum_value(
        "PROVIDER_ERROR", description="a provider's API (e.g. WeCom) failed; `detail` has its own code, e.g. WECOM_41054"
    )
    BAD_CONFIG = strawberry.enum_value("BAD_CONFIG", description="the server's configuration is invalid")
    PLUGIN_ERROR = strawberry.enum_value("PLUGIN_ERROR", description="a plugin broke the plugin contract")
    NOT_MIGRATED = strawberry.enum_value("NOT_MIGRATED", description="the database needs `guanxi db upgrade`")
    PLUGIN_DISABLED = strawberry.enum_value(
        "PLUGIN_DISABLED", description="the operation uses a plugin the caller's tenant has not enabled"
    )
    QUOTA_EXCEEDED = strawberry.enum_value("QUOTA_EXCEEDED", description="the tenant reached a limit; the message names it")
    TENANT_SUSPENDED = strawberry.enum_value("TENANT_SUSPENDED", description="the platform operator suspended the tenant")
    BAD_SIGNATURE = strawberry.enum_value("BAD_SIGNATURE", description="a webhook's signature or timestamp did not verify")
    UNKNOWN_MESSAGE = strawberry.enum_value(
        "UNKNOWN_MESSAGE", description="a receipt names a provider message id no message of this channel carries"
    )
    LIMIT_REACHED = strawberry.enum_value("LIMIT_REACHED", description="a limit was reached; `detail` names the limit")
    BAD_JOURNEY = strawberry.enum_value(
        "BAD_JOURNEY", description="a journey definition is invalid; `field` is the path of the bad step (steps[2].channel)"
    )
    DUPLICATE = strawberry.enum_value(
        "DUPLICATE", description="another customer has this phone or e-mail (createCustomer with onDuplicate: REFUSE); `field` names which"
    )
    CHANNEL_ACCOUNT_DISCONNECTED = strawberry.enum_value(
        "CHANNEL_ACCOUNT_DISCONNECTED", description="a channel account's authorization was revoked or ran out; connect it again"
    )


_CODES: dict[str, ErrorCode] = {m.name: m for m in ErrorCode}


def error_code(code: str, *, provider: bool = False) -> tuple[ErrorCode, str | None]:
    """The enum member for an error's code, and the original code when the member is only its
    category (a provider's own code, or a code a third-party plugin made up)."""
    member = _CODES.get(code)
    if member is not None:
        return member, None
    return (ErrorCode.PROVIDER_ERROR if provider else ErrorCode.ERROR), code


__all__ = [
    "ConsentStatus",
    "CustomFieldKind",
    "Direction",
    "ErrorCode",
    "OnDuplicate",
    "Role",
    "StageCategory",
    "TaskDue",
    "TaskStatus",
    "error_code",
]
