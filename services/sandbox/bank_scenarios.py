"""What the sandbox bank is given and what it promises: the creditor's invoices as payers see them,
how the payers behave (`Scenario`), and what each payment of a file should come to (`ExpectedPayment`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from services.sandbox.bankfiles import FilePayment

FileKind = Literal["ocr_giro", "camt.054"]
FILE_KINDS: Final[tuple[FileKind, ...]] = ("ocr_giro", "camt.054")
Kind = Literal[
    "exact",
    "part",
    "over",
    "kid_typo",
    "free_text",
    "multi_text",
    "multi_account",
    "ambiguous_typo",
    "unknown_payer",
]
SingleKind = Literal["exact", "part", "over", "kid_typo", "free_text"]
# The matcher's method for each kind that it should match by itself.
METHODS: Final[Mapping[Kind, str]] = {
    "exact": "kid",
    "part": "kid",
    "over": "kid",
    "kid_typo": "kid_typo",
    "free_text": "free_text",
    "multi_text": "free_text",
    "multi_account": "payer_set",
}
# The matcher sums sets of at most this many of a payer's open invoices, among at most _MAX_SET_ITEMS.


@dataclass(frozen=True)
class BankInvoice:
    """An invoice as its payer sees it, and what the creditor knows about the customer."""

    number: str
    kid: str
    # What is open on it: what paying it in full means (for a closed invoice: what it asked for).
    amount_minor: int
    currency: str = "NOK"
    customer_number: str = ""
    customer_name: str = ""
    # The customer's bank account the creditor knows (BBAN), "" when none.
    customer_account: str = ""
    # False for a paid, credited or written-off invoice: never paid again, but its KID is still known.
    is_open: bool = True
    # What the invoice asked for in all; 0: the same as amount_minor.
    total_minor: int = 0

    @property
    def amounts(self) -> frozenset[int]:
        return frozenset({self.amount_minor, self.total_minor or self.amount_minor})


@dataclass(frozen=True)
class Scenario:
    """How the payers behave. `weights`: how single-invoice payments are made, relative to each other."""

    name: str
    # The share of the open invoices that get paid (in one way or another) in the file.
    paid_share: float
    weights: tuple[tuple[SingleKind, int], ...]
    # Payments of several invoices at once, and each kind of deliberately ambiguous payment, per invoice.
    multi_share: float = 0.0
    ambiguous_share: float = 0.0
    # At least one payment of each kind with a weight or share, where the invoices allow it.
    every_kind: bool = True


SCENARIOS: Final[Mapping[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario(
            "realistic",
            paid_share=0.8,
            weights=(("exact", 70), ("part", 8), ("over", 5), ("kid_typo", 8), ("free_text", 7)),
            multi_share=0.02,
            ambiguous_share=0.01,
        ),
        Scenario("clean", paid_share=1.0, weights=(("exact", 1),)),
        Scenario(
            "messy",
            paid_share=0.9,
            weights=(("exact", 40), ("part", 12), ("over", 8), ("kid_typo", 22), ("free_text", 18)),
            multi_share=0.05,
            ambiguous_share=0.03,
        ),
    )
}


@dataclass(frozen=True)
class ExpectedPayment:
    """One payment of the file, and what a correct matcher makes of it."""

    kind: Kind
    payment: FilePayment
    # Invoice number → amount it should pay; empty: the payment belongs in the review queue.
    pays: Mapping[str, int] = field(default_factory=dict)
    # The part of the payment that becomes the customer's credit balance (an over-payment).
    credit_minor: int = 0
    # The invoices a payment in review may be for (what the matcher should suggest).
    candidates: tuple[str, ...] = ()
    # For people: what the payer did ("KID 0000004206 typed 0000004260: two adjacent digits swapped").
    note: str = ""

    @property
    def review(self) -> bool:
        return not self.pays

    @property
    def method(self) -> str:
        """The matcher's method for a payment it should match; "" for one in review."""
        return "" if self.review else METHODS[self.kind]

    @property
    def bank_id(self) -> str:
        """The bank's own reference of the transaction (OCR Giro archive reference, camt AcctSvcrRef)."""
        return self.payment.acct_svcr_ref or self.payment.archive_reference
