"""Customer service gives a customer more time: the console moves an open invoice's due date through
the ledger (its history says so, dunning counts from the new date), refuses a form without a date or a
reason, passes on the ledger's refusal of an earlier date, and audits who did it."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from services.portal.store import AUDIT
from tests.support.console import ConsoleClient, ConsoleWorld
from tests.support.dunning import consumer
from tests.support.ledger import invoice_request

pytestmark = pytest.mark.integration


def outcome(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_customer_service_moves_the_due_date(console_world: ConsoleWorld) -> None:
    world = console_world
    tenant = await world.dun.tenant()
    today = world.clock.today()
    invoice = await tenant.issue(
        invoice_request(customer=consumer(f"T-{uuid.uuid4().hex[:6]}"), issue_date=today, due_in_days=10)
    )
    client = ConsoleClient.of(world.portal)
    try:
        await client.login(await world.account(tenant.tenant.id, "customer_service"))
        page = await client.get(f"/console/invoices/{invoice.id}")
        assert f'action="/console/invoices/{invoice.id}/due-date"' in page.text
        path = f"/console/invoices/{invoice.id}/due-date"

        no_date = await client.post(path, {"due_date": "15.12.2026", "reason": "phoned", "token": "a"})
        assert outcome(no_date.headers["location"]) == {"problem": "due_date"}
        no_reason = await client.post(path, {"due_date": "2099-01-01", "reason": " ", "token": "b"})
        assert outcome(no_reason.headers["location"]) == {"problem": "due_reason"}
        earlier = (date.fromisoformat(invoice.due_date) - timedelta(days=1)).isoformat()
        refused = await client.post(path, {"due_date": earlier, "reason": "phoned", "token": "c"})
        assert "refused" in outcome(refused.headers["location"])
        assert (await tenant.get(invoice.id)).due_date == invoice.due_date

        later = (date.fromisoformat(invoice.due_date) + timedelta(days=14)).isoformat()
        moved = await client.post(path, {"due_date": later, "reason": "agreed on the phone", "token": "d"})
        assert outcome(moved.headers["location"]) == {"done": "due_date"}
        # The same form sent twice moves it once (its token is the idempotency key).
        again = await client.post(path, {"due_date": later, "reason": "agreed on the phone", "token": "d"})
        assert outcome(again.headers["location"]) == {"done": "due_date"}
        changed = await tenant.get(invoice.id)
        assert changed.due_date == later
        history = await tenant.history(invoice.id)
        assert [e.type for e in history].count("due_date_changed") == 1
        after = await client.get(f"/console/invoices/{invoice.id}", **outcome(moved.headers["location"]))
        assert "Due date moved." in after.text
        assert later in after.text
    finally:
        await client.aclose()
    audited = [
        e
        async for e in world.portal.store.db[AUDIT].find(
            {"tenant_id": tenant.tenant.id, "action": "invoice.due_date"}
        )
    ]
    assert len(audited) == 2
    assert all(e["subject"] == invoice.id for e in audited)
