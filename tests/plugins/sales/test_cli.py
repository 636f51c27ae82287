"""``guanxi sales …``: a pool created with its return rules from the command line, listed with
the rules in words; the rules the tenant's plugins offer; an unknown rule refused naming it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from click.testing import CliRunner

from guanxi.cli import build_cli
from guanxi.core.runtime import Runtime
from guanxi.testing.plugin import use_tenant

pytestmark = pytest.mark.plugins("sales")


async def _cli(runtime: Runtime, tenant_id: uuid.UUID, *args: str) -> tuple[int, str]:
    await use_tenant(runtime, tenant_id)
    fresh = Runtime(runtime.settings, runtime.pm, {})  # the command starts and stops its own
    result = await asyncio.to_thread(CliRunner().invoke, build_cli(fresh), list(args), obj=fresh)
    return result.exit_code, result.output


async def test_a_pool_is_created_with_its_return_rules_and_listed_with_them(runtime: Runtime, tenant_id: uuid.UUID) -> None:
    code, out = await _cli(runtime, tenant_id, "sales", "pool-rules")
    assert code == 0, out
    assert out.splitlines() == [
        "sales.contract_lapsed  1-3650 days  N days after the customer's last contract ended without a new one",
        "sales.no_won_deal  1-120 months  no won deal N months after the customer's first inquiry"
        " (first inbound interaction, else its creation)",
    ]
    args = ("sales", "create-pool", "inquiries", "询盘公海", "--return-after-days", "15", "--rule", "sales.no_won_deal=3")
    code, out = await _cli(runtime, tenant_id, *args)
    assert (code, out) == (0, "lead pool inquiries created with sales.no_won_deal=3\n")
    code, out = await _cli(runtime, tenant_id, "sales", "pools")
    assert (code, out) == (
        0,
        "inquiries  询盘公海  no hold limit; no follow-up for 15 days; sales.no_won_deal=3"
        " (no won deal 3 months after the first inquiry)\n",
    )


@pytest.mark.parametrize(
    ("rule", "needle"),
    [("pigeon.no_coo=3", "no return rule 'pigeon.no_coo'"), ("sales.no_won_deal=0", "takes 1 to 120 months"), ("x", "RULE=NUMBER")],
)
async def test_a_bad_rule_is_refused_naming_it_and_creates_nothing(runtime: Runtime, tenant_id: uuid.UUID, rule: str, needle: str) -> None:
    code, out = await _cli(runtime, tenant_id, "sales", "create-pool", "east", "华东", "--rule", rule)
    assert code != 0 and needle in out, out
    assert await _cli(runtime, tenant_id, "sales", "pools") == (0, "no lead pool\n")
