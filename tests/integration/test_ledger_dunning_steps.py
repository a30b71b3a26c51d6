"""Dunning steps over Kafka as the ledger applies them: a nudge changes no amount and no stage, and only
comes before the first reminder; a step's fixed compensation is a charge line of its own, booked like a
fee, for businesses only and once; the step's channel hints and interest to date travel on to the
renderer in ChargeAdded; and the ERP (and `fordring invoices show --json`) sees every line and the stage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb

from services.cli.views import to_dict
from services.common.events import DUNNING_TOPIC, DunningActionTaken, DunningActionTakenData
from services.ledger.app import LedgerApp
from services.ledger.domain.journal import FEE_INCOME, INTEREST_INCOME, RECEIVABLE
from tests.support.kafka import TopicReader, publish
from tests.support.ledger import TenantClient, customer_input, eventually, invoice_request, today

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]


def step(tenant: TenantClient, invoice: pb.Invoice, action: str, **data: Any) -> DunningActionTaken:
    return DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id=f"action-{uuid.uuid4()}",
            invoice_id=invoice.id,
            based_on_version=data.pop("based_on_version", invoice.version),
            action=action,
            **data,
        ),
    )


def overdue(customer: pb.CustomerInput | None = None) -> pb.IssueInvoiceRequest:
    return invoice_request(customer=customer, issue_date=today() - timedelta(days=30), due_in_days=14)


def consumer() -> pb.CustomerInput:
    person = customer_input("P-1")
    person.kind = pb.CUSTOMER_KIND_CONSUMER
    person.org_number = ""
    person.name = "Kari Nordmann"
    return person


async def announced(
    reader: TopicReader, tenant: TenantClient, kind: str, proposal: DunningActionTaken
) -> Any:
    """The ChargeAdded or ProposalRejected the ledger announced for `proposal`."""

    def found() -> dict[str, Any] | None:
        for _, e in reader.events(tenant_id=tenant.tenant.id):
            data = e["data"]
            if e["type"] == kind == "ChargeAdded" and data["action_id"] == proposal.data.action_id:
                return dict(data)
            if e["type"] == kind == "ProposalRejected" and data["proposal_event_id"] == proposal.id:
                return dict(data)
        return None

    return await reader.wait_for(found, what=f"{kind} for {proposal.data.action}")


async def test_a_nudge_changes_no_amount_and_no_stage_and_carries_its_hints(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(overdue())
    assert invoice.status == pb.INVOICE_STATUS_OVERDUE
    nudge = step(tenant, invoice, "nudge", channels=["sms", "email"], payment_link=True)

    await publish(producer, topics[DUNNING_TOPIC], nudge)

    charged = await announced(invoice_events, tenant, "ChargeAdded", nudge)
    assert (charged["action"], charged["charge_minor"], charged["source_event_id"]) == ("nudge", 0, nudge.id)
    assert (charged["channels"], charged["payment_link"]) == (["sms", "email"], True)
    after = await tenant.get(invoice.id)
    assert (after.status, after.dunning_stage, list(after.charges)) == (pb.INVOICE_STATUS_OVERDUE, 0, [])
    assert after.balance.minor_units == invoice.balance.minor_units
    assert after.version == invoice.version + 1
    last = (await tenant.history(invoice.id))[-1]
    assert (last.type, last.actor, last.summary) == ("nudged", "dunning", "nudge")


async def test_a_nudge_that_charges_or_comes_after_a_reminder_is_refused(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(overdue())
    with_fee = step(tenant, invoice, "nudge", fee_minor=3500)
    await publish(producer, topics[DUNNING_TOPIC], with_fee)
    assert (await announced(invoice_events, tenant, "ProposalRejected", with_fee))[
        "reason"
    ] == "NUDGE_CHARGES"

    reminder = step(
        tenant, invoice, "reminder", fee_minor=3500, deadline=(today() + timedelta(days=14)).isoformat()
    )
    await publish(producer, topics[DUNNING_TOPIC], reminder)
    await announced(invoice_events, tenant, "ChargeAdded", reminder)
    reminded = await tenant.get(invoice.id)
    late = step(tenant, reminded, "nudge")
    await publish(producer, topics[DUNNING_TOPIC], late)
    refused = await announced(invoice_events, tenant, "ProposalRejected", late)
    assert refused["reason"] == "STAGE_PASSED"
    after = await tenant.get(invoice.id)
    assert (after.dunning_stage, [c.kind for c in after.charges]) == (1, ["reminder_fee"])


async def test_a_nudge_before_the_due_date_is_applied_a_reminder_is_not(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    """The early nudge (to a customer who paid late before) goes before the due date; nothing else does."""
    invoice = await tenant.issue(invoice_request())
    early = step(tenant, invoice, "nudge", offers=["avtalegiro", "efaktura"])
    await publish(producer, topics[DUNNING_TOPIC], early)
    charged = await announced(invoice_events, tenant, "ChargeAdded", early)
    assert charged["charge_minor"] == 0
    assert charged["offers"] == ["avtalegiro", "efaktura"]
    nudged = await tenant.get(invoice.id)
    assert nudged.status == pb.INVOICE_STATUS_OPEN
    assert nudged.dunning_stage == 0
    reminder = step(tenant, nudged, "reminder", fee_minor=35_00)
    await publish(producer, topics[DUNNING_TOPIC], reminder)
    assert (await announced(invoice_events, tenant, "ProposalRejected", reminder))["reason"] == "NOT_OVERDUE"


async def test_a_reminders_compensation_is_a_line_of_its_own_booked_like_a_fee(
    tenant: TenantClient,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    invoice_events: TopicReader,
    ledger_app: LedgerApp,
) -> None:
    invoice = await tenant.issue(overdue())  # to a business
    reminder = step(
        tenant,
        invoice,
        "reminder",
        fee_minor=35_00,
        interest_minor=12_34,
        compensation_minor=435_00,
        interest_to_date_minor=12_34,
        description="Purregebyr",
        deadline=(today() + timedelta(days=14)).isoformat(),
        channels=["ehf", "email", "print"],
        payment_link=True,
    )

    await publish(producer, topics[DUNNING_TOPIC], reminder)

    charged = await announced(invoice_events, tenant, "ChargeAdded", reminder)
    assert charged["charge_minor"] == 35_00 + 12_34 + 435_00
    assert (charged["interest_to_date_minor"], charged["channels"]) == (12_34, ["ehf", "email", "print"])
    after = await tenant.get(invoice.id)
    lines = [(c.kind, c.amount_minor, c.description) for c in after.charges]
    assert lines == [
        ("reminder_fee", 35_00, "Purregebyr"),
        ("reminder_interest", 12_34, "Purregebyr"),
        ("reminder_compensation", 435_00, "fixed compensation"),
    ]
    assert after.balance.minor_units == invoice.balance.minor_units + 35_00 + 12_34 + 435_00
    assert (after.status, after.dunning_stage) == (pb.INVOICE_STATUS_REMINDED, 1)

    entries = await ledger_app.store.journal.find(
        {"invoice_id": invoice.id, "ref": reminder.data.action_id}
    ).to_list()
    booked = {e["kind"]: {p["account"]: p["debit"] - p["credit"] for p in e["postings"]} for e in entries}
    assert booked == {
        "fee_added": {RECEIVABLE: 35_00, FEE_INCOME: -35_00},
        "interest_added": {RECEIVABLE: 12_34, INTEREST_INCOME: -12_34},
        "compensation_added": {RECEIVABLE: 435_00, FEE_INCOME: -435_00},
    }

    # What `fordring invoices show NUMBER --json` prints of it (the CLI's own conversion).
    shown = to_dict(after)
    assert shown["dunning_stage"] == 1
    assert shown["status"] == "INVOICE_STATUS_REMINDED"
    assert [(c["kind"], c["amount_minor"]) for c in shown["charges"]] == [
        ("reminder_fee", "3500"),
        ("reminder_interest", "1234"),
        ("reminder_compensation", "43500"),
    ]

    # The compensation is a fixed amount per claim: a second is refused, the notice's fee is not.
    notice = step(
        tenant,
        after,
        "collection_notice",
        fee_minor=35_00,
        compensation_minor=435_00,
        deadline=(today() + timedelta(days=28)).isoformat(),
    )
    await publish(producer, topics[DUNNING_TOPIC], notice)
    refused = await announced(invoice_events, tenant, "ProposalRejected", notice)
    assert refused["reason"] == "COMPENSATION_CHARGED"


async def test_no_compensation_from_a_consumer(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoice = await tenant.issue(overdue(consumer()))
    reminder = step(
        tenant,
        invoice,
        "reminder",
        fee_minor=35_00,
        compensation_minor=435_00,
        deadline=(today() + timedelta(days=14)).isoformat(),
    )
    await publish(producer, topics[DUNNING_TOPIC], reminder)
    refused = await announced(invoice_events, tenant, "ProposalRejected", reminder)
    assert refused["reason"] == "COMPENSATION_FROM_CONSUMER"
    after = await eventually(
        lambda: tenant.history(invoice.id), lambda h: h[-1].type == "proposal_rejected", what="the refusal"
    )
    assert "COMPENSATION_FROM_CONSUMER" in after[-1].summary
    assert list((await tenant.get(invoice.id)).charges) == []
