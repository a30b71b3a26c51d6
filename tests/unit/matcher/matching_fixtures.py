"""Open items and payments for the matching tests, built directly (no parser, no database)."""

from __future__ import annotations

from datetime import date, timedelta

from services.common.kid import KidScheme, generate_kid
from services.matcher.domain.open_items import OpenItem
from services.matcher.domain.payments import BankPayment


def kid(n: int) -> str:
    return generate_kid(n, length=10, scheme=KidScheme.MOD10)


def item(
    n: int,
    *,
    customer: str = "c1",
    open_minor: int = 100_000,
    status: str = "open",
    currency: str = "NOK",
    due_days: int = 0,
    kid_: str | None = None,
    number: str | None = None,
    total_minor: int | None = None,
) -> OpenItem:
    return OpenItem(
        invoice_id=f"inv-{n}",
        invoice_number=number if number is not None else str(n),
        kid=kid_ if kid_ is not None else kid(n),
        customer_id=customer,
        customer_number=customer.removeprefix("c"),
        currency=currency,
        open_minor=open_minor,
        status=status,
        due_date=date(2025, 1, 1) + timedelta(days=due_days or n),
        version=3,
        total_minor=open_minor if total_minor is None else total_minor,
    )


def paid(n: int, *, customer: str = "c1", total_minor: int = 100_000) -> OpenItem:
    return item(n, customer=customer, open_minor=0, status="paid", total_minor=total_minor)


def payment(
    amount_minor: int,
    *,
    reference: str = "",
    free_text: str = "",
    payer_account: str = "",
    payer_name: str = "",
    currency: str = "NOK",
    direction: str = "credit",
) -> BankPayment:
    assert direction in ("credit", "debit")
    return BankPayment(
        location="line 1",
        bank_key="bank-1",
        direction="credit" if direction == "credit" else "debit",
        amount_minor=amount_minor,
        currency=currency,
        reference=reference,
        free_text=free_text,
        payer_account=payer_account,
        payer_name=payer_name,
    )
