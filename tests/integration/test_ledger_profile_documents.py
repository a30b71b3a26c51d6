"""What the renderer reads from the ledger to draw a document: the creditor's profile version an
invoice or credit note was issued under, and a reminder's deadline and text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import DUNNING_TOPIC, DunningActionTaken, DunningActionTakenData
from services.ledger.app import LedgerApp
from services.ledger.profiles import change_profile
from tests.support.kafka import TopicReader, publish
from tests.support.ledger import MakeTenant, TenantClient, eventually, invoice_request, today

pytestmark = pytest.mark.integration

ORG = "974760673"
PROFILE: dict[str, Any] = {
    "company_form": "AS",
    "address_lines": ("Storgata 1",),
    "postal_code": "0155",
    "city": "Oslo",
    "bank_account": "86011117947",
}


async def new_version(ledger_app: LedgerApp, tenant: TenantClient, **changes: Any) -> int:
    profile, _ = await change_profile(
        ledger_app.store, tenant.tenant.id, changes, now=ledger_app.clock.now(), actor="test"
    )
    return profile.version


async def test_a_credit_note_is_issued_under_the_profile_of_its_day(
    ledger_app: LedgerApp, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(org_number=ORG)
    await new_version(ledger_app, tenant, **PROFILE)
    invoice = await tenant.issue(invoice_request())
    assert await new_version(ledger_app, tenant, footer="Ny konto fra 1. mars", iban="NO9386011117947") == 2

    credited = await tenant.credit(invoice)

    assert credited.credit_note.profile_version == 2
    assert credited.invoice.profile_version == 1
    assert (await tenant.get(credited.credit_note.id)).profile_version == 2


async def test_a_reminder_announces_its_deadline_and_text(
    proposal_consumers: LedgerApp,
    tenant: TenantClient,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    invoice_events: TopicReader,
) -> None:
    invoice = await tenant.issue(invoice_request(issue_date=today() - timedelta(days=30), due_in_days=14))
    deadline = (today() + timedelta(days=14)).isoformat()
    action = DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id="reminder-1",
            invoice_id=invoice.id,
            based_on_version=invoice.version,
            action="reminder",
            fee_minor=3500,
            description="Purregebyr",
            deadline=deadline,
        ),
    )

    await publish(producer, topics[DUNNING_TOPIC], action)

    await eventually(
        lambda: tenant.get(invoice.id), lambda i: i.status == pb.INVOICE_STATUS_REMINDED, what="the reminder"
    )
    charged = await invoice_events.wait_for(
        lambda: next(
            (
                e["data"]
                for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
                if e["type"] == "ChargeAdded" and e["subject"] == invoice.id
            ),
            None,
        ),
        what="ChargeAdded",
    )
    assert (charged["deadline"], charged["description"], charged["charge_minor"]) == (
        deadline,
        "Purregebyr",
        3500,
    )
