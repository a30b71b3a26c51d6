"""The books balance: every journal entry's debits equal its credits, and the receivable account
(1500) holds exactly what customers owe on their invoices."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import DUNNING_TOPIC, DunningActionTaken, DunningActionTakenData
from services.ledger.app import LedgerApp
from tests.support.kafka import publish
from tests.support.ledger import TenantClient, eventually, invoice_request, line, today

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]

RECEIVABLE = "1500"
CUSTOMER_CREDIT = "2900"


async def test_every_entry_balances_and_receivables_equal_open_balances(
    tenant: TenantClient, ledger_app: LedgerApp, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    paid = await tenant.issue(invoice_request(lines=[line(3333, quantity="3"), line(1999, "2.5", "15")]))
    await tenant.pay(paid, 50_00)
    await tenant.pay(paid, paid.gross_total.minor_units - 50_00)
    part_credited = await tenant.issue(invoice_request(lines=[line(100_00, quantity="4")]))
    await tenant.credit(part_credited, lines=[line(100_00)])
    await tenant.pay(part_credited, 100_00)
    credited_after_payment = await tenant.issue(invoice_request())
    await tenant.pay(credited_after_payment, 1250_00)
    await tenant.credit(credited_after_payment)
    overpaid = await tenant.issue(invoice_request())
    await tenant.pay(overpaid, 1300_00)
    written_off = await tenant.issue(invoice_request())
    await tenant.pay(written_off, 333_33)
    await tenant.stub.WriteOffInvoice(
        pb.WriteOffInvoiceRequest(idempotency_key="WO-1", invoice_id=written_off.id, reason="Bankrupt"),
        metadata=tenant.metadata,
    )
    reminded = await tenant.issue(invoice_request(issue_date=today() - timedelta(days=30), due_in_days=14))
    await publish(
        producer,
        topics[DUNNING_TOPIC],
        DunningActionTaken(
            tenant_id=tenant.tenant.id,
            subject=reminded.id,
            occurred_at=datetime.now(UTC),
            data=DunningActionTakenData(
                action_id=str(uuid.uuid4()),
                invoice_id=reminded.id,
                based_on_version=reminded.version,
                action="reminder",
                fee_minor=3500,
            ),
        ),
    )
    await eventually(
        lambda: tenant.get(reminded.id),
        lambda i: i.status == pb.INVOICE_STATUS_REMINDED,
        what="the reminder fee",
    )
    await tenant.pay(reminded, 500_00)
    await tenant.issue(invoice_request())  # left open

    entries = await ledger_app.store.journal.find({"tenant_id": tenant.tenant.id}).to_list()
    listed = await tenant.stub.ListInvoices(
        pb.ListInvoicesRequest(page=common_pb2.PageRequest(page_size=500)), metadata=tenant.metadata
    )

    kinds = {e["kind"] for e in entries}
    assert {"invoice_issued", "payment_received", "credit_note_issued", "fee_added", "written_off"} <= kinds
    net: dict[str, int] = defaultdict(int)
    for entry in entries:
        debits = sum(p["debit"] for p in entry["postings"])
        credits = sum(p["credit"] for p in entry["postings"])
        assert debits == credits > 0, entry
        for posting in entry["postings"]:
            net[posting["account"]] += posting["debit"] - posting["credit"]
    owed = sum(i.balance.minor_units for i in listed.invoices)
    # Still owed: the reminded invoice with its fee, less a payment; the part-credited one; the open one.
    assert owed == (1250_00 + 35_00 - 500_00) + (500_00 - 125_00 - 100_00) + 1250_00
    assert net[RECEIVABLE] == owed
    customer = await tenant.customer("K-1000")
    assert customer.credit_balance.minor_units == 1250_00 + 50_00
    assert -net[CUSTOMER_CREDIT] == customer.credit_balance.minor_units
