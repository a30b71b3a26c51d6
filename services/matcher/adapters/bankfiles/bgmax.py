"""Bankgirot BgMax (incoming bankgiro payments, Sweden): 80-character ISO-8859-1 records, the record
type ("transaktionskod") in positions 1-2 (Bankgirot, "BgMax technical manual"):

    01 start        3-22 "BGMAX", 23-24 version, 25-44 timestamp, 45 test mark (T = test, P = production)
    05 opening      3-12 payee bankgiro, 13-22 payee plusgiro, 23-25 currency
    20 payment      3-12 payer's bankgiro, 13-37 reference, 38-55 amount in öre, 56 reference code,
    21 deduction    57 channel, 58-69 BGC number, 70 image mark (21: 71 deduction code)
    22/23           an extra reference of the payment before (23: a negative amount), same layout
    25 information  3-52 text
    26 name         3-37 name, 38-72 extra name
    27/28           address (not kept: personal data matching does not need)
    29 org. number  3-14 the payer's organisation number (not kept, as 27/28)
    15 deposit      3-37 payee's bank account, 38-45 payment date, 46-50 deposit serial number,
                    51-68 deposit amount in öre, 69-71 currency, 72-79 number of payments
    70 end          3-10 payments (20), 11-18 deductions (21), 19-26 extra references (22/23),
                    27-34 deposits (15)

A deposit's amount is its payments less its deductions, and its count is both together (as in
Bankgirot's sample file). Unknown record types are skipped. Lines shorter than 80 (blanks at the end
dropped) are read as padded.

Reference codes (position 56): 0 none, 1 none, 2 correct OCR, 3 one or more references (free form),
4 correct reference, 5 incorrect reference. The reference is kept whatever its code (matching checks
it), except code 3's free-form references, which are free text; bank_ids "reference_code" has the code.
A deduction (21) is a debit: the payer took a credit note off a payment.

bank_key: "bgmax:<payee bankgiro>:<payment date>:<BGC number>", Bankgirot's serial number of the
payment; without one (blank), the deposit serial number and the payment's place in the deposit.
"""

from __future__ import annotations

from typing import Literal

from services.common.money import CURRENCY_EXPONENTS
from services.matcher.adapters.bankfiles.common import (
    Problems,
    control_character,
    decode_latin1,
    split_lines,
    unique_keys,
    yyyymmdd,
)
from services.matcher.domain.payments import BankFile, BankPayment

FORMAT_NAME = "BgMax"
RECORD_LENGTH = 80
_PAYMENTS = frozenset({"20", "21"})
_EXTRA = frozenset({"22", "23"})
_ABOUT_PAYMENT = frozenset({"22", "23", "25", "26", "27", "28", "29"})
_FREE_FORM = "3"


class _Payment:
    __slots__ = (
        "amount", "bgc", "deduction", "free", "line", "name", "payer_bankgiro", "reference", "reference_code",
    )  # fmt: skip

    def __init__(self, line: int, record: str) -> None:
        self.line = line
        self.deduction = record == "21"
        self.amount = 0
        self.payer_bankgiro = ""
        self.reference = ""
        self.reference_code = ""
        self.bgc = ""
        self.free: list[str] = []
        self.name = ""


class _Section:
    def __init__(self, line: int, bankgiro: str, currency: str) -> None:
        self.line = line
        self.bankgiro = bankgiro
        self.currency = currency
        self.payments: list[_Payment] = []


def parse(content: bytes) -> BankFile:
    problems = Problems()
    text = decode_latin1(content, FORMAT_NAME, problems, record_length=RECORD_LENGTH, padded=False)
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
        self.counts = {"20": 0, "21": 0, "22": 0, "15": 0}
        self.accounts: list[str] = []
        self.total = 0

    def read(self) -> BankFile:
        add = self.problems.add
        first = self.lines[0].ljust(RECORD_LENGTH)
        if first[0:2] != "01" or first[2:22].strip() != "BGMAX":
            add("line 1", "not a BgMax file (record 01 'BGMAX' expected)")
            self.problems.raise_if_any()
        version, stamp, test_mark = first[22:24], first[24:44], first[44]
        created = yyyymmdd(stamp[0:8])
        if created is None:
            add("line 1", f"bad timestamp {stamp!r} (YYYYMMDDHHMMSSmmmmmm)")
        if test_mark == "T":
            add("line 1", "a test file (test mark T): its payments are not real")
        elif test_mark != "P":
            add("line 1", f"test mark {test_mark!r}: expected P (production) or T (test)")

        section: _Section | None = None
        payment: _Payment | None = None
        end: str | None = None
        for index in range(1, len(self.lines)):
            number = index + 1
            raw = self.lines[index]
            at = f"line {number}"
            if len(raw) > RECORD_LENGTH:
                add(at, f"{len(raw)} characters, BgMax records have {RECORD_LENGTH}")
                continue
            if (problem := control_character(raw)) is not None:
                add(at, problem)
                continue
            line = raw.ljust(RECORD_LENGTH)
            record = line[0:2]
            if end is not None:
                add(at, f"record {record} after the end record (70)")
                continue
            if record in _PAYMENTS or record in _ABOUT_PAYMENT:
                if section is None:
                    add(at, f"record {record} outside a section (no opening record 05 before it)")
                    continue
                if record in _PAYMENTS:
                    self.counts[record] += 1
                    payment = self._payment(line, number, record)
                    if payment is not None:
                        section.payments.append(payment)
                    continue
                if record in _EXTRA:
                    self.counts["22"] += 1
                if payment is None:
                    add(at, f"record {record} without a payment (20 or 21) before it")
                    continue
                self._about(payment, line, number, record)
            elif record == "05":
                if section is not None:
                    add(at, f"opening record without the deposit record (15) closing line {section.line}")
                section, payment = self._opening(line, number), None
            elif record == "15":
                self.counts["15"] += 1
                if section is None:
                    add(at, "deposit record (15) without an opening record (05)")
                    continue
                self._deposit(section, line, number)
                section, payment = None, None
            elif record == "70":
                end = line
                self._end(line, number)
            elif record == "01":
                add(at, "a second start record (01)")
            # Other record types are Bankgirot's to add; the manual says to skip them.
        if section is not None:
            add(f"line {section.line}", "section without its deposit record (15); truncated?")
        if end is None:
            add(f"line {len(self.lines)}", "the file does not end with an end record (70); truncated?")
        self.problems.raise_if_any()
        payments = unique_keys(self.payments)
        return BankFile(
            format="bgmax",
            version=version,
            file_id=f"bgmax:{stamp}:{','.join(dict.fromkeys(self.accounts))}",
            creditor_account=",".join(dict.fromkeys(self.accounts)),
            payments=tuple(payments),
            declared_count=self.counts["20"] + self.counts["21"],
            declared_total_minor=self.total,
            created=created,
        )

    def _opening(self, line: str, number: int) -> _Section:
        bankgiro, currency = line[2:12], line[22:25]
        at = f"line {number}"
        if not _digits(bankgiro):
            self.problems.add(at, f"payee bankgiro {bankgiro!r} is not 10 digits")
        if currency not in CURRENCY_EXPONENTS:
            self.problems.add(at, f"currency {currency!r} is not an ISO 4217 code")
        bankgiro = bankgiro.lstrip("0")
        self.accounts.append(bankgiro)
        return _Section(number, bankgiro, currency)

    def _payment(self, line: str, number: int, record: str) -> _Payment | None:
        at = f"line {number}"
        payer, reference, amount, code, bgc = line[2:12], line[12:37], line[37:55], line[55], line[57:69]
        before = len(self.problems.items)
        if payer.strip() and not _digits(payer):
            self.problems.add(at, f"payer's bankgiro {payer!r} is not 10 digits")
        if not _digits(amount):
            self.problems.add(at, f"bad amount {amount!r} (18 digits in öre)")
        if code not in "012345" or code == " ":
            self.problems.add(at, f"reference code {code!r}: expected 0-5")
        if bgc.strip() and not _digits(bgc):
            self.problems.add(at, f"BGC number {bgc!r} is not 12 digits")
        if len(self.problems.items) != before:
            return None
        payment = _Payment(number, record)
        payment.amount = int(amount)
        payment.payer_bankgiro = payer.strip().lstrip("0")
        payment.reference_code = code
        payment.bgc = bgc.strip()
        reference = reference.strip()
        if code == _FREE_FORM:
            payment.free.append(reference)
        elif code in "245":
            payment.reference = reference
        return payment

    def _about(self, payment: _Payment, line: str, number: int, record: str) -> None:
        if record in _EXTRA:
            reference, amount = line[12:37].strip(), line[37:55]
            if not _digits(amount):
                self.problems.add(f"line {number}", f"bad amount {amount!r} (18 digits in öre)")
                return
            if reference:
                payment.free.append(reference)
        elif record == "25":
            if text := line[2:52].strip():
                payment.free.append(text)
        elif record == "26":
            payment.name = " ".join(part for part in (line[2:37].strip(), line[37:72].strip()) if part)

    def _deposit(self, section: _Section, line: str, number: int) -> None:
        at = f"line {number}"
        account, day, serial, amount, currency, count = (
            line[2:37].strip(), line[37:45], line[45:50], line[50:68], line[68:71], line[71:79],
        )  # fmt: skip
        paid = yyyymmdd(day)
        if paid is None:
            self.problems.add(at, f"bad payment date {day!r} (YYYYMMDD)")
        if not _digits(amount):
            self.problems.add(at, f"bad deposit amount {amount!r} (18 digits in öre)")
        if not _digits(count):
            self.problems.add(at, f"bad number of payments {count!r}")
        if currency != section.currency:
            self.problems.add(
                at, f"deposit in {currency!r}, its section (line {section.line}) in {section.currency!r}"
            )
        found_count = len(section.payments)
        found_total = sum(-p.amount if p.deduction else p.amount for p in section.payments)
        if _digits(count) and int(count) != found_count:
            self.problems.add(at, f"deposit declares {int(count)} payments, the section has {found_count}")
        if _digits(amount) and int(amount) != found_total:
            self.problems.add(
                at, f"deposit declares {int(amount)} öre, the section's payments sum to {found_total}"
            )
        self.total += found_total
        if paid is None:
            return
        account = account.lstrip("0")
        for place, payment in enumerate(section.payments, 1):
            direction: Literal["credit", "debit"] = "debit" if payment.deduction else "credit"
            ids = {"reference_code": payment.reference_code, "deposit_serial_number": serial}
            if account:
                ids["account"] = account
            if payment.bgc:
                ids["bgc_number"] = payment.bgc
                key = f"bgmax:{section.bankgiro}:{paid:%Y%m%d}:{payment.bgc}"
            else:
                key = f"bgmax:{section.bankgiro}:{paid:%Y%m%d}:deposit:{serial}:{place}"
            self.payments.append(
                BankPayment(
                    location=f"line {payment.line}",
                    bank_key=key,
                    direction=direction,
                    amount_minor=payment.amount,
                    currency=section.currency,
                    reference=payment.reference,
                    free_text=" / ".join(payment.free),
                    payer_name=payment.name,
                    payer_account=payment.payer_bankgiro,
                    booking_date=paid,
                    value_date=paid,
                    bank_ids=ids,
                    return_reason="deduction" if payment.deduction else "",
                )
            )

    def _end(self, line: str, number: int) -> None:
        at = f"line {number}"
        fields = {"20": line[2:10], "21": line[10:18], "22": line[18:26], "15": line[26:34]}
        names = {
            "20": "payments (20)",
            "21": "deductions (21)",
            "22": "extra references (22/23)",
            "15": "deposits (15)",
        }
        for record, declared in fields.items():
            if not _digits(declared):
                self.problems.add(at, f"end record: bad count of {names[record]} {declared!r}")
            elif int(declared) != self.counts[record]:
                self.problems.add(
                    at,
                    f"end record declares {int(declared)} {names[record]},"
                    f" the file has {self.counts[record]}",
                )


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
