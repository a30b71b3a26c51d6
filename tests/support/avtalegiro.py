"""AvtaleGiro deliveries for the tests: a creditor with an agreement, a consumer payer, a claim of
NOK 1 250 due on 30 June 2025 (sent on the morning of Monday 16 June, Oslo time)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.common.ids import new_id
from services.dispatcher.adapters.base import Creditor, DocumentKind, Outgoing, Payment, Recipient

TRANSMITTER = "12345678"
NETS = "00008080"
ACCOUNT = "12345678903"
OTHER_ACCOUNT = "86011117947"
KID = "123456782"
# Monday 16 June 2025, 09:00 in Oslo: the earliest due date is Friday 20 June.
MORNING = datetime(2025, 6, 16, 7, 0, tzinfo=UTC)
DUE = date(2025, 6, 30)


def claim(
    *,
    kid: str = KID,
    amount_minor: int = 125_000,
    due_date: date = DUE,
    currency: str = "NOK",
    kind: DocumentKind = "invoice",
    settings: dict[str, str] | None = None,
    delivery_id: str | None = None,
) -> Outgoing:
    return Outgoing(
        delivery_id=delivery_id or new_id(),
        tenant_id="tenant-1",
        invoice_id=new_id(),
        invoice_number="10042",
        kind=kind,
        channel="avtalegiro",
        recipient=Recipient(customer_id="c-1", customer_number="1001", name="Kari Nordmann", kind="consumer"),
        creditor=Creditor(
            tenant_id="tenant-1",
            legal_name="Fjordlys Økonomi AS",
            org_number="974760673",
            settings={"avtalegiro.agreement": ACCOUNT} if settings is None else settings,
        ),
        documents={},
        payment=Payment(
            amount_minor=amount_minor,
            currency=currency,
            due_date=due_date,
            kid=kid,
            payment_link="https://pay.example.invalid/i/x",
        ),
    )
