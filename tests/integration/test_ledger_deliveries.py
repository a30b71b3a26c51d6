"""The dispatcher's reports in the ledger: every step of a delivery in the invoice's history and its
delivery summary, a bad contact flagged on the customer until the ERP sends a new one; nothing
changes what is owed, and a redelivered report is applied once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    DELIVERY_TOPIC,
    ContactFlagged,
    ContactFlaggedData,
    Delivered,
    DeliveryAttempted,
    DeliveryData,
    DeliveryFailed,
    Event,
    FallbackScheduled,
    FallbackScheduledData,
    Opened,
)
from services.ledger.app import LedgerApp
from services.ledger.deliveries import DeliveryLog
from tests.support.kafka import publish
from tests.support.ledger import TenantClient, customer_input, eventually, invoice_request

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]


def delivery(invoice: pb.Invoice, channel: str = "email", **changes: Any) -> DeliveryData:
    fields: dict[str, Any] = {
        "delivery_id": str(uuid.uuid4()),
        "invoice_id": invoice.id,
        "invoice_number": invoice.invoice_number,
        "customer_id": invoice.customer_id,
        "document_kind": "invoice",
        "rendering_id": str(uuid.uuid4()),
        "channel": channel,
    }
    fields.update(changes)
    return DeliveryData(**fields)


def at(minutes: int) -> datetime:
    return datetime(2026, 12, 1, 9, 14, tzinfo=UTC) + timedelta(minutes=minutes)


async def history(tenant: TenantClient, invoice: pb.Invoice, *, at_least: int) -> list[pb.HistoryEntry]:
    async def read() -> list[pb.HistoryEntry]:
        reply = await tenant.stub.GetInvoiceHistory(
            pb.GetInvoiceHistoryRequest(invoice_id=invoice.id), metadata=tenant.metadata
        )
        return list(reply.entries)

    return await eventually(read, lambda entries: len(entries) >= at_least, what="the delivery history")


async def test_a_delivery_is_told_in_the_history_and_the_summary(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    invoice = await tenant.issue(invoice_request())
    email = delivery(invoice)
    topic = topics[DELIVERY_TOPIC]
    steps: list[Event] = [
        DeliveryAttempted(tenant_id=tenant.tenant.id, subject=invoice.id, occurred_at=at(0), data=email),
        Delivered(tenant_id=tenant.tenant.id, subject=invoice.id, occurred_at=at(0), data=email),
        Opened(tenant_id=tenant.tenant.id, subject=invoice.id, occurred_at=at(108), data=email),
    ]
    for event in steps:
        await publish(producer, topic, event)
    # A redelivered report changes nothing.
    await publish(producer, topic, steps[1])

    entries = await history(tenant, invoice, at_least=4)
    mine = [e for e in entries if e.actor == "dispatcher"]
    assert [e.type for e in mine] == ["sent", "delivered", "opened"]
    assert mine[0].summary == "invoice by e-mail sent"
    assert mine[2].at.startswith("2026-12-01T11:02")

    shown = (
        await tenant.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata)
    ).invoice
    assert shown.delivery.channel == pb.CHANNEL_EMAIL
    assert shown.delivery.status == "opened"
    assert shown.delivery.sent_at.startswith("2026-12-01T09:14")
    assert shown.delivery.opened_at.startswith("2026-12-01T11:02")
    assert shown.delivery.deliveries == 1
    # What is owed did not change, nor the version a dunning proposal would name.
    assert (shown.status, shown.version, shown.balance) == (invoice.status, invoice.version, invoice.balance)


async def test_a_bounce_a_fallback_and_a_flagged_contact(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    invoice = await tenant.issue(invoice_request(customer=customer_input(f"K-{uuid.uuid4().hex[:8]}")))
    email = delivery(invoice)
    bounced = email.model_copy(
        update={"code": "bounced", "reason": "550 5.1.1 mailbox unavailable", "final": True}
    )
    sms = delivery(invoice, "sms", route="fallback")
    t = tenant.tenant.id
    for event in (
        DeliveryAttempted(tenant_id=t, subject=invoice.id, occurred_at=at(0), data=email),
        Delivered(tenant_id=t, subject=invoice.id, occurred_at=at(0), data=email),
        DeliveryFailed(tenant_id=t, subject=invoice.id, occurred_at=at(3), data=bounced),
        ContactFlagged(
            tenant_id=t,
            subject=invoice.id,
            occurred_at=at(3),
            data=ContactFlaggedData(
                customer_id=invoice.customer_id,
                invoice_id=invoice.id,
                delivery_id=email.delivery_id,
                contact="email",
                channel="email",
                reason="bounced: 550 5.1.1 mailbox unavailable",
            ),
        ),
        FallbackScheduled(
            tenant_id=t,
            subject=invoice.id,
            occurred_at=at(3),
            data=FallbackScheduledData(
                delivery_id=email.delivery_id,
                invoice_id=invoice.id,
                invoice_number=invoice.invoice_number,
                customer_id=invoice.customer_id,
                document_kind="invoice",
                from_channel="email",
                to_channel="sms",
                rule="e-mail failed → SMS",
                due_at=at(3),
            ),
        ),
        DeliveryAttempted(tenant_id=t, subject=invoice.id, occurred_at=at(4), data=sms),
        Delivered(tenant_id=t, subject=invoice.id, occurred_at=at(5), data=sms),
    ):
        await publish(producer, topics[DELIVERY_TOPIC], event)

    entries = [e for e in await history(tenant, invoice, at_least=8) if e.actor == "dispatcher"]
    assert [e.type for e in entries] == [
        "sent",
        "delivered",
        "delivery_failed",
        "contact_flagged",
        "fallback_scheduled",
        "sent",
        "delivered",
    ]
    assert "bounced" in entries[2].summary
    assert entries[5].summary == "invoice by SMS sent (fallback)"
    shown = (
        await tenant.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata)
    ).invoice
    assert (shown.delivery.channel, shown.delivery.status, shown.delivery.deliveries) == (
        pb.CHANNEL_SMS,
        "delivered",
        2,
    )

    customer = (
        await tenant.stub.GetCustomer(
            pb.GetCustomerRequest(customer_id=invoice.customer_id), metadata=tenant.metadata
        )
    ).customer
    assert [(f.contact, f.channel) for f in customer.flags] == [("email", pb.CHANNEL_EMAIL)]
    assert "550" in customer.flags[0].reason
    flagged = await tenant.stub.ListFlaggedCustomers(
        pb.ListFlaggedCustomersRequest(), metadata=tenant.metadata
    )
    assert [c.id for c in flagged.customers] == [invoice.customer_id]

    # The ERP sends the same e-mail again: still flagged. A new address clears the flag.
    same = customer_input(customer.number)
    await tenant.stub.UpsertCustomer(pb.UpsertCustomerRequest(customer=same), metadata=tenant.metadata)
    assert (
        await tenant.stub.ListFlaggedCustomers(pb.ListFlaggedCustomersRequest(), metadata=tenant.metadata)
    ).customers
    cleaned = customer_input(customer.number)
    cleaned.email = "ny-faktura@fjordbris.example"
    await tenant.stub.UpsertCustomer(pb.UpsertCustomerRequest(customer=cleaned), metadata=tenant.metadata)
    after = await tenant.stub.ListFlaggedCustomers(pb.ListFlaggedCustomersRequest(), metadata=tenant.metadata)
    assert list(after.customers) == []


async def test_flagged_customers_come_in_pages(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    invoices = [
        await tenant.issue(invoice_request(customer=customer_input(f"P-{n:03d}-{uuid.uuid4().hex[:4]}")))
        for n in range(3)
    ]
    for invoice in invoices:
        email = delivery(invoice)
        await publish(
            producer,
            topics[DELIVERY_TOPIC],
            ContactFlagged(
                tenant_id=tenant.tenant.id,
                subject=invoice.id,
                occurred_at=at(0),
                data=ContactFlaggedData(
                    customer_id=invoice.customer_id,
                    invoice_id=invoice.id,
                    delivery_id=email.delivery_id,
                    contact="phone",
                    channel="sms",
                    reason="unreachable",
                ),
            ),
        )

    async def everyone() -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            reply = await tenant.stub.ListFlaggedCustomers(
                pb.ListFlaggedCustomersRequest(page=common_pb2.PageRequest(page_size=2, page_token=token)),
                metadata=tenant.metadata,
            )
            seen.extend(c.number for c in reply.customers)
            token = reply.page.next_page_token
            if not token:
                return seen

    numbers = await eventually(everyone, lambda found: len(found) >= 3, what="three flagged customers")
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3


async def test_an_email_delivered_at_once_is_one_entry_and_counts_once(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    """The dispatcher announces an e-mail the receiving server took with `Delivered` alone."""
    invoice = await tenant.issue(invoice_request())
    email = delivery(invoice)
    t = tenant.tenant.id
    first = Delivered(tenant_id=t, subject=invoice.id, occurred_at=at(0), data=email)
    await publish(producer, topics[DELIVERY_TOPIC], first)
    await publish(producer, topics[DELIVERY_TOPIC], first)  # redelivered: applied once
    await publish(
        producer,
        topics[DELIVERY_TOPIC],
        Opened(tenant_id=t, subject=invoice.id, occurred_at=at(30), data=email),
    )

    entries = [e for e in await history(tenant, invoice, at_least=3) if e.actor == "dispatcher"]
    assert [(e.type, e.summary) for e in entries] == [
        ("delivered", "invoice by e-mail delivered"),
        ("opened", "invoice by e-mail opened"),
    ]
    shown = (
        await tenant.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata)
    ).invoice
    assert (shown.delivery.status, shown.delivery.deliveries) == ("opened", 1)
    assert shown.delivery.sent_at == shown.delivery.delivered_at
    assert shown.delivery.sent_at.startswith("2026-12-01T09:14")


async def test_two_replicas_applying_the_same_reports_at_once_apply_them_once(
    tenant: TenantClient, ledger_app: LedgerApp
) -> None:
    """A rebalance hands a batch to a second replica while the first still applies it: the two
    transactions conflict on the invoice, and the one retried finds the reports in its history."""
    invoice = await tenant.issue(invoice_request())
    sms = delivery(invoice, "sms")
    t = tenant.tenant.id
    batch: list[Event] = [
        DeliveryAttempted(tenant_id=t, subject=invoice.id, occurred_at=at(0), data=sms),
        Delivered(tenant_id=t, subject=invoice.id, occurred_at=at(1), data=sms),
    ]
    replicas = [DeliveryLog(ledger_app.store) for _ in range(4)]
    await asyncio.gather(*(replica.on_batch(batch) for replica in replicas))

    entries = [e for e in await history(tenant, invoice, at_least=3) if e.actor == "dispatcher"]
    assert [e.type for e in entries] == ["sent", "delivered"]
    shown = await tenant.get(invoice.id)
    assert (shown.delivery.status, shown.delivery.deliveries) == ("delivered", 1)
