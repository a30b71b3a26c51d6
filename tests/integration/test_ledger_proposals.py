"""Proposals over Kafka: the matcher's payments and the dunning service's actions. The ledger applies
each once, refuses what no longer fits the invoice (and says why), and parks what it cannot read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    DLQ_SUFFIX,
    DUNNING_TOPIC,
    PAYMENT_TOPIC,
    Allocation,
    DunningActionTaken,
    DunningActionTakenData,
    PaymentMatched,
    PaymentMatchedData,
)
from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.kafka import Record, TopicReader, publish
from tests.support.ledger import MakeTenant, TenantClient, customer_input, eventually, invoice_request, today

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]


def payment_matched(
    tenant: TenantClient, invoice: pb.Invoice, amount: int, *, payment_id: str = "", event_id: str = ""
) -> PaymentMatched:
    return PaymentMatched(
        **({"id": event_id} if event_id else {}),
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=PaymentMatchedData(
            payment_id=payment_id or f"ocr-{uuid.uuid4()}",
            amount_minor=amount,
            currency="NOK",
            paid_on=invoice.issue_date,
            method="kid",
            reference=invoice.kid,
            allocations=[
                Allocation(invoice_id=invoice.id, amount_minor=amount, based_on_version=invoice.version)
            ],
        ),
    )


def reminder(
    tenant: TenantClient, invoice: pb.Invoice, *, based_on_version: int, fee: int = 3500
) -> DunningActionTaken:
    return DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id=f"action-{uuid.uuid4()}",
            invoice_id=invoice.id,
            based_on_version=based_on_version,
            action="reminder",
            fee_minor=fee,
            description="Purregebyr",
            deadline=(today() + timedelta(days=14)).isoformat(),
        ),
    )


def overdue_invoice() -> pb.IssueInvoiceRequest:
    return invoice_request(issue_date=today() - timedelta(days=30), due_in_days=14)


async def applied(tenant: TenantClient, invoice: pb.Invoice, paid_total: int) -> pb.Invoice:
    return await eventually(
        lambda: tenant.get(invoice.id),
        lambda i: i.paid_total.minor_units >= paid_total,
        what=f"{paid_total} paid on invoice {invoice.invoice_number}",
    )


async def rejection_of(invoice_events: TopicReader, tenant: TenantClient, proposal_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next(
            (
                e["data"]
                for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
                if e["type"] == "ProposalRejected" and e["data"]["proposal_event_id"] == proposal_id
            ),
            None,
        )

    return await invoice_events.wait_for(found, what=f"ProposalRejected for {proposal_id}")


async def test_a_payment_is_applied_once_however_often_it_comes(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(invoice_request())
    matched = payment_matched(tenant, invoice, 500_00, payment_id="ocr-line-1")
    same_payment_again = payment_matched(tenant, invoice, 500_00, payment_id="ocr-line-1")
    later = payment_matched(tenant, invoice, 100_00)

    await publish(producer, topics[PAYMENT_TOPIC], matched)
    await publish(producer, topics[PAYMENT_TOPIC], matched)  # redelivered: the same event id
    await publish(producer, topics[PAYMENT_TOPIC], same_payment_again)  # another event, the same payment
    await publish(producer, topics[PAYMENT_TOPIC], later)  # same key, so handled after the others

    after = await applied(tenant, invoice, 600_00)
    assert after.paid_total.minor_units == 600_00
    assert [a.payment_id for a in after.allocations] == ["ocr-line-1", later.data.payment_id]
    assert after.status == pb.INVOICE_STATUS_PART_PAID
    history = await tenant.history(invoice.id)
    assert [e.actor for e in history] == ["erp:erp-test", "matcher", "matcher"]
    assert all(len(e.trace_id) == 32 for e in history)

    def payments_announced() -> list[dict[str, Any]] | None:
        found = {
            e["id"]: e["data"]
            for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
            if e["type"] == "PaymentApplied" and e["subject"] == invoice.id
        }
        return list(found.values()) if len(found) >= 2 else None

    announced = await invoice_events.wait_for(payments_announced, what="two PaymentApplied events")
    assert [p["source_event_id"] for p in announced] == [matched.id, later.id]
    assert [p["method"] for p in announced] == ["kid", "kid"]


async def test_a_payment_for_a_credited_invoice_is_rejected(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(invoice_request())
    credited = (await tenant.credit(invoice)).invoice
    matched = payment_matched(tenant, invoice, 1250_00)

    await publish(producer, topics[PAYMENT_TOPIC], matched)

    rejected = await rejection_of(invoice_events, tenant, matched.id)
    assert rejected["reason"] == "INVOICE_CREDITED"
    assert rejected["invoice_id"] == invoice.id
    assert rejected["proposal_type"] == "PaymentMatched"
    after = await tenant.get(invoice.id)
    assert (after.status, after.paid_total.minor_units, after.version) == (
        pb.INVOICE_STATUS_CREDITED,
        0,
        credited.version,
    )
    assert (await tenant.history(invoice.id))[-1].type == "proposal_rejected"
    assert (await tenant.customer("K-1000")).credit_balance.minor_units == 0


async def test_a_reminder_on_an_overdue_invoice_adds_its_fee(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(overdue_invoice())
    assert invoice.status == pb.INVOICE_STATUS_OVERDUE
    action = reminder(tenant, invoice, based_on_version=invoice.version)

    await publish(producer, topics[DUNNING_TOPIC], action)

    reminded = await eventually(
        lambda: tenant.get(invoice.id), lambda i: i.status != pb.INVOICE_STATUS_OVERDUE, what="the reminder"
    )
    assert reminded.status == pb.INVOICE_STATUS_REMINDED
    assert reminded.balance.minor_units == 1250_00 + 3500
    assert [(c.kind, c.amount_minor) for c in reminded.charges] == [("reminder_fee", 3500)]
    assert reminded.dunning_stage == 1
    last = (await tenant.history(invoice.id))[-1]
    assert (last.type, last.actor) == ("reminded", "dunning")
    assert len(last.trace_id) == 32

    def charge_added() -> dict[str, Any] | None:
        return next(
            (
                e["data"]
                for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
                if e["type"] == "ChargeAdded" and e["subject"] == invoice.id
            ),
            None,
        )

    announced = await invoice_events.wait_for(charge_added, what="ChargeAdded")
    assert (announced["action"], announced["charge_minor"], announced["source_event_id"]) == (
        "reminder",
        3500,
        action.id,
    )
    assert announced["invoice"]["status"] == "reminded"


async def test_a_stale_reminder_is_rejected_without_a_fee(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(overdue_invoice())
    part_paid = (await tenant.pay(invoice, 100_00)).invoices[0]
    stale = reminder(
        tenant, invoice, based_on_version=invoice.version
    )  # it saw the invoice before the payment

    await publish(producer, topics[DUNNING_TOPIC], stale)

    rejected = await rejection_of(invoice_events, tenant, stale.id)
    assert rejected["reason"] == "STALE"
    assert rejected["current_version"] == part_paid.version
    after = await tenant.get(invoice.id)
    assert list(after.charges) == []
    assert after.balance.minor_units == 1150_00
    assert after.status == pb.INVOICE_STATUS_OVERDUE


async def test_a_reminder_on_a_paid_invoice_is_rejected(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(overdue_invoice())
    paid = (await tenant.pay(invoice, 1250_00)).invoices[0]
    late = reminder(tenant, paid, based_on_version=paid.version)

    await publish(producer, topics[DUNNING_TOPIC], late)

    rejected = await rejection_of(invoice_events, tenant, late.id)
    assert rejected["reason"] == "INVOICE_SETTLED"
    after = await tenant.get(invoice.id)
    assert (after.status, after.balance.minor_units, list(after.charges)) == (pb.INVOICE_STATUS_PAID, 0, [])


@pytest.fixture
async def payment_dlq(backend: Backend, topics: dict[str, str]) -> AsyncIterator[TopicReader]:
    reader = TopicReader(backend.kafka_bootstrap, topics[PAYMENT_TOPIC + DLQ_SUFFIX])
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


async def test_malformed_messages_are_dead_lettered_and_the_consumer_goes_on(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], payment_dlq: TopicReader
) -> None:
    invoice = await tenant.issue(invoice_request())
    run = uuid.uuid4()
    # Not JSON at all, though it says so; and JSON that is no event envelope.
    poison = {
        f"poison-{run}-1".encode(): b"{not json",
        f"poison-{run}-2".encode(): b'{"type": "PaymentMatched"}',
    }

    for key, value in poison.items():
        await producer.send_and_wait(
            topics[PAYMENT_TOPIC], value, key=key, headers=[("content-type", b"application/json")]
        )
    await publish(producer, topics[PAYMENT_TOPIC], payment_matched(tenant, invoice, 1250_00))

    def parked() -> dict[bytes, Record] | None:
        found = {r.key: r for r in payment_dlq.records if r.key in poison}
        return found if len(found) == len(poison) else None

    for key, record in (await payment_dlq.wait_for(parked, what="the malformed messages")).items():
        assert record.value == poison[key]
        assert record.headers["x-dlq-reason"].decode().startswith("malformed envelope")
        assert record.headers["x-dlq-consumer"] == b"ledger"
    assert (await applied(tenant, invoice, 1250_00)).status == pb.INVOICE_STATUS_PAID


def matched_with(
    tenant: TenantClient,
    invoices: list[tuple[pb.Invoice, int]],
    amount: int,
    *,
    customer_id: str = "",
    tenant_id: str = "",
) -> PaymentMatched:
    first = invoices[0][0] if invoices else None
    return PaymentMatched(
        tenant_id=tenant_id or tenant.tenant.id,
        subject=first.id if first else f"payment-{uuid.uuid4()}",
        occurred_at=datetime.now(UTC),
        data=PaymentMatchedData(
            payment_id=f"ocr-{uuid.uuid4()}",
            amount_minor=amount,
            currency="NOK",
            paid_on=today().isoformat(),
            method="kid",
            customer_id=customer_id,
            allocations=[Allocation(invoice_id=inv.id, amount_minor=a) for inv, a in invoices],
        ),
    )


async def test_allocations_beyond_the_payment_are_rejected_and_change_nothing(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(invoice_request())
    too_much = matched_with(tenant, [(invoice, 150_00)], 100_00)

    await publish(producer, topics[PAYMENT_TOPIC], too_much)

    rejection = await rejection_of(invoice_events, tenant, too_much.id)
    assert rejection["reason"] == "INVALID_PROPOSAL"
    assert "exceed the payment" in rejection["detail"]
    after = await tenant.get(invoice.id)
    assert (after.paid_total.minor_units, after.version) == (0, invoice.version)
    assert [e.type for e in await tenant.history(invoice.id)] == ["issued", "proposal_rejected"]
    customer = await tenant.customer(invoice.customer_number)
    assert customer.credit_balance.minor_units == 0


async def test_money_no_invoice_owes_goes_to_the_payer_and_each_invoice_is_journaled(
    tenant: TenantClient,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    ledger_app: LedgerApp,
) -> None:
    first = await tenant.issue(invoice_request(customer=customer_input("K-1")))
    second = await tenant.issue(invoice_request(customer=customer_input("K-2")))
    await tenant.stub.UpsertCustomer(
        pb.UpsertCustomerRequest(customer=customer_input("K-3")), metadata=tenant.metadata
    )
    payer = await tenant.customer("K-3")
    gross = first.gross_total.minor_units
    # One transfer pays both invoices, and 50,00 more, from customer K-3 (a parent company).
    matched = matched_with(tenant, [(first, gross), (second, gross)], 2 * gross + 50_00, customer_id=payer.id)

    await publish(producer, topics[PAYMENT_TOPIC], matched)

    await applied(tenant, second, gross)
    assert (await tenant.customer("K-3")).credit_balance.minor_units == 50_00
    assert (await tenant.customer("K-1")).credit_balance.minor_units == 0
    entries = await ledger_app.store.journal.find(
        {"tenant_id": tenant.tenant.id, "kind": "payment_received"}
    ).to_list()
    by_invoice = {e["invoice_id"]: e for e in entries}
    for invoice in (first, second):
        receivable = sum(p["credit"] for p in by_invoice[invoice.id]["postings"] if p["account"] == "1500")
        assert receivable == gross
    unallocated = by_invoice[""]
    assert unallocated["customer_id"] == payer.id
    assert sum(p["credit"] for p in unallocated["postings"] if p["account"] == "2900") == 50_00


async def test_a_proposal_naming_another_tenants_invoice_or_customer_touches_nothing_of_theirs(
    make_tenant: MakeTenant,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    invoice_events: TopicReader,
) -> None:
    victim = await make_tenant()
    attacker = await make_tenant()
    their_invoice = await victim.issue(invoice_request())
    their_customer = await victim.customer(their_invoice.customer_number)
    history_before = await victim.history(their_invoice.id)

    payment = matched_with(attacker, [(their_invoice, 100_00)], 100_00)
    credit_grab = matched_with(attacker, [], 100_00, customer_id=their_customer.id)
    reminder_for_theirs = reminder(attacker, their_invoice, based_on_version=their_invoice.version)
    await publish(producer, topics[PAYMENT_TOPIC], payment)
    await publish(producer, topics[PAYMENT_TOPIC], credit_grab)
    await publish(producer, topics[DUNNING_TOPIC], reminder_for_theirs)

    for proposal in (payment, credit_grab, reminder_for_theirs):
        rejection = await rejection_of(invoice_events, attacker, proposal.id)
        assert rejection["current_status"] is None  # nothing of the other tenant's is told
        assert rejection["current_version"] is None
    assert await victim.history(their_invoice.id) == history_before
    after = await victim.get(their_invoice.id)
    assert (after.version, after.paid_total.minor_units) == (their_invoice.version, 0)
    assert (await victim.customer(their_invoice.customer_number)).credit_balance.minor_units == 0
    # Nothing was announced under the victim's tenant, or about its invoice under the attacker's.
    assert not [
        e for _, e in invoice_events.events(tenant_id=victim.tenant.id) if e["type"] != "InvoiceIssued"
    ]
    assert not [
        e for _, e in invoice_events.events(tenant_id=attacker.tenant.id) if e["subject"] == their_invoice.id
    ]
