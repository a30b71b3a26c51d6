"""Nets OCR Giro (incoming payments with KID, Norway): 80-character ISO-8859-1 records starting "NY".

Record layout (Nets "OCR giro — system specification"; the same fields as `netsgiro.records`):

    10 transmission start  9-16 data transmitter, 17-23 transmission number, 24-31 data recipient
    20 assignment start    9-17 agreement id, 18-24 assignment number, 25-35 assignment account
    30 amount item 1       5-6 transaction type, 9-15 transaction number, 16-21 settlement date (DDMMYY),
                           22-31 centre/day code/partial settlement, 32 sign, 33-49 amount in øre,
                           50-74 KID (right-aligned)
    31 amount item 2       16-25 form number, 26-34 archive reference, 42-47 payer's bank date,
                           48-58 debited account
    32 amount item 3       16-55 free text
    88 assignment end      9-16 transactions, 17-24 records, 25-41 total amount, 42-47 settlement date
    89 transmission end    9-16 transactions, 17-24 records, 25-41 total amount, 42-47 Nets date

Service code 09 is OCR Giro; service code 21 (AvtaleGiro) amount items in an incoming file are
payments too (AvtaleGiro assignments of agreements (24) or cancellations (36) are not).

The records are read here, one compiled pattern per record type (a record that fails it is then
examined field by field to say what is wrong), rather than with `netsgiro.parse`: netsgiro rejects
KIDs whose MOD11 check digit is "-" (a payment with such a KID must still be read: the payer paid),
ignores the sign, and builds several attrs objects per record, about three times slower on a
50 000-payment file. Its layout is the reference: a test reads the builders' files with netsgiro too.

bank_key: "nets:<assignment account>:<settlement date>:<assignment number>:<transaction number>:
<archive reference>". Nets numbers assignments and the transactions in them, and a resent assignment
keeps its numbers; the settlement date guards against a 7-digit assignment number coming round again,
and the archive reference is the bank's own reference of the same transaction. The transmission
number is left out on purpose: a resend may come in another transmission.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from services.matcher.adapters.bankfiles.common import (
    Problems,
    control_character,
    decode_latin1,
    split_lines,
    unique_keys,
    yymmdd,
)
from services.matcher.domain.payments import BankFile, BankPayment

FORMAT_NAME = "OCR Giro"
RECORD_LENGTH = 80

# Transaction types whose amount leaves the account again (Nets: 18 reversing with KID, 20 reversing
# with text); the sign in position 32 says the same for any type.
_REVERSALS = frozenset({"18", "20"})
# Any ISO-8859-1 character but the control characters (see common.control_character).
_P = r"[^\x00-\x1f\x7f-\x9f]"
_TRANSMISSION_START = re.compile(r"NY000010([0-9]{8})([0-9]{7})([0-9]{8})0{49}")
_TRANSMISSION_END = re.compile(r"NY000089([0-9]{8})([0-9]{8})([0-9]{17})([0-9]{6})0{33}")
_ASSIGNMENT_START = re.compile(r"NY(09|21)([0-9]{2})20([0-9]{9})([0-9]{7})([0-9]{11})0{45}")
_ASSIGNMENT_END = re.compile(r"NY(09|21)([0-9]{2})88([0-9]{8})([0-9]{8})([0-9]{17})([0-9]{6})")
# The fast path: a record that matches is well-formed; one that does not is examined field by field.
# Amount item 1: type, transaction number, settlement date, sign, amount, KID (a MOD11 KID may end in "-").
_AMOUNT_ITEM_1 = re.compile(
    rf"NY(?:09|21)([0-9]{{2}})30([0-9]{{7}})([0-9]{{6}}){_P}{{10}}([-0 ])([0-9]{{17}})"
    rf"( *[0-9]*[0-9-]| {{25}}){_P}{{6}}"
)
_KID = re.compile(r" *(?:[0-9]*[0-9-])?")
# OCR Giro amount item 2: type, transaction number, form number, archive reference, payer's bank date,
# debited account. AvtaleGiro: type, transaction number, payer name, the claim's reference.
_AMOUNT_ITEM_2 = re.compile(
    rf"NY09([0-9]{{2}})31([0-9]{{7}})([0-9]{{10}})([0-9]{{9}}){_P}{{7}}([0-9]{{6}})([0-9]{{11}}){_P}{{22}}"
)
_AVTALEGIRO_ITEM_2 = re.compile(rf"NY21([0-9]{{2}})31([0-9]{{7}})({_P}{{10}}){_P}{{25}}({_P}{{25}}){_P}{{5}}")
_AMOUNT_ITEM_3 = re.compile(rf"NY09([0-9]{{2}})32([0-9]{{7}})({_P}{{40}}){_P}{{25}}")
# Assignment types that carry payments: 00 (transactions). 24 = AvtaleGiro agreements, 36 = cancellations.
_PAYMENT_ASSIGNMENT = "00"
_TRANSACTION_RECORDS = frozenset({"30", "31", "32", "49", "70"})
_NO_DATE = "000000"
_NO_ACCOUNT = "00000000000"


class _Assignment:
    __slots__ = (
        "account", "broken", "credit", "debit", "key", "line", "number", "numbers", "records", "service",
        "transactions", "type",
    )  # fmt: skip

    def __init__(self, line: int, service: str, type_: str, number: str, account: str) -> None:
        self.line = line
        self.service = service
        self.type = type_
        self.number = number
        self.account = account
        self.key = f"nets:{account}:"
        self.records = 1
        self.transactions = 0
        self.credit = 0
        self.debit = 0
        self.numbers: set[str] = set()
        # A transaction record was refused: its amount is unknown, so the totals are not compared.
        self.broken = False


class _Transaction:
    """A transaction being read: its amount item 1, until its item 2 (and 3) complete it."""

    __slots__ = ("amount", "debit", "free_text", "item_2", "kid", "line", "number", "settled", "type")

    def __init__(self, line: int, type_: str, number: str, settled: date, debit: bool, amount: int, kid: str):
        self.line = line
        self.type = type_
        self.number = number
        self.settled = settled
        self.debit = debit
        self.amount = amount
        self.kid = kid
        self.item_2: re.Match[str] | None = None
        self.free_text = ""


def parse(content: bytes) -> BankFile:
    problems = Problems()
    text = decode_latin1(content, FORMAT_NAME, problems, record_length=RECORD_LENGTH)
    problems.raise_if_any()
    lines = split_lines(text)
    if not lines:
        problems.add("", "empty file")
        problems.raise_if_any()
    return _Reader(lines, problems).read()


class _Reader:
    def __init__(self, lines: list[str], problems: Problems) -> None:
        self.lines = lines
        self.problems = problems
        self.payments: list[BankPayment] = []
        self.accounts: list[str] = []
        self.dates: dict[str, date | None] = {}
        self.iso_dates: dict[date, str] = {}

    def day(self, text: str) -> date | None:
        try:
            return self.dates[text]
        except KeyError:
            self.dates[text] = found = yymmdd(text)
            return found

    def iso(self, day: date) -> str:
        try:
            return self.iso_dates[day]
        except KeyError:
            self.iso_dates[day] = text = day.isoformat()
            return text

    def read(self) -> BankFile:
        lines, add = self.lines, self.problems.add
        start = _TRANSMISSION_START.fullmatch(lines[0])
        if start is None:
            add("line 1", "not an OCR Giro transmission start (record 10: 'NY000010' …)")
            self.problems.raise_if_any()
            raise AssertionError  # pragma: no cover
        transmitter, transmission, recipient = start.groups()
        end_at = len(lines) - 1
        end = _TRANSMISSION_END.fullmatch(lines[end_at]) if end_at > 0 else None
        if end is None:
            add(f"line {len(lines)}", "the file does not end with a transmission end (record 89); truncated?")
            end_at = len(lines)

        assignment: _Assignment | None = None
        transactions = credit = debit = 0
        broken = False
        # The transaction being read; `skip` after a broken amount item 1, whose other items are then
        # left alone (the problem is already reported).
        current: _Transaction | None = None
        skip = False
        item_1, item_2, avtalegiro_2, item_3 = (
            _AMOUNT_ITEM_1.fullmatch,
            _AMOUNT_ITEM_2.fullmatch,
            _AVTALEGIRO_ITEM_2.fullmatch,
            _AMOUNT_ITEM_3.fullmatch,
        )
        for index in range(1, end_at):
            line = lines[index]
            record = line[6:8]
            if len(line) != RECORD_LENGTH or line[0:2] != "NY":
                self._bad_line(index + 1, line)
                if assignment is not None and record not in ("88", "89"):
                    assignment.records += 1
                    assignment.transactions += record == "30"
                    assignment.broken = True
                    current, skip = None, record in ("30", "31", "32")
                continue
            if record in _TRANSACTION_RECORDS:
                if assignment is None:
                    add(
                        f"line {index + 1}", f"record {record} outside an assignment (no record 20 before it)"
                    )
                    continue
                assignment.records += 1
                if line[2:4] != assignment.service:
                    add(
                        f"line {index + 1}",
                        f"service code {line[2:4]} in an assignment of {assignment.service}",
                    )
                    continue
                if assignment.type != _PAYMENT_ASSIGNMENT:
                    if record in ("30", "70"):
                        assignment.transactions += 1
                    continue
                if record == "30":
                    if current is not None:
                        self._finish(assignment, current)
                    assignment.transactions += 1
                    found = item_1(line)
                    settled = None if found is None else self.day(found[3])
                    if found is None or settled is None or found[2] in assignment.numbers:
                        self._bad_item_1(assignment, line, index + 1)
                        assignment.broken = True
                        current, skip = None, True
                        continue
                    assignment.numbers.add(found[2])
                    is_debit = found[4] == "-" or found[1] in _REVERSALS
                    amount = int(found[5])
                    if is_debit:
                        assignment.debit += amount
                    else:
                        assignment.credit += amount
                    current = _Transaction(
                        index + 1, found[1], found[2], settled, is_debit, amount, found[6].strip()
                    )
                    skip = False
                    continue
                if skip:
                    continue
                if current is None:
                    add(
                        f"line {index + 1}", f"record {record} without an amount item 1 (record 30) before it"
                    )
                    continue
                if line[8:15] != current.number or line[4:6] != current.type:
                    add(
                        f"line {index + 1}",
                        f"transaction {line[4:6]}/{line[8:15]} does not continue transaction"
                        f" {current.type}/{current.number} of line {current.line}",
                    )
                    current, skip = None, True
                    continue
                if record == "31":
                    if current.item_2 is not None:
                        add(f"line {index + 1}", "a second amount item 2 (record 31) for one transaction")
                        continue
                    found = item_2(line) if assignment.service == "09" else avtalegiro_2(line)
                    if found is None:
                        self._bad_item_2(line, index + 1)
                        current, skip = None, True
                        continue
                    current.item_2 = found
                elif record == "32":
                    found = item_3(line) if current.item_2 is not None else None
                    if found is None:
                        reason = (
                            "amount item 3 (record 32) must follow amount item 2 (record 31)"
                            if current.item_2 is None
                            else control_character(line) or "malformed amount item 3 (record 32)"
                        )
                        add(f"line {index + 1}", reason)
                        current, skip = None, True
                        continue
                    current.free_text = found[3].strip()
                    self._finish(assignment, current)
                    current = None
                # Record 49 (AvtaleGiro specification text) belongs to payment claims, not payments.
                continue
            if current is not None and assignment is not None:
                self._finish(assignment, current)
            current, skip = None, False
            number = index + 1
            if record == "20":
                if assignment is not None:
                    add(
                        f"line {number}",
                        f"assignment start without the end (record 88) of line {assignment.line}",
                    )
                assignment = self._assignment_start(line, number)
            elif record == "88":
                if assignment is None:
                    add(f"line {number}", "assignment end (record 88) without an assignment start")
                    continue
                assignment.records += 1
                self._assignment_end(assignment, line, number)
                transactions += assignment.transactions
                credit += assignment.credit
                debit += assignment.debit
                broken = broken or assignment.broken
                assignment = None
            elif record in ("10", "89"):
                add(f"line {number}", f"record {record} in the middle of the file")
            else:
                add(f"line {number}", f"unknown record type {record!r}")
        if current is not None and assignment is not None:
            self._finish(assignment, current)
        if assignment is not None:
            add(f"line {assignment.line}", "assignment without its end (record 88); truncated?")

        declared_count = declared_total = 0
        created: date | None = None
        if end is not None:
            declared_count, declared_records, declared_total = int(end[1]), int(end[2]), int(end[3])
            created = yymmdd(end[4])
            at = f"line {len(lines)}"
            if created is None and end[4] != _NO_DATE:
                add(at, f"transmission end: bad date {end[4]!r} (DDMMYY)")
            if declared_count != transactions:
                add(
                    at,
                    f"transmission end declares {declared_count} transactions, the file has {transactions}",
                )
            if declared_records != len(lines):
                add(at, f"transmission end declares {declared_records} records, the file has {len(lines)}")
            if not broken and not _total_matches(declared_total, credit, debit):
                add(
                    at,
                    f"transmission end declares total {declared_total} øre,"
                    f" the transactions sum to {credit - debit}",
                )
        self.problems.raise_if_any()
        return BankFile(
            format="ocr_giro",
            version="",
            file_id=f"nets:{transmitter}:{recipient}:{transmission}",
            creditor_account=",".join(dict.fromkeys(self.accounts)),
            payments=tuple(unique_keys(self.payments)),
            declared_count=declared_count,
            declared_total_minor=declared_total,
            created=created,
        )

    def _bad_line(self, number: int, line: str) -> None:
        if not line.strip():
            self.problems.add(f"line {number}", "empty line")
        elif len(line) != RECORD_LENGTH:
            self.problems.add(
                f"line {number}", f"{len(line)} characters, OCR Giro records have {RECORD_LENGTH}"
            )
        else:
            self.problems.add(f"line {number}", f"does not start with the format code 'NY': {line[:8]!r}")

    def _assignment_start(self, line: str, number: int) -> _Assignment | None:
        found = _ASSIGNMENT_START.fullmatch(line)
        if found is None:
            self.problems.add(f"line {number}", "malformed assignment start (record 20)")
            return None
        service, type_, _agreement, assignment_number, account = found.groups()
        if type_ not in ("00", "24", "36"):
            self.problems.add(f"line {number}", f"unknown assignment type {type_!r}")
        if type_ == _PAYMENT_ASSIGNMENT:
            self.accounts.append(account)
        return _Assignment(number, service, type_, assignment_number, account)

    def _assignment_end(self, assignment: _Assignment, line: str, number: int) -> None:
        found = _ASSIGNMENT_END.match(line)
        at = f"line {number}"
        if found is None:
            self.problems.add(at, "malformed assignment end (record 88)")
            return
        service, type_, count, records, total, settled = found.groups()
        if (service, type_) != (assignment.service, assignment.type):
            self.problems.add(
                at,
                f"assignment end of {service}/{type_} closes"
                f" an assignment of {assignment.service}/{assignment.type}",
            )
        if int(count) != assignment.transactions:
            self.problems.add(
                at,
                f"assignment end declares {int(count)} transactions,"
                f" the assignment has {assignment.transactions}",
            )
        if int(records) != assignment.records:
            self.problems.add(
                at, f"assignment end declares {int(records)} records, the assignment has {assignment.records}"
            )
        if assignment.type == _PAYMENT_ASSIGNMENT:
            if not assignment.broken and not _total_matches(int(total), assignment.credit, assignment.debit):
                self.problems.add(
                    at,
                    f"assignment end declares total {int(total)} øre,"
                    f" the transactions sum to {assignment.credit - assignment.debit}",
                )
            if settled != _NO_DATE and yymmdd(settled) is None:
                self.problems.add(at, f"assignment end: bad date {settled!r} (DDMMYY)")

    def _bad_item_1(self, assignment: _Assignment, line: str, number: int) -> None:
        """Says what is wrong with an amount item 1 that the fast path refused."""
        at, add = f"line {number}", self.problems.add
        type_, txn, settled, sign, amount, kid = (
            line[4:6],
            line[8:15],
            line[15:21],
            line[31],
            line[32:49],
            line[49:74],
        )
        if not _digits(txn):
            add(at, f"transaction number {txn!r} is not 7 digits")
        elif txn in assignment.numbers:
            add(at, f"transaction number {txn} appears twice in assignment {assignment.number}")
        if not _digits(type_):
            add(at, f"transaction type {type_!r} is not 2 digits")
        if yymmdd(settled) is None:
            add(at, f"bad settlement date {settled!r} (DDMMYY)")
        if not _digits(amount):
            add(at, f"bad amount {amount!r} (17 digits in øre)")
        if _KID.fullmatch(kid) is None:
            add(at, f"bad KID {kid.strip()!r} (digits, right-aligned; a MOD11 KID may end in '-')")
        if sign not in "0- ":
            add(at, f"bad sign {sign!r} (position 32: '0' or '-')")
        if (problem := control_character(line)) is not None:
            add(at, problem)

    def _bad_item_2(self, line: str, number: int) -> None:
        reason = control_character(line) or (
            "malformed amount item 2 (record 31):"
            " form number, archive reference, date and account must be digits"
        )
        self.problems.add(f"line {number}", reason)

    def _finish(self, assignment: _Assignment, txn: _Transaction) -> None:
        second = txn.item_2
        if second is None:
            self.problems.add(f"line {txn.line}", "transaction without its amount item 2 (record 31)")
            return
        ids: dict[str, str]
        if assignment.service == "09":
            _type, _number, form_number, archive, bank_date, debit_account = second.groups()
            paid = txn.settled if bank_date == _NO_DATE else self.day(bank_date)
            if paid is None:
                self.problems.add(f"line {txn.line + 1}", f"bad payer's bank date {bank_date!r} (DDMMYY)")
                return
            payer_account = "" if debit_account == _NO_ACCOUNT else debit_account
            payer_name, free_text = "", txn.free_text
            ids = {
                "transaction_number": txn.number,
                "archive_reference": archive,
                "form_number": form_number,
                "account": assignment.account,
                "assignment_number": assignment.number,
                "transaction_type": txn.type,
            }
        else:  # AvtaleGiro: the payer's name (10) and the claim's own reference (25) instead.
            paid, payer_account, archive = txn.settled, "", ""
            payer_name, free_text = second[3].strip(), second[4].strip()
            ids = {
                "transaction_number": txn.number,
                "account": assignment.account,
                "assignment_number": assignment.number,
                "transaction_type": txn.type,
            }
        direction: Literal["credit", "debit"] = "debit" if txn.debit else "credit"
        self.payments.append(
            BankPayment(
                location=f"line {txn.line}",
                bank_key=f"{assignment.key}{self.iso(txn.settled)}:{assignment.number}:{txn.number}:{archive}",
                direction=direction,
                amount_minor=txn.amount,
                currency="NOK",
                reference=txn.kid,
                free_text=free_text,
                payer_name=payer_name,
                payer_account=payer_account,
                booking_date=txn.settled,
                value_date=paid,
                bank_ids=ids,
                return_reason=f"reversal (Nets transaction type {txn.type})" if txn.debit else "",
            )
        )


def _total_matches(declared: int, credit: int, debit: int) -> bool:
    """Nets declares the total as an unsigned sum; whether reversals are subtracted is not written down,
    so both readings are accepted (they differ only when a reversal is present)."""
    return declared in (abs(credit - debit), credit + debit)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
