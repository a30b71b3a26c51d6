"""The invoice's delivery summary as the dispatcher's reports come in: a delivery starts with its
attempt, or with `Delivered` alone when the provider took and delivered it at once (e-mail); a late
report about a delivery the summary moved on from does not start it again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.events import Delivered, DeliveryAttempted, DeliveryData, DeliveryFailed, Event, Opened
from services.common.mongo import Doc
from services.ledger.deliveries import history_text, next_delivery

T0 = datetime(2026, 12, 1, 9, 14, tzinfo=UTC)


def data(channel: str = "email", **changes: Any) -> DeliveryData:
    fields: dict[str, Any] = {
        "delivery_id": str(uuid.uuid4()),
        "invoice_id": "inv-1",
        "invoice_number": "10001",
        "customer_id": "cus-1",
        "document_kind": "invoice",
        "rendering_id": "r-1",
        "channel": channel,
    }
    return DeliveryData(**(fields | changes))


def apply(summary: Doc | None, *steps: tuple[type[Event], DeliveryData, int]) -> Doc | None:
    for kind, d, minutes in steps:
        at = T0 + timedelta(minutes=minutes)
        event = kind(tenant_id="t", subject=d.invoice_id, occurred_at=at, data=d)
        summary = next_delivery(summary, event, at) or summary
    return summary


def test_an_email_delivered_at_once_was_sent_then_too() -> None:
    email = data()
    summary = apply(None, (Delivered, email, 0))
    assert summary is not None
    assert summary["status"] == "delivered"
    assert summary["sent_at"] == summary["delivered_at"] == T0
    assert summary["deliveries"] == 1
    event = Delivered(tenant_id="t", subject="inv-1", occurred_at=T0, data=email)
    assert history_text(event) == ("delivered", "invoice by e-mail delivered")


def test_a_late_receipt_about_an_earlier_delivery_is_not_a_new_one() -> None:
    sms = data("sms")
    reminder = data(document_kind="reminder")
    summary = apply(None, (DeliveryAttempted, sms, 0), (Delivered, reminder, 60), (Delivered, sms, 90))
    assert summary is not None
    # The SMS's receipt came after the reminder went out: the summary stays on the reminder.
    assert (summary["delivery_id"], summary["channel"], summary["deliveries"]) == (
        reminder.delivery_id,
        "email",
        2,
    )
    assert summary["sent_at"] == T0 + timedelta(minutes=60)
    # An open of the earlier one still tells something (the customer read it).
    summary = apply(summary, (Opened, sms, 120))
    assert summary is not None
    assert summary["opened_at"] == T0 + timedelta(minutes=120)


def test_a_failed_send_then_a_fallback_delivered_at_once() -> None:
    email = data(attempt=3, code="bounced", reason="550", final=True)
    fallback = data(route="fallback")
    summary = apply(None, (DeliveryAttempted, email, 0), (DeliveryFailed, email, 2), (Delivered, fallback, 5))
    assert summary is not None
    assert (summary["status"], summary["deliveries"], summary["earlier"]) == (
        "delivered",
        2,
        [email.delivery_id],
    )
    event = Delivered(tenant_id="t", subject="inv-1", occurred_at=T0, data=fallback)
    assert history_text(event)[1] == "invoice by e-mail delivered (fallback)"


def test_the_summary_remembers_a_bounded_number_of_earlier_deliveries() -> None:
    summary: Doc | None = None
    for n in range(30):
        summary = apply(summary, (Delivered, data(), n))
    assert summary is not None
    assert summary["deliveries"] == 30
    assert len(summary["earlier"]) == 20
