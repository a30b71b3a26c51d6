"""Nets OCR Giro: hand-built files read back exactly, and every kind of broken file refused whole."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import netsgiro
import pytest

from services.matcher.adapters.bankfiles import BankFileError, detect, parse
from tests.support.bankfiles import DAY, FilePayment, from_lines, lines_of, ocr_giro_file

KID = "123456782"


def problems_of(content: bytes) -> list[str]:
    with pytest.raises(BankFileError) as caught:
        parse(content)
    return [str(p) for p in caught.value.problems]


def test_payments_are_read_with_every_identifier() -> None:
    content = ocr_giro_file(
        [
            FilePayment(125_000, reference=KID, free_text="Faktura 10042", payer_account="12345678903",
                        value_date=date(2025, 6, 19), archive_reference="123456789",
                        form_number="9636827194"),
            FilePayment(29, reference="1234567"),
        ],
        transmission_number="1700310",
    )  # fmt: skip

    assert detect(content) == "ocr_giro"
    file = parse(content)

    assert (file.format, file.file_id, file.creditor_account) == (
        "ocr_giro",
        "nets:00008080:00123456:1700310",
        "86011117947",
    )
    assert (file.declared_count, file.declared_total_minor, file.created) == (2, 125_029, DAY)
    first, second = file.payments
    assert (first.amount_minor, first.currency, first.direction, first.reference) == (
        125_000,
        "NOK",
        "credit",
        KID,
    )
    assert (first.free_text, first.payer_account) == ("Faktura 10042", "12345678903")
    assert (first.booking_date, first.value_date) == (DAY, date(2025, 6, 19))
    assert first.bank_ids == {
        "transaction_number": "0000001",
        "archive_reference": "123456789",
        "form_number": "9636827194",
        "account": "86011117947",
        "assignment_number": "1700310",
        "transaction_type": "10",
    }
    assert first.bank_key == "nets:86011117947:2025-06-20:1700310:0000001:123456789"
    assert first.location == "line 3"
    assert (second.amount_minor, second.reference, second.payer_account, second.free_text) == (
        29,
        "1234567",
        "",
        "",
    )
    assert second.value_date == DAY


def test_netsgiro_reads_the_built_files_the_same_way() -> None:
    payments = [FilePayment(125_000 + i, reference=f"{i:07d}", free_text="x" * (i % 3)) for i in range(5)]
    content = ocr_giro_file(payments)

    theirs = [
        t
        for t in netsgiro.parse(content.decode("iso-8859-1")).assignments[0].transactions
        if isinstance(t, netsgiro.Transaction)
    ]
    ours = parse(content).payments

    assert len(theirs) == 5
    assert [(t.kid, t.amount, t.date, t.text or "") for t in theirs] == [
        (p.reference, Decimal(p.amount_minor) / 100, p.booking_date, p.free_text) for p in ours
    ]


def test_a_kid_with_mod11_check_dash_is_still_a_payment() -> None:
    # netsgiro refuses this record; the payer has paid, so it is read.
    file = parse(ocr_giro_file([FilePayment(50_000, reference="1234567-")]))

    assert file.payments[0].reference == "1234567-"


def test_avtalegiro_payments_in_an_incoming_file_are_payments() -> None:
    content = ocr_giro_file(
        [
            FilePayment(
                12_500, reference=KID, payer_name="Kari N", free_text="Strøm juni", transaction_type="02"
            )
        ],
        service_code="21",
    )

    (payment,) = parse(content).payments

    assert (payment.amount_minor, payment.reference, payment.payer_name, payment.free_text) == (
        12_500, KID, "Kari N", "Strøm juni",
    )  # fmt: skip


def test_a_reversal_is_a_debit() -> None:
    file = parse(
        ocr_giro_file(
            [
                FilePayment(10_000, reference=KID),
                FilePayment(2_500, reference=KID, debit=True, transaction_type="18"),
            ]
        )
    )

    assert [(p.direction, p.amount_minor) for p in file.payments] == [("credit", 10_000), ("debit", 2_500)]
    assert file.payments[1].return_reason == "reversal (Nets transaction type 18)"


def test_norwegian_letters_in_iso_8859_1_and_crlf_line_ends() -> None:
    content = ocr_giro_file([FilePayment(100, free_text="Blåbærsyltetøy ÆØÅ")], line_end="\r\n")

    assert parse(content).payments[0].free_text == "Blåbærsyltetøy ÆØÅ"


def test_the_same_transaction_in_a_resent_transmission_keeps_its_key() -> None:
    payment = FilePayment(100, reference=KID, archive_reference="000000042")
    first = parse(ocr_giro_file([payment], transmission_number="1000001", assignment_number="5000001"))
    resent = parse(ocr_giro_file([payment], transmission_number="1000002", assignment_number="5000001"))

    assert first.file_id != resent.file_id
    assert first.payments[0].bank_key == resent.payments[0].bank_key


def test_an_empty_transmission_is_a_file_without_payments() -> None:
    assert parse(ocr_giro_file([])).payments == ()


# --- broken files --------------------------------------------------------------------------------


def good() -> list[str]:
    return lines_of(
        ocr_giro_file([FilePayment(1_000, reference=KID, free_text="hei"), FilePayment(2_000, reference=KID)])
    )


def test_truncated_file() -> None:
    problems = problems_of(from_lines(good()[:-3]))

    assert "line 6: the file does not end with a transmission end (record 89); truncated?" in problems
    assert any("assignment without its end" in p for p in problems)


def test_wrong_counts_and_totals_are_each_reported() -> None:
    problems = problems_of(
        ocr_giro_file(
            [FilePayment(1_000, reference=KID)], declared_count=2, declared_total=999, declared_records=9
        )
    )

    assert problems == [
        "line 5: assignment end declares 2 transactions, the assignment has 1",
        "line 5: assignment end declares total 999 øre, the transactions sum to 1000",
        "line 6: transmission end declares 2 transactions, the file has 1",
        "line 6: transmission end declares 9 records, the file has 6",
        "line 6: transmission end declares total 999 øre, the transactions sum to 1000",
    ]


def test_bad_amount_bad_date_and_bad_kid_in_one_record() -> None:
    lines = good()
    record = lines[2]
    lines[2] = (
        record[:15]
        + "310225"
        + record[21:32]
        + "0000000000001X000"
        + record[49:65]
        + "12A45678"
        + record[73:]
    )

    problems = problems_of(from_lines(lines))

    assert problems == [
        "line 3: bad settlement date '310225' (DDMMYY)",
        "line 3: bad amount '0000000000001X000' (17 digits in øre)",
        "line 3: bad KID '12A456782' (digits, right-aligned; a MOD11 KID may end in '-')",
    ]


def test_malformed_and_missing_records() -> None:
    lines = good()
    del lines[6]  # the second transaction's record 31
    lines[3] = lines[3][:30] + "ABCDEFGHIJ" + lines[3][40:]  # the first's record 31: letters in digit fields

    problems = problems_of(from_lines(lines))

    assert (
        "line 4: malformed amount item 2 (record 31):"
        " form number, archive reference, date and account must be digits" in problems
    )
    assert "line 6: transaction without its amount item 2 (record 31)" in problems


def test_wrong_line_length_and_unknown_record() -> None:
    lines = good()
    lines[2] = lines[2][:79]
    lines.insert(4, "NY0910990000001" + "0" * 65)

    problems = problems_of(from_lines(lines))

    assert problems[:2] == [
        "line 3: 79 characters, OCR Giro records have 80",
        "line 5: unknown record type '99'",
    ]


def test_transaction_number_used_twice() -> None:
    lines = good()
    lines[5] = lines[5][:8] + "0000001" + lines[5][15:]
    lines[6] = lines[6][:8] + "0000001" + lines[6][15:]

    assert "line 6: transaction number 0000001 appears twice in assignment 1000001" in problems_of(
        from_lines(lines)
    )


def test_garbage_and_empty() -> None:
    with pytest.raises(BankFileError, match="unknown format"):
        parse(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(BankFileError, match="unknown format"):
        parse(b"")
    assert problems_of(b"NY000010 not a start record\n") == [
        "line 1: not an OCR Giro transmission start (record 10: 'NY000010' …)"
    ]


def test_wrong_encoding() -> None:
    utf8 = ocr_giro_file([FilePayment(100, free_text="Blåbær")]).decode("iso-8859-1").encode("utf-8")
    assert problems_of(utf8) == [
        "wrong encoding: the file is UTF-8 (re-saved?); OCR Giro files are ISO-8859-1"
    ]

    utf16 = ocr_giro_file([FilePayment(100)]).decode("iso-8859-1").encode("utf-16")
    with pytest.raises(BankFileError, match="the file looks like UTF-16"):
        parse(utf16, format="ocr_giro")

    lines = good()
    lines[4] = lines[4][:20] + "\x96" + lines[4][21:]  # a Windows-1252 dash in the free text
    assert problems_of(from_lines(lines)) == ["line 5: control character '\\x96' at position 21"]


def test_every_problem_is_reported_not_just_the_first() -> None:
    lines = lines_of(ocr_giro_file([FilePayment(1_000 + i, reference=KID) for i in range(50)]))
    for index in range(2, 102, 2):
        lines[index] = lines[index][:32] + "x" * 17 + lines[index][49:]

    problems = problems_of(from_lines(lines))

    assert sum("bad amount" in p for p in problems) == 50
