"""Bank files built by hand for the tests: the builders are the sandbox bank's
(services/sandbox/bankfiles.py); here only what breaks a file's lines for a test.

    ocr_giro_file([FilePayment(125_000, reference="123456782")])
    camt054([FilePayment(125_000, reference="123456782", acct_svcr_ref="A1")], version="04")
    bgmax_file([FilePayment(9_900, reference="1234574", currency="SEK")])
"""

from __future__ import annotations

from collections.abc import Sequence

from services.sandbox.bankfiles import (
    CAMT_VERSIONS,
    CREDITOR_ACCOUNT,
    CREDITOR_IBAN,
    DAY,
    PAYEE_BANKGIRO,
    FilePayment,
    amount_text,
    bgmax_file,
    camt053,
    camt054,
    ocr_giro_file,
)


def lines_of(content: bytes) -> list[str]:
    """A fixed-width file's records (to break one in a test)."""
    return content.decode("iso-8859-1").splitlines()


def from_lines(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("iso-8859-1")


__all__ = [
    "CAMT_VERSIONS",
    "CREDITOR_ACCOUNT",
    "CREDITOR_IBAN",
    "DAY",
    "PAYEE_BANKGIRO",
    "FilePayment",
    "amount_text",
    "bgmax_file",
    "camt053",
    "camt054",
    "from_lines",
    "lines_of",
    "ocr_giro_file",
]
