"""Double-entry postings for every change to a claim. Each entry balances: debits equal credits.

Accounts follow the Norwegian standard chart (NS 4102); a tenant maps them onward to its own
general ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RECEIVABLE: Final = "1500"  # Kundefordringer
BANK: Final = "1920"  # Bankinnskudd
VAT_OUTPUT: Final = "2700"  # Utgående merverdiavgift
CUSTOMER_CREDIT: Final = "2900"  # Forskudd fra kunder (overpayments, credit balance)
REVENUE: Final = "3000"  # Salgsinntekt
FEE_INCOME: Final = "3900"  # Annen driftsinntekt (reminder and notice fees)
INTEREST_INCOME: Final = "8050"  # Renteinntekter (late-payment interest)
BAD_DEBT: Final = "7830"  # Tap på fordringer


@dataclass(frozen=True)
class Posting:
    account: str
    debit: int = 0
    credit: int = 0


class UnbalancedEntry(ValueError):
    pass


def _entry(*postings: Posting) -> tuple[Posting, ...]:
    kept = tuple(p for p in postings if p.debit or p.credit)
    if sum(p.debit for p in kept) != sum(p.credit for p in kept):
        raise UnbalancedEntry(f"debits and credits differ: {kept}")
    return kept


def invoice_issued(net: int, vat: int) -> tuple[Posting, ...]:
    return _entry(
        Posting(RECEIVABLE, debit=net + vat), Posting(REVENUE, credit=net), Posting(VAT_OUTPUT, credit=vat)
    )


def credit_note_issued(net: int, vat: int, *, to_customer_credit: int = 0) -> tuple[Posting, ...]:
    """Reverses revenue and VAT; what the invoice no longer owes but was paid goes to customer credit."""
    return _entry(
        Posting(REVENUE, debit=net),
        Posting(VAT_OUTPUT, debit=vat),
        Posting(RECEIVABLE, credit=net + vat - to_customer_credit),
        Posting(CUSTOMER_CREDIT, credit=to_customer_credit),
    )


def payment_received(allocated: int, unallocated: int) -> tuple[Posting, ...]:
    return _entry(
        Posting(BANK, debit=allocated + unallocated),
        Posting(RECEIVABLE, credit=allocated),
        Posting(CUSTOMER_CREDIT, credit=unallocated),
    )


def payment_returned(allocated: int, unallocated: int) -> tuple[Posting, ...]:
    """The bank returned a payment: `payment_received` reversed (the invoices owe it again, and the
    credit balance it made is taken back)."""
    return _entry(
        Posting(RECEIVABLE, debit=allocated),
        Posting(CUSTOMER_CREDIT, debit=unallocated),
        Posting(BANK, credit=allocated + unallocated),
    )


def charge_added(amount: int, *, interest: bool) -> tuple[Posting, ...]:
    return _entry(
        Posting(RECEIVABLE, debit=amount), Posting(INTEREST_INCOME if interest else FEE_INCOME, credit=amount)
    )


def written_off(amount: int) -> tuple[Posting, ...]:
    return _entry(Posting(BAD_DEBT, debit=amount), Posting(RECEIVABLE, credit=amount))
