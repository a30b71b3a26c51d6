"""Dunning in the console: a policy's dry run is a chart before an administrator switches it on; an
unlawful one shows the law's refusals and cannot be switched on; an operator may dry-run, not switch.
And the other queues open (flagged contacts, collection) with the ledger's answers."""

from __future__ import annotations

import html
import json
import re

import pytest
from fordring.dunning.v1 import dunning_pb2 as dpb

from tests.support.console import ConsoleClient, ConsoleWorld

pytestmark = pytest.mark.integration


def policy_on_page(text: str) -> str:
    found = re.search(r'<textarea id="json-1" name="policy_json"[^>]*>(.*?)</textarea>', text, re.S)
    assert found is not None
    return html.unescape(found.group(1))


async def test_a_dry_run_then_switched_on(console_world: ConsoleWorld) -> None:
    world = console_world
    tenant = await world.dun.tenant()
    admin, operator = ConsoleClient.of(world.portal), ConsoleClient.of(world.portal)
    try:
        await admin.login(await world.account(tenant.tenant.id, "admin"))
        await operator.login(await world.account(tenant.tenant.id, "operator"))
        await operator.get("/console/dunning")  # the session's CSRF token
        page = await admin.get("/console/dunning")
        assert page.status_code == 200
        policy = json.loads(policy_on_page(page.text))
        version = re.search(r'name="expected_version" value="(\d+)"', page.text)
        assert version is not None

        # Unlawful: a reminder fee far above the cap is refused with the rule, and cannot be switched on.
        unlawful = {**policy, "steps": [{**s, "fee_minor": 10_000_00} for s in policy["steps"]]}
        refused = await admin.post(
            "/console/dunning/simulate", {"policy_json": json.dumps(unlawful), "days": "30"}
        )
        assert refused.status_code == 200
        assert "The law refuses this policy" in refused.text
        assert "Switch this policy on" not in refused.text

        dry = await operator.post(
            "/console/dunning/simulate",
            {"policy_json": json.dumps(policy), "days": "30", "expected_version": version.group(1)},
        )
        assert dry.status_code == 200
        assert "Steps the policy would take" in dry.text
        assert "<svg" in dry.text
        assert "An administrator can switch it on." in dry.text
        assert (
            await operator.post("/console/dunning/policy", {"policy_json": json.dumps(policy)})
        ).status_code == 403

        ran = await admin.post(
            "/console/dunning/simulate",
            {"policy_json": json.dumps(policy), "days": "30", "expected_version": version.group(1)},
        )
        assert "Switch this policy on" in ran.text
        switched = await admin.post(
            "/console/dunning/policy",
            {"policy_json": json.dumps(policy), "expected_version": version.group(1)},
        )
        assert switched.status_code == 303
        assert switched.headers["location"].startswith("/console/dunning?done=")
        saved = await world.dun.stub.GetPolicy(
            dpb.GetPolicyRequest(jurisdiction=policy["jurisdiction"], debtor_kind=policy["debtor_kind"]),
            metadata=tenant.metadata,
        )
        assert saved.version > int(version.group(1))
        assert saved.updated_by.endswith("@console.test")

        for path, empty in (
            ("/console/queues/flagged", "No flagged contacts."),
            ("/console/queues/handoffs", "Nothing is on its way to collection."),
            ("/console/queues/review", "The queue is empty."),
            ("/console/queues/disputes", "No open disputes."),
        ):
            shown = await admin.get(path)
            assert shown.status_code == 200, path
            assert empty in shown.text, path
        exported = await admin.get("/console/queues/handoffs/file", day="2026-12-01")
        assert exported.status_code == 200
        assert exported.headers["content-disposition"] == (
            f'attachment; filename="collection-{tenant.tenant.id}-2026-12-01.jsonl"'
        )
        audit = await admin.get("/console/audit")
        assert "collection.export" in audit.text
        assert "dunning.policy.set" in audit.text
    finally:
        await admin.aclose()
        await operator.aclose()
