"""Every change to an invoice is announced once on the invoice topic, in order, keyed by the invoice."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.kafka import Record, TopicReader
from tests.support.ledger import TenantClient, invoice_request, line

pytestmark = pytest.mark.integration

EVENT_FOR_HISTORY = {
    "issued": "InvoiceIssued",
    "payment_applied": "PaymentApplied",
    "credited": "CreditNoteIssued",
    "written_off": "InvoiceWrittenOff",
}
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


async def test_every_change_is_announced_exactly_once_in_order(
    tenant: TenantClient, invoice_events: TopicReader
) -> None:
    paid = await tenant.issue(invoice_request())
    await tenant.pay(paid, 500_00)
    await tenant.pay(paid, 750_00)
    credited = await tenant.issue(invoice_request())
    await tenant.credit(credited, lines=[line(100_00)])
    await tenant.credit(credited, lines=[line(900_00)])
    written_off = await tenant.issue(invoice_request())
    await tenant.stub.WriteOffInvoice(
        pb.WriteOffInvoiceRequest(idempotency_key="WO-1", invoice_id=written_off.id, reason="Bankrupt"),
        metadata=tenant.metadata,
    )
    untouched = await tenant.issue(invoice_request())
    invoices = {i.id: i for i in (paid, credited, written_off, untouched)}
    histories = {invoice_id: await tenant.history(invoice_id) for invoice_id in invoices}
    expected_count = sum(len(h) for h in histories.values())

    def announced() -> dict[str, list[tuple[Record, dict[str, Any]]]] | None:
        """Per invoice, its events in the order read, each event id once (redelivery is allowed)."""
        seen: set[str] = set()
        per_invoice: dict[str, list[tuple[Record, dict[str, Any]]]] = {}
        for record, event in invoice_events.events(tenant_id=tenant.tenant.id):
            if event["id"] not in seen:
                seen.add(event["id"])
                per_invoice.setdefault(event["subject"], []).append((record, event))
        return per_invoice if len(seen) >= expected_count else None

    per_invoice = await invoice_events.wait_for(announced, what=f"{expected_count} events")

    assert set(per_invoice) == set(invoices)
    for invoice_id, history in histories.items():
        events = per_invoice[invoice_id]
        assert [e["type"] for _, e in events] == [EVENT_FOR_HISTORY[h.type] for h in history]
        assert [e["id"] for _, e in events] == [h.event_id for h in history]
        assert [e["data"]["invoice"]["version"] for _, e in events] == [h.version for h in history]
        for record, event in events:
            assert record.key == invoice_id.encode()
            assert event["tenant_id"] == tenant.tenant.id
            match = TRACEPARENT.fullmatch(record.headers.get("traceparent", b"").decode())
            assert match is not None, record.headers.get("traceparent")
            if event["type"] == "InvoiceIssued":
                # Issue and the announcement of it are one trace: the ERP's call is its root.
                assert match.group(1) == invoices[invoice_id].origin_trace_id
    paid_events = [e for _, e in per_invoice[paid.id]]
    assert [e["data"]["invoice"]["status"] for e in paid_events] == ["open", "part_paid", "paid"]
    assert [e["data"].get("amount_minor") for e in paid_events[1:]] == [500_00, 750_00]
    credited_events = [e for _, e in per_invoice[credited.id]]
    assert credited_events[-1]["data"]["invoice"]["status"] == "credited"
    assert credited_events[-1]["data"]["invoice"]["balance_minor"] == 0
