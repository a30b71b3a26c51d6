"""An operator's morning through the console's pages: finds the invoice, sees the dispute and the held
reminder with why, every event's trace linked to the trace viewer, resolves a review-queue payment
from the matcher's suggestion (the ledger pays the invoice), resolves the dispute (the dunning goes on),
and finds it all in the audit log."""

from __future__ import annotations

import re

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from services.portal.store import AUDIT
from tests.support.console import ConsoleClient, ConsoleWorld, operator_scenario
from tests.support.ledger import eventually

pytestmark = pytest.mark.integration


async def test_an_operators_morning(console_world: ConsoleWorld) -> None:
    world = console_world
    scenario = await operator_scenario(world)
    tenant, disputed = scenario.tenant, scenario.disputed
    client = ConsoleClient.of(world.portal)
    try:
        await client.login(await world.account(tenant.tenant.id, "operator"))

        found = await client.get("/console/search", q=disputed.invoice_number)
        assert found.headers["location"] == f"/console/invoices/{disputed.id}"
        page = await client.get(f"/console/invoices/{disputed.id}")
        assert page.status_code == 200
        text = page.text
        assert "Disputed" in text
        assert "I never received the goods." in text
        assert "Held, and why" in text
        assert "the customer disputes the claim" in text
        # Each event's trace opens in the trace viewer; the renderer and dispatcher being down shows.
        assert re.search(r'href="https://jaeger\.test/trace/[0-9a-f]{32}"', text)
        assert "Not available right now" in text

        by_kid = await client.get("/console/search", q=disputed.kid)
        assert by_kid.headers["location"] == f"/console/invoices/{disputed.id}"
        by_name = await client.get("/console/search", q="fjordbris")
        assert "Fjordbris Kaffe AS" in by_name.text

        disputes = await client.get("/console/queues/disputes")
        assert disputed.invoice_number in disputes.text

        queue = await client.get("/console/queues/review")
        assert scenario.payment_id in queue.text
        assert f"invoice {scenario.unpaid.invoice_number} " in queue.text
        assert 'name="suggestion" value="1"' not in queue.text
        allocated = await client.post(
            f"/console/payments/{scenario.payment_id}/allocate",
            {"suggestion": "0", "note": "phoned"},
        )
        assert allocated.status_code == 303
        assert "done=" in allocated.headers["location"], allocated.headers["location"]
        await eventually(
            lambda: tenant.get(scenario.unpaid.id),
            lambda i: i.status == pb.INVOICE_STATUS_PAID,
            what="the allocated invoice paid",
        )
        assert scenario.payment_id not in (await client.get("/console/queues/review")).text

        await client.get(f"/console/invoices/{disputed.id}")
        resolved = await client.post(
            f"/console/invoices/{disputed.id}/resolve-dispute",
            {"text": "Delivery confirmed by the carrier.", "token": "r"},
        )
        assert "done=" in resolved.headers["location"]
        await world.dun.wait_history(tenant, disputed.id, "reminded")
        after = await client.get(f"/console/invoices/{disputed.id}")
        assert "Delivery confirmed by the carrier." in after.text
        assert ">Disputed<" not in after.text

        actions = [
            e["action"]
            async for e in world.portal.store.db[AUDIT].find({"tenant_id": tenant.tenant.id}).sort("at", 1)
        ]
        assert {"login", "invoice.view", "payment.allocate", "dispute.resolve"} <= set(actions)

        dashboard = await client.get("/console/")
        assert dashboard.status_code == 200
        assert dashboard.text.count("<svg") >= 6
        dunning = await client.get("/console/dunning")
        assert "NO · consumer" in dunning.text
    finally:
        await client.aclose()
