"""docs/plugins/email.md cannot fall behind the code: its GraphQL examples validate against the
schema with the plugin enabled, cover every field the plugin adds and run for real; its Python
examples run; every config key, mailbox setting and secret is in its table."""

from __future__ import annotations

import re
import textwrap
import uuid
from pathlib import Path
from typing import Any

import graphql
import httpx
import msgspec
import pytest

from guanxi import RequestContext, Runtime
from guanxi.core.services import customers, identities
from guanxi.graphql.ids import to_global_id
from guanxi.graphql.schema import build_schema
from guanxi.plugins.email.settings import EmailSettings, Mailbox, MailboxSecrets

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "email.md"
BLOCK = re.compile(r"^ *```(?P<lang>graphql|python)\n(?P<body>.*?)^ *```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [m.group("body") for m in BLOCK.finditer(DOC.read_text(encoding="utf-8")) if m.group("lang") == lang]


def named(name: str) -> str:
    (found,) = [b for b in blocks("graphql") if re.match(rf"\s*(query|mutation)\s+{name}\b", b)]
    return found


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    runtime = Runtime.from_config(None, environ={"GUANXI_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "GUANXI_PLUGINS": "email"})
    return build_schema(runtime)._schema


@pytest.mark.parametrize("text", blocks("graphql"))
def test_every_documented_operation_validates_against_the_schema(text: str, schema: graphql.GraphQLSchema) -> None:
    errors = graphql.validate(schema, graphql.parse(text))
    assert not errors, [e.message for e in errors]


def test_every_email_mutation_and_the_customer_field_has_an_example(schema: graphql.GraphQLSchema) -> None:
    text = "\n".join(blocks("graphql"))
    assert schema.mutation_type is not None
    for name in [n for n in schema.mutation_type.fields if "email" in n.lower()] + ["email"]:
        assert re.search(rf"\b{name}\b", text), f"no example uses {name}"


@pytest.mark.parametrize("text", blocks("python"))
def test_every_python_example_runs(text: str) -> None:
    exec(compile(textwrap.dedent(text), str(DOC), "exec"), {})


@pytest.mark.parametrize(
    ("struct", "key"),
    [(s, f.name) for s in (EmailSettings, Mailbox, MailboxSecrets) for f in msgspec.structs.fields(s)],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_every_setting_and_secret_is_in_a_reference_table(struct: type, key: str) -> None:
    assert f"| `{key}` |" in DOC.read_text(encoding="utf-8")


@pytest.mark.plugins("email")
async def test_the_examples_connect_a_mailbox_send_and_read_the_customer(
    runtime: Runtime, tenant_id: uuid.UUID, client: httpx.AsyncClient
) -> None:
    async def run(name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = (await client.post("/graphql", json={"query": named(name), "variables": variables or {}})).json()
        assert "errors" not in body, body
        return dict(body["data"])

    saved = (await run("ConnectMailbox"))["saveChannelAccount"]
    assert saved["errors"] == [] and saved["account"]["key"] == "sales"
    async with runtime.transaction(RequestContext(tenant_id=tenant_id)) as tx:
        c = await customers.create_customer(tx, customers.CustomerInput(display_name="Mei", emails=["mei@customer.example"]))
        await identities.attach_identity(tx, c.id, identities.IdentityInput(channel="email", external_id="mei@customer.example"))
    customer = to_global_id("Customer", c.id)
    sent = (await run("SendOffer", {"customer": customer}))["sendEmail"]
    assert (sent["errors"], sent["created"], sent["message"]["status"]) == ([], True, "QUEUED")
    email = (await run("CustomerEmail", {"id": customer}))["customer"]["email"]
    assert email["optedOut"] is False
    assert [(a["address"], a["status"]) for a in email["addresses"]] == [("mei@customer.example", "ACTIVE")]
