"""What a bank file says about incoming money, whatever its format: the shared model of the
matcher's parsers (services/matcher/adapters/bankfiles/) and its matching (services/matcher/domain/).

Amounts are integers in minor units (øre, öre). A payment keeps every identifier its bank gave it
(`bank_ids`), and `bank_key`: the one identity of the bank transaction that is the same whichever file
it comes in (a camt.054 notification and the day's camt.053 statement both carry it), so a payment
is never applied twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

FileFormat = Literal["ocr_giro", "camt.053", "camt.054", "bgmax"]
FORMATS: tuple[FileFormat, ...] = ("ocr_giro", "camt.053", "camt.054", "bgmax")


@dataclass(frozen=True)
class BankPayment:
    # Where in the file: the line (OCR Giro, BgMax) or the entry/transaction (camt, "Ntry 3 TxDtls 2").
    location: str
    # The bank transaction's identity across files (see the module docstring).
    bank_key: str
    # "credit": money in. "debit": money out of the account again — a returned payment.
    direction: Literal["credit", "debit"]
    amount_minor: int
    currency: str
    # The structured reference as given (KID, OCR, RF…); "" when there is none.
    reference: str = ""
    # Unstructured remittance text (free text records, Ustrd), joined with " / ".
    free_text: str = ""
    payer_name: str = ""
    # The payer's account: Norwegian BBAN (11 digits), IBAN, bankgiro/plusgiro number.
    payer_account: str = ""
    booking_date: date | None = None
    value_date: date | None = None
    # Every identifier the bank gave it, by name: "transaction_number", "archive_reference",
    # "form_number" (OCR Giro); "acct_svcr_ref", "end_to_end_id", "tx_id" (camt); "bgc_number" (BgMax).
    bank_ids: Mapping[str, str] = field(default_factory=dict)
    # A debit that returns an earlier payment: the bank's return reason (camt RtrInf/Rsn/Cd) and the
    # returned payment's identifiers where the file gives them.
    return_reason: str = ""
    returned_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BankFile:
    format: FileFormat
    # The format's version ("camt.054.001.08" → "08"; OCR Giro and BgMax: the file's own version).
    version: str
    # The file's own identity (transmission number, MsgId, …): the same file imported twice is seen.
    file_id: str
    # The creditor's account the payments came into (as the file gives it).
    creditor_account: str
    payments: tuple[BankPayment, ...]
    # As the file declares them (checked against the payments by the parser).
    declared_count: int
    declared_total_minor: int
    created: date | None = None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (line/record/element) and what."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}" if self.location else self.reason


class BankFileError(ValueError):
    """The file is refused whole (nothing of it is applied), with every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in problems[:10]))
