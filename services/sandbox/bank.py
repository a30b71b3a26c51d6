"""The sandbox bank: a day of incoming payments for a creditor's invoices, written as the bank's file
(Nets OCR Giro or ISO 20022 camt.054), with what each payment should come to.

The payers behave as a `Scenario` says: most pay an invoice in full with its KID; some pay part of it
or too much; some mistype the KID by one keying error (a wrong digit, two adjacent digits swapped, a
digit missing or one too many); some give no KID but the invoice number in the text; a few pay two or
three invoices of theirs at once (the numbers in the text, or nothing but the sum from their known
account); and a few payments are ambiguous on purpose (a mistyped KID that fits two invoices, an
unknown payer with an amount several invoices share). The same invoices and seed give the same file.

Every expectation holds against all the invoices given, closed ones included: a mistyped KID is kept
only when no other invoice within one keying error fits the payment's amount or payer; a part or
over-payment's amount is no invoice's amount; a payment of several invoices by the payer's account
alone is the only set of that customer's open invoices adding up to it. An invoice gets at most one
payment in a file, and a customer paid by their account alone gets no other, so the order in which
the payments are decided does not change what they come to.

    made = generate_file(invoices, seed=7, day=date(2025, 6, 20))
    made.content                     # the file's bytes
    made.payments[0].pays            # {"10042": 125000}: invoice number → amount; {} = review
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from services.sandbox.bank_keying import KEYING_ERRORS, norwegian_account, norwegian_iban
from services.sandbox.bank_payers import plan_payments
from services.sandbox.bank_scenarios import (
    FILE_KINDS,
    METHODS,
    SCENARIOS,
    BankInvoice,
    ExpectedPayment,
    FileKind,
    Kind,
    Scenario,
)
from services.sandbox.bankfiles import CREDITOR_ACCOUNT, camt054, ocr_giro_file


@dataclass(frozen=True)
class GeneratedFile:
    format: FileKind
    filename: str
    content: bytes
    payments: tuple[ExpectedPayment, ...]
    day: date
    # The file's own number: the OCR Giro transmission number, the camt MsgId.
    file_number: str
    creditor_account: str
    # OCR Giro: the assignment the transactions are in (kept when the file is sent again).
    assignment_number: str = ""
    camt_version: str = "08"

    @property
    def total_minor(self) -> int:
        return sum(p.payment.amount_minor for p in self.payments)

    def kinds(self) -> Counter[str]:
        return Counter(p.kind for p in self.payments)

    def paid(self) -> dict[str, int]:
        """Invoice number → what the file's payments should pay on it, in all."""
        paid: dict[str, int] = defaultdict(int)
        for expected in self.payments:
            for number, amount in expected.pays.items():
                paid[number] += amount
        return dict(paid)

    def in_review(self) -> tuple[ExpectedPayment, ...]:
        return tuple(p for p in self.payments if p.review)

    def resent(self) -> GeneratedFile:
        """The same bank transactions sent again in another transmission (another file number): every
        payment in it is one the matcher has seen."""
        number = f"{(int(self.file_number[-7:]) % 9_999_999) + 1:07d}"
        if self.format == "camt.054":
            number = f"{self.file_number}-R"
        return _render(
            self.format,
            self.payments,
            self.day,
            number,
            self.assignment_number,
            self.creditor_account,
            self.camt_version,
        )


def generate_file(
    invoices: Iterable[BankInvoice],
    *,
    seed: int,
    day: date,
    scenario: Scenario | str = "realistic",
    format: FileKind = "ocr_giro",
    creditor_account: str = CREDITOR_ACCOUNT,
    camt_version: str = "08",
) -> GeneratedFile:
    """The day's file of payments for `invoices` (all the creditor's invoices the payers may refer to;
    only open ones in NOK are paid)."""
    chosen = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    if format not in FILE_KINDS:
        raise ValueError(f"format must be one of {', '.join(FILE_KINDS)}, not {format!r}")
    rng = random.Random(f"fordring-sandbox-bank:{seed}:{day.isoformat()}")  # noqa: S311 - sandbox data
    planned = plan_payments(list(invoices), chosen, rng, day, format)
    file_number = f"{rng.randint(1, 9_999_999):07d}"
    if format == "camt.054":
        file_number = f"FORDRING-{day:%Y%m%d}-{file_number}"
    return _render(format, planned, day, file_number, file_number[-7:], creditor_account, camt_version)


def _render(
    format: FileKind,
    payments: Sequence[ExpectedPayment],
    day: date,
    file_number: str,
    assignment_number: str,
    creditor_account: str,
    camt_version: str,
) -> GeneratedFile:
    rows = [p.payment for p in payments]
    if format == "ocr_giro":
        content = ocr_giro_file(
            rows,
            transmission_number=file_number,
            assignment_number=assignment_number,
            account=creditor_account,
            nets_date=day,
        )
        filename = f"OCR.{day:%Y%m%d}.{file_number}.txt"
    else:
        content = camt054(
            rows, camt_version, msg_id=file_number, account=norwegian_iban(creditor_account), created=day
        )
        filename = f"camt054.{day:%Y%m%d}.{file_number}.xml"
    return GeneratedFile(
        format,
        filename,
        content,
        tuple(payments),
        day,
        file_number,
        creditor_account,
        assignment_number,
        camt_version,
    )


__all__ = [
    "FILE_KINDS",
    "KEYING_ERRORS",
    "METHODS",
    "SCENARIOS",
    "BankInvoice",
    "ExpectedPayment",
    "FileKind",
    "GeneratedFile",
    "Kind",
    "Scenario",
    "generate_file",
    "norwegian_account",
    "norwegian_iban",
]
