"""A payment the bank returned (PaymentReversed, from a debit in a later bank file): the ledger takes back
what it paid and the credit it left, once, and refuses a return it does not recognise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    DUNNING_TOPIC,
    PAYMENT_TOPIC,
    Allocation,
    DunningActionTaken,
    DunningActionTakenData,
    PaymentMatched,
    PaymentMatchedData,
    PaymentReversed,
    PaymentReversedData,
)
from services.ledger.app import LedgerApp
from tests.support.kafka import TopicReader, publish
from tests.support.ledger import TenantClient, eventually, invoice_request, today

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]

GROSS = 1250_00


def paid_by(tenant: TenantClient, invoice: pb.Invoice, allocated: int, amount: int = 0) -> PaymentMatched:
    return PaymentMatched(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=PaymentMatchedData(
            payment_id=f"ocr-{uuid.uuid4()}",
            amount_minor=amount or allocated,
            currency="NOK",
            paid_on=today().isoformat(),
            method="kid",
            allocations=[Allocation(invoice_id=invoice.id, amount_minor=allocated)],
        ),
    )


def returned(
    tenant: TenantClient,
    payment: PaymentMatched,
    *,
    amount: int = 0,
    debit_id: str = "",
    payment_id: str = "",
) -> PaymentReversed:
    # Keyed like the payment it returns (its first invoice), so the two stay in order on Kafka.
    return PaymentReversed(
        tenant_id=tenant.tenant.id,
        subject=payment.subject,
        occurred_at=datetime.now(UTC),
        data=PaymentReversedData(
            payment_id=debit_id or f"debit-{uuid.uuid4()}",
            reverses_payment_id=payment_id or payment.data.payment_id,
            amount_minor=amount or payment.data.amount_minor,
            currency="NOK",
            paid_on=today().isoformat(),
            reason="AC04 closed account",
        ),
    )


async def paid(tenant: TenantClient, invoice: pb.Invoice, total: int) -> pb.Invoice:
    return await eventually(
        lambda: tenant.get(invoice.id),
        lambda i: i.paid_total.minor_units == total,
        what=f"{total} paid on {invoice.invoice_number}",
    )


async def announced(
    invoice_events: TopicReader, tenant: TenantClient, event_type: str, key: str, value: str
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next(
            (
                e["data"]
                for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
                if e["type"] == event_type and e["data"][key] == value
            ),
            None,
        )

    return await invoice_events.wait_for(found, what=f"{event_type} with {key} {value}")


async def test_a_returned_payment_opens_the_paid_invoice_again(
    tenant: TenantClient,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    invoice_events: TopicReader,
    ledger_app: LedgerApp,
) -> None:
    invoice = await tenant.issue(invoice_request())
    payment = paid_by(tenant, invoice, GROSS)
    await publish(producer, topics[PAYMENT_TOPIC], payment)
    settled = await paid(tenant, invoice, GROSS)
    assert settled.status == pb.INVOICE_STATUS_PAID
    back = returned(tenant, payment)

    await publish(producer, topics[PAYMENT_TOPIC], back)

    after = await paid(tenant, invoice, 0)
    assert (after.status, after.balance.minor_units, after.version) == (
        pb.INVOICE_STATUS_OPEN,
        GROSS,
        settled.version + 1,
    )
    (allocation,) = after.allocations
    assert (allocation.payment_id, allocation.reversal_payment_id) == (
        payment.data.payment_id,
        back.data.payment_id,
    )
    assert allocation.reversed_at
    last = (await tenant.history(invoice.id))[-1]
    assert (last.type, last.actor, last.status_before, last.status_after) == (
        "payment_returned",
        "matcher",
        pb.INVOICE_STATUS_PAID,
        pb.INVOICE_STATUS_OPEN,
    )
    assert payment.data.payment_id in last.summary
    assert "returned by the bank: AC04 closed account" in last.summary
    unapplied = await announced(
        invoice_events, tenant, "PaymentUnapplied", "payment_id", payment.data.payment_id
    )
    assert (unapplied["amount_minor"], unapplied["source_event_id"], unapplied["reason"]) == (
        GROSS,
        back.id,
        "AC04 closed account",
    )
    assert (unapplied["invoice"]["status"], unapplied["invoice"]["balance_minor"]) == ("open", GROSS)
    stored = await ledger_app.store.payments.find_one({"_id": payment.data.payment_id})
    assert stored is not None
    assert (stored["reversal_payment_id"], stored["reversal_event_id"]) == (back.data.payment_id, back.id)
    entries = await ledger_app.store.journal.find(
        {"tenant_id": tenant.tenant.id, "invoice_id": invoice.id, "kind": "payment_returned"}
    ).to_list()
    assert [(p["account"], p["debit"], p["credit"]) for e in entries for p in e["postings"]] == [
        ("1500", GROSS, 0),
        ("1920", 0, GROSS),
    ]


async def test_a_return_reopens_a_part_paid_invoice_and_a_reminded_one_keeps_its_stage(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    part = await tenant.issue(invoice_request())
    late = await tenant.issue(invoice_request(issue_date=today() - timedelta(days=30), due_in_days=14))
    reminder = DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=late.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id=f"action-{uuid.uuid4()}",
            invoice_id=late.id,
            based_on_version=late.version,
            action="reminder",
            fee_minor=35_00,
        ),
    )
    await publish(producer, topics[DUNNING_TOPIC], reminder)
    reminded = await eventually(
        lambda: tenant.get(late.id), lambda i: i.dunning_stage == 1, what="the reminder"
    )
    part_payment = paid_by(tenant, part, 500_00)
    full_payment = paid_by(tenant, reminded, reminded.balance.minor_units)
    await publish(producer, topics[PAYMENT_TOPIC], part_payment)
    await publish(producer, topics[PAYMENT_TOPIC], full_payment)
    assert (await paid(tenant, part, 500_00)).status == pb.INVOICE_STATUS_PART_PAID
    assert (await paid(tenant, late, GROSS + 35_00)).status == pb.INVOICE_STATUS_PAID

    await publish(producer, topics[PAYMENT_TOPIC], returned(tenant, part_payment))
    await publish(producer, topics[PAYMENT_TOPIC], returned(tenant, full_payment))

    assert (await paid(tenant, part, 0)).status == pb.INVOICE_STATUS_OPEN
    again = await paid(tenant, late, 0)
    assert (again.status, again.dunning_stage, again.balance.minor_units) == (
        pb.INVOICE_STATUS_REMINDED,
        1,
        GROSS + 35_00,
    )


async def test_a_return_takes_back_the_credit_balance_the_payment_left(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str]
) -> None:
    invoice = await tenant.issue(invoice_request())
    payment = paid_by(tenant, invoice, GROSS, amount=GROSS + 300_00)
    await publish(producer, topics[PAYMENT_TOPIC], payment)
    await paid(tenant, invoice, GROSS)
    assert (await tenant.customer(invoice.customer_number)).credit_balance.minor_units == 300_00

    await publish(producer, topics[PAYMENT_TOPIC], returned(tenant, payment))

    await paid(tenant, invoice, 0)
    customer = await tenant.customer(invoice.customer_number)
    assert customer.credit_balance.minor_units == 0


async def test_a_return_is_applied_once_and_a_second_return_of_the_payment_is_refused(
    tenant: TenantClient,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    invoice_events: TopicReader,
) -> None:
    invoice = await tenant.issue(invoice_request())
    payment = paid_by(tenant, invoice, GROSS)
    await publish(producer, topics[PAYMENT_TOPIC], payment)
    settled = await paid(tenant, invoice, GROSS)
    back = returned(tenant, payment)
    same_debit_again = returned(tenant, payment, debit_id=back.data.payment_id)
    another_debit = returned(tenant, payment)

    await publish(producer, topics[PAYMENT_TOPIC], back)
    await publish(producer, topics[PAYMENT_TOPIC], back)  # redelivered
    await publish(producer, topics[PAYMENT_TOPIC], same_debit_again)
    await publish(producer, topics[PAYMENT_TOPIC], another_debit)

    refused = await announced(
        invoice_events, tenant, "ProposalRejected", "proposal_event_id", another_debit.id
    )
    assert (refused["reason"], refused["proposal_type"], refused["invoice_id"], refused["payment_id"]) == (
        "ALREADY_REVERSED",
        "PaymentReversed",
        invoice.id,
        another_debit.data.payment_id,
    )
    after = await tenant.get(invoice.id)
    assert (after.paid_total.minor_units, after.version) == (0, settled.version + 1)
    unapplied = [
        e for _, e in invoice_events.events(tenant_id=tenant.tenant.id) if e["type"] == "PaymentUnapplied"
    ]
    assert len(unapplied) == 1
    assert [e.type for e in await tenant.history(invoice.id)][-2:] == [
        "payment_returned",
        "proposal_rejected",
    ]


async def test_a_return_of_an_unknown_payment_or_of_another_amount_changes_nothing(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(invoice_request())
    payment = paid_by(tenant, invoice, GROSS)
    await publish(producer, topics[PAYMENT_TOPIC], payment)
    settled = await paid(tenant, invoice, GROSS)
    unknown = returned(tenant, payment, payment_id=f"ocr-{uuid.uuid4()}")
    other_amount = returned(tenant, payment, amount=GROSS - 1)

    await publish(producer, topics[PAYMENT_TOPIC], unknown)
    await publish(producer, topics[PAYMENT_TOPIC], other_amount)

    not_known = await announced(invoice_events, tenant, "ProposalRejected", "proposal_event_id", unknown.id)
    assert (not_known["reason"], not_known["invoice_id"]) == ("UNKNOWN_PAYMENT", "")
    mismatch = await announced(
        invoice_events, tenant, "ProposalRejected", "proposal_event_id", other_amount.id
    )
    assert (mismatch["reason"], mismatch["invoice_id"], mismatch["current_status"]) == (
        "AMOUNT_MISMATCH",
        invoice.id,
        "paid",
    )
    after = await tenant.get(invoice.id)
    assert (after.status, after.paid_total.minor_units, after.version) == (
        pb.INVOICE_STATUS_PAID,
        GROSS,
        settled.version,
    )
    assert (await tenant.history(invoice.id))[-1].type == "proposal_rejected"
