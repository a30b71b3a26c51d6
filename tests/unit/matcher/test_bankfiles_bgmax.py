"""Bankgirot BgMax: payments, deductions and extra references per deposit, counts verified."""

from __future__ import annotations

import pytest

from services.matcher.adapters.bankfiles import BankFileError, detect, parse
from tests.support.bankfiles import DAY, FilePayment, bgmax_file, from_lines, lines_of

OCR = "1234574"


def problems_of(content: bytes) -> list[str]:
    with pytest.raises(BankFileError) as caught:
        parse(content)
    return [str(p) for p in caught.value.problems]


def test_payments_deductions_and_extra_references() -> None:
    content = bgmax_file(
        [
            FilePayment(99_900, reference=OCR, currency="SEK", payer_account="3783511",
                        payer_name="Kalles Plåt AB", free_text="Faktura 658369", extra_references=("658369",),
                        bgc_number="000000000010"),
            FilePayment(5_000, reference="89853", reference_code="3", currency="SEK", debit=True),
            FilePayment(1_000, reference="9999", reference_code="5", currency="SEK"),
            FilePayment(30_000, reference=OCR, currency="EUR"),
        ]
    )  # fmt: skip

    assert detect(content) == "bgmax"
    file = parse(content)

    assert (file.format, file.version, file.creditor_account, file.created) == ("bgmax", "01", "9912346", DAY)
    assert (file.declared_count, file.declared_total_minor) == (4, 99_900 - 5_000 + 1_000 + 30_000)
    paid, deducted, wrong, euro = file.payments
    assert (paid.amount_minor, paid.currency, paid.direction, paid.reference) == (
        99_900,
        "SEK",
        "credit",
        OCR,
    )
    assert (paid.payer_name, paid.payer_account, paid.free_text) == (
        "Kalles Plåt AB",
        "3783511",
        "658369 / Faktura 658369",
    )
    assert (paid.booking_date, paid.value_date) == (DAY, DAY)
    assert paid.bank_ids == {
        "reference_code": "2", "deposit_serial_number": "00001", "account": "5841000001009823",
        "bgc_number": "000000000010",
    }  # fmt: skip
    assert paid.bank_key == "bgmax:9912346:20250620:000000000010"
    assert (deducted.direction, deducted.amount_minor, deducted.return_reason) == (
        "debit",
        5_000,
        "deduction",
    )
    assert (deducted.reference, deducted.free_text) == ("", "89853")  # code 3: free-form references
    assert (wrong.reference, wrong.bank_ids["reference_code"]) == ("9999", "5")  # kept, marked incorrect
    assert (euro.currency, euro.bank_ids["deposit_serial_number"]) == ("EUR", "00002")


def test_unknown_records_and_shortened_lines_are_fine() -> None:
    lines = [
        line.rstrip() for line in lines_of(bgmax_file([FilePayment(100, reference=OCR, currency="SEK")]))
    ]
    lines.insert(3, "99 a record type Bankgirot may add one day")

    assert parse(from_lines(lines)).payments[0].amount_minor == 100


def test_without_a_bgc_number_the_key_is_the_deposit_and_place() -> None:
    lines = lines_of(bgmax_file([FilePayment(100, currency="SEK"), FilePayment(200, currency="SEK")]))
    lines[2] = lines[2][:57] + " " * 12 + lines[2][69:]

    assert parse(from_lines(lines)).payments[0].bank_key == "bgmax:9912346:20250620:deposit:00001:1"


# --- broken files --------------------------------------------------------------------------------


def test_wrong_counts_in_the_end_and_deposit_records() -> None:
    content = bgmax_file(
        [
            FilePayment(100, currency="SEK", extra_references=("1",)),
            FilePayment(50, currency="SEK", debit=True),
        ],
        declared_counts=(2, 0, 3, 2),
        deposit_amounts={1: 150},
    )

    assert problems_of(content) == [
        "line 6: deposit declares 150 öre, the section's payments sum to 50",
        "line 7: end record declares 2 payments (20), the file has 1",
        "line 7: end record declares 0 deductions (21), the file has 1",
        "line 7: end record declares 3 extra references (22/23), the file has 1",
        "line 7: end record declares 2 deposits (15), the file has 1",
    ]


def test_truncated_bad_amount_bad_date_and_a_test_file() -> None:
    lines = lines_of(
        bgmax_file([FilePayment(100, currency="SEK"), FilePayment(200, currency="SEK")], test_mark="T")
    )
    lines[2] = lines[2][:40] + "12X" + lines[2][43:]
    lines[4] = lines[4][:37] + "20251301" + lines[4][45:]

    problems = problems_of(from_lines(lines[:-1]))

    assert problems == [
        "line 1: a test file (test mark T): its payments are not real",
        "line 3: bad amount '00012X000000000100' (18 digits in öre)",
        "line 5: bad payment date '20251301' (YYYYMMDD)",
        "line 5: deposit declares 2 payments, the section has 1",
        "line 5: deposit declares 300 öre, the section's payments sum to 200",
        "line 5: the file does not end with an end record (70); truncated?",
    ]


def test_records_out_of_place() -> None:
    lines = lines_of(bgmax_file([FilePayment(100, currency="SEK")]))
    lines.insert(1, "26Nobody")
    lines.insert(3, "25text before any payment")

    assert problems_of(from_lines(lines)) == [
        "line 2: record 26 outside a section (no opening record 05 before it)",
        "line 4: record 25 without a payment (20 or 21) before it",
    ]


def test_wrong_encoding_and_garbage() -> None:
    utf8 = (
        bgmax_file([FilePayment(100, currency="SEK", payer_name="Åsa")]).decode("iso-8859-1").encode("utf-8")
    )
    assert problems_of(utf8) == ["wrong encoding: the file is UTF-8 (re-saved?); BgMax files are ISO-8859-1"]
    with pytest.raises(BankFileError, match="unknown format"):
        parse(b"01BGMOX")
    assert problems_of(b"01BGMAX" + b"x" * 100) == ["line 1: not a BgMax file (record 01 'BGMAX' expected)"]
