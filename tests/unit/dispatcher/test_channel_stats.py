"""Channel effectiveness: share delivered and opened, paid on or before the due date, days to pay."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from services.dispatcher.api import channel_stats

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def delivery(n: int, channel: str, status: str, **fields: object) -> dict[str, Any]:
    return {
        "_id": f"d{n}",
        "invoice_id": f"i{n}",
        "kind": "invoice",
        "channel": channel,
        "status": status,
        **fields,
    }


def test_shares_and_days_to_payment_per_channel() -> None:
    deliveries = [
        delivery(1, "email", "opened", delivered_at=T0, opened_at=T0),
        delivery(2, "email", "delivered", delivered_at=T0),
        delivery(3, "email", "failed"),
        delivery(4, "sms", "delivered", delivered_at=T0),
    ]
    invoices: dict[str, dict[str, Any]] = {
        "i1": {"due_date": "2026-11-16", "paid_at": datetime(2026, 11, 6, 9, 0, tzinfo=UTC)},
        "i2": {"due_date": "2026-11-16"},  # not paid, past due: judged, late
        "i3": {"due_date": "2026-11-16"},
        "i4": {"due_date": "2026-11-16", "paid_at": datetime(2026, 11, 20, 9, 0, tzinfo=UTC)},
    }
    stats = {s.channel: s for s in channel_stats(deliveries, invoices, date(2026, 12, 1))}
    email = stats["email"]
    assert (email.deliveries, email.delivered, email.opened, email.failed, email.paid) == (3, 2, 1, 1, 1)
    assert round(email.share_delivered, 3) == round(2 / 3, 3)
    assert email.share_opened == 0.5
    assert email.share_paid_before_due == 0.5
    assert email.days_to_payment == 4.0
    sms = stats["sms"]
    assert sms.share_paid_before_due == 0.0
    assert sms.days_to_payment == 18.0


def test_invoices_not_yet_due_and_unpaid_are_not_judged() -> None:
    stats = channel_stats(
        [delivery(1, "ehf", "delivered", delivered_at=T0)],
        {"i1": {"due_date": "2026-12-30"}},
        date(2026, 12, 1),
    )
    assert stats[0].share_paid_before_due == 0.0
    assert stats[0].paid == 0
