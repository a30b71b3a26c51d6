"""Issuing invoices and credit notes: every wrong field at once, VAT per jurisdiction, EN 16931 totals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.common.kid import mod10_check_digit, mod11_check_digit
from services.common.money import VatLine, line_net_minor, vat_amount_minor
from services.ledger.domain.customer import Address, CustomerData
from services.ledger.domain.invoice import (
    MAX_LINES,
    CreditDraft,
    InvoiceDraft,
    IssueCreditNote,
    IssueInvoice,
    Line,
    LineInput,
    check_credit_note,
    check_issue_invoice,
    left_by_rate,
    line_doc,
    line_from_doc,
)

D = Decimal
ISSUE = date(2026, 3, 2)
OSLO = Address(lines=("Storgata 1",), postal_code="0155", city="Oslo", country="NO")
CUSTOMER = CustomerData(
    number="C-1", name="Fjord Fisk AS", kind="business", org_number="988077917", address=OSLO
)


def line(
    description: str = "Konsulenttime",
    quantity: str = "1",
    unit_price_minor: int = 100_00,
    vat_rate: str = "25",
    unit_code: str = "",
) -> LineInput:
    return LineInput(description, quantity, unit_price_minor, vat_rate, unit_code)


def command(**changes: Any) -> IssueInvoice:
    base = IssueInvoice(
        idempotency_key="erp-1",
        customer_number="C-1",
        customer=None,
        issue_date=ISSUE.isoformat(),
        due_date="2026-03-16",
        payment_terms_days=0,
        currency="NOK",
        lines=(line(),),
    )
    return dataclasses.replace(base, **changes)


def issue(cmd: IssueInvoice, jurisdiction: str = "NO", kid_scheme: str = "mod10") -> InvoiceDraft:
    return check_issue_invoice(cmd, jurisdiction=jurisdiction, kid_scheme=kid_scheme)


def violations(
    cmd: IssueInvoice, jurisdiction: str = "NO", kid_scheme: str = "mod10"
) -> dict[str, list[str]]:
    with pytest.raises(InvalidArgument) as caught:
        issue(cmd, jurisdiction, kid_scheme)
    found: dict[str, list[str]] = {}
    for violation in caught.value.violations:
        found.setdefault(violation.field, []).append(violation.description)
    return found


def fields(cmd: IssueInvoice, jurisdiction: str = "NO", kid_scheme: str = "mod10") -> set[str]:
    return set(violations(cmd, jurisdiction, kid_scheme))


# --- a good invoice -----------------------------------------------------------------------------


def test_valid_invoice_gives_a_draft() -> None:
    draft = issue(
        command(
            lines=(line(" Konsulenttime ", "7.5", 1200_00, "25", "HUR"), line("Reise", "1", 450_00, "12"))
        )
    )
    assert draft.issue_date == ISSUE
    assert draft.due_date == date(2026, 3, 16)
    assert draft.currency == "NOK"
    assert draft.kid == ""
    assert draft.customer is None
    assert draft.language == ""
    assert draft.lines == (
        Line(1, "Konsulenttime", D("7.5"), 1200_00, D("25"), "HUR", 9000_00),
        Line(2, "Reise", D("1"), 450_00, D("12"), "EA", 450_00),
    )
    assert draft.totals.net_minor == 9450_00
    assert draft.totals.vat_minor == 2250_00 + 54_00
    assert draft.totals.gross_minor == 9450_00 + 2304_00
    assert draft.totals.vat_breakdown == (VatLine(D("25"), 9000_00, 2250_00), VatLine(D("12"), 450_00, 54_00))


def test_embedded_customer_is_normalised_and_gives_the_language() -> None:
    draft = issue(
        command(customer_number="", customer=dataclasses.replace(CUSTOMER, org_number="988 077 917"))
    )
    assert draft.customer is not None
    assert draft.customer.org_number == "988077917"
    assert draft.language == "nb"


def test_command_language_wins_over_the_customers() -> None:
    assert issue(command(customer=CUSTOMER, language="en")).language == "en"
    assert issue(command(language="nn")).language == "nn"


def test_a_foreign_currency_is_allowed() -> None:
    assert issue(command(currency="EUR")).currency == "EUR"


# --- every wrong field at once ------------------------------------------------------------------


def test_every_wrong_field_is_reported_at_once() -> None:
    bad_customer = dataclasses.replace(CUSTOMER, org_number="988077918", email="nope", phone="12")
    cmd = command(
        idempotency_key=" ",
        customer=bad_customer,
        due_date="2026-02-30",
        currency="nok",
        lines=(
            line(description=" "),
            line(quantity="0", vat_rate="13"),
            line(unit_price_minor=-1),
            line(quantity="1,5", vat_rate="abc"),
        ),
        language="de",
        kid="12345678",
        invoice_number="X" * 33,
    )
    assert fields(cmd) == {
        "idempotency_key",
        "customer.org_number",
        "customer.email",
        "customer.phone",
        "due_date",
        "currency",
        "lines[0].description",
        "lines[1].quantity",
        "lines[1].vat_rate",
        "lines[2].unit_price_minor",
        "lines[3].quantity",
        "lines[3].vat_rate",
        "language",
        "kid",
        "invoice_number",
    }


def test_the_message_names_every_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        issue(command(currency="", lines=(line(quantity="0"),)))
    assert "currency:" in caught.value.message
    assert "lines[0].quantity:" in caught.value.message


def test_nothing_given_at_all() -> None:
    empty = IssueInvoice("", "", None, "", "", 0, "", ())
    assert fields(empty) == {"idempotency_key", "customer", "issue_date", "due_date", "currency", "lines"}


# --- identity and reference fields --------------------------------------------------------------


def test_idempotency_key_at_most_128_characters() -> None:
    issue(command(idempotency_key="k" * 128))
    assert fields(command(idempotency_key="k" * 129)) == {"idempotency_key"}


def test_customer_number_or_embedded_customer_is_required() -> None:
    assert fields(command(customer_number=" ")) == {"customer"}
    issue(command(customer_number="", customer=CUSTOMER))


@pytest.mark.parametrize("invoice_number", ["X" * 33, "2026\n1", "2026\t1"])
def test_invalid_invoice_number(invoice_number: str) -> None:
    assert fields(command(invoice_number=invoice_number)) == {"invoice_number"}


def test_invoice_number_of_32_characters() -> None:
    issue(command(invoice_number="INV-" + "9" * 28))


@pytest.mark.parametrize(("currency", "hint"), [("nok", "upper case"), ("XYZ", "ISO 4217"), ("", "ISO 4217")])
def test_unknown_currency(currency: str, hint: str) -> None:
    found = violations(command(currency=currency))
    assert set(found) == {"currency"}
    assert hint in found["currency"][0]


@pytest.mark.parametrize("language", ["de", "NB", "no"])
def test_unknown_language(language: str) -> None:
    assert fields(command(language=language)) == {"language"}


# --- dates and payment terms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "due"),
    [(1, date(2026, 3, 3)), (14, date(2026, 3, 16)), (30, date(2026, 4, 1)), (365, date(2027, 3, 2))],
)
def test_payment_terms_give_the_due_date(terms: int, due: date) -> None:
    assert issue(command(due_date="", payment_terms_days=terms)).due_date == due


@pytest.mark.parametrize("terms", [-1, 366, 10_000])
def test_payment_terms_out_of_range(terms: int) -> None:
    found = violations(command(due_date="", payment_terms_days=terms))
    assert found == {"payment_terms_days": ["must be 1..365"]}


def test_due_date_and_payment_terms_are_exclusive() -> None:
    assert fields(command(due_date="2026-03-16", payment_terms_days=14)) == {"payment_terms_days"}


def test_due_date_or_payment_terms_is_required() -> None:
    assert fields(command(due_date="", payment_terms_days=0)) == {"due_date"}


def test_due_date_before_issue_date() -> None:
    found = violations(command(due_date="2026-03-01"))
    assert found == {"due_date": ["2026-03-01 is before the issue date 2026-03-02"]}


def test_due_on_the_issue_date() -> None:
    assert issue(command(due_date=ISSUE.isoformat())).due_date == ISSUE


@pytest.mark.parametrize("text", ["2026-13-01", "02.03.2026", "tomorrow", "2026-02-29"])
def test_invalid_dates(text: str) -> None:
    assert fields(command(issue_date=text)) == {"issue_date"}
    assert fields(command(due_date=text)) == {"due_date"}


def test_payment_terms_with_a_bad_issue_date_name_only_the_issue_date() -> None:
    assert fields(command(issue_date="", due_date="", payment_terms_days=14)) == {"issue_date"}


# --- lines --------------------------------------------------------------------------------------


def test_at_least_one_line() -> None:
    assert violations(command(lines=())) == {"lines": ["at least one line is required"]}


def test_at_most_max_lines() -> None:
    issue(command(lines=(line(),) * MAX_LINES))
    assert fields(command(lines=(line(),) * (MAX_LINES + 1))) == {"lines"}


@pytest.mark.parametrize("quantity", ["0", "-1", "0.000", "abc", "1,5", "1e3", "+2", " 1", ""])
def test_invalid_quantity(quantity: str) -> None:
    assert fields(command(lines=(line(), line(quantity=quantity)))) == {"lines[1].quantity"}


@pytest.mark.parametrize(
    ("quantity", "price", "net"),
    [("0.5", 333, 167), ("0.5", 331, 166), ("3", 1999, 5997), ("0.125", 4, 1), ("1.333", 300, 400)],
)
def test_line_net_is_quantity_times_price_rounded_half_up(quantity: str, price: int, net: int) -> None:
    draft = issue(command(lines=(line(quantity=quantity, unit_price_minor=price), line())))
    assert draft.lines[0].net_amount_minor == net


def test_negative_unit_price_is_refused() -> None:
    # EN 16931 BR-27: the item net price is never negative; a discount is a credit note.
    assert violations(command(lines=(line(unit_price_minor=-100),))) == {
        "lines[0].unit_price_minor": ["must not be negative"]
    }


def test_a_free_line_on_a_paying_invoice() -> None:
    draft = issue(command(lines=(line(unit_price_minor=0), line())))
    assert draft.lines[0].net_amount_minor == 0
    assert draft.totals.gross_minor == 125_00


@pytest.mark.parametrize(
    "lines", [(line(unit_price_minor=0),), (line(quantity="0.001", unit_price_minor=100),)]
)
def test_invoice_total_must_be_positive(lines: tuple[LineInput, ...]) -> None:
    assert violations(command(lines=lines)) == {"lines": ["the invoice total must be positive"]}


@pytest.mark.parametrize("description", ["", " ", "\t\n"])
def test_line_description_is_required(description: str) -> None:
    assert fields(command(lines=(line(description=description),))) == {"lines[0].description"}


def test_line_doc_round_trip() -> None:
    draft = issue(
        command(lines=(line("Fisk", "2.5", 99_90, "15", "KGM"), line("Frakt", "1", 50_00, "11.11")))
    )
    assert tuple(line_from_doc(line_doc(ln)) for ln in draft.lines) == draft.lines
    assert line_doc(draft.lines[0])["quantity"] == "2.5"


# --- VAT rates per jurisdiction -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("jurisdiction", "rate"),
    [("NO", r) for r in ("25", "15", "12", "11.11", "0", "25.00", "0.0")]
    + [("SE", r) for r in ("25", "12", "6", "0", "6.0")],
)
def test_allowed_vat_rate(jurisdiction: str, rate: str) -> None:
    draft = issue(command(lines=(line(vat_rate=rate), line())), jurisdiction)
    assert draft.lines[0].vat_rate == D(rate)


@pytest.mark.parametrize(
    ("jurisdiction", "rate"),
    [("NO", r) for r in ("6", "10", "24", "11.1", "100", "-25")]
    + [("SE", r) for r in ("15", "11.11", "24", "-6")],
)
def test_refused_vat_rate(jurisdiction: str, rate: str) -> None:
    found = violations(command(lines=(line(), line(vat_rate=rate))), jurisdiction)
    assert set(found) == {"lines[1].vat_rate"}
    assert jurisdiction in found["lines[1].vat_rate"][0]


def test_refused_vat_rate_lists_the_allowed_ones() -> None:
    found = violations(command(lines=(line(vat_rate="6"),)), "NO")
    assert "allowed: 25, 15, 12, 11.11, 0" in found["lines[0].vat_rate"][0]
    found = violations(command(lines=(line(vat_rate="15"),)), "SE")
    assert "allowed: 25, 12, 6, 0" in found["lines[0].vat_rate"][0]


@pytest.mark.parametrize("rate", ["25", "-5", "99"])
def test_no_vat_rate_is_known_before_the_rate_table_starts(rate: str) -> None:
    found = violations(
        command(issue_date="2017-12-31", due_date="", payment_terms_days=14, lines=(line(vat_rate=rate),))
    )
    assert set(found) == {"lines[0].vat_rate"}
    assert "none known" in found["lines[0].vat_rate"][0]


def test_vat_rate_table_applies_from_its_first_day() -> None:
    issue(command(issue_date="2018-01-01", due_date="", payment_terms_days=14, lines=(line(vat_rate="12"),)))


@pytest.mark.parametrize("rate", ["abc", "25%", "", "1e1"])
def test_vat_rate_must_be_a_number(rate: str) -> None:
    assert fields(command(lines=(line(vat_rate=rate),))) == {"lines[0].vat_rate"}


# --- totals (EN 16931) --------------------------------------------------------------------------


def test_vat_is_rounded_once_per_rate_not_per_line() -> None:
    three = tuple(line(f"Vare {i}", "1", 10_02, "25") for i in range(3))
    draft = issue(command(lines=three))
    per_line = sum(vat_amount_minor(ln.net_amount_minor, ln.vat_rate) for ln in draft.lines)
    assert per_line == 3 * 251  # 250.5 rounded up three times
    assert draft.totals.vat_minor == 752  # 3006 x 25 % = 751.5, rounded once (BR-CO-17)
    assert draft.totals.vat_breakdown == (VatLine(D("25"), 30_06, 752),)
    assert draft.totals.gross_minor == 30_06 + 752


def test_breakdown_has_one_row_per_rate_highest_first() -> None:
    lines = (
        line("Fisk", "1", 33_33, "15"),
        line("Kino", "1", 10_01, "12"),
        line("Fisk", "2", 33_33, "15"),
        line("Rådgivning", "1", 1_02, "25"),
        line("Frimerke", "1", 5_00, "0"),
        line("Kino", "1", 10_01, "12.00"),
    )
    draft = issue(command(lines=lines))
    assert draft.totals.vat_breakdown == (
        VatLine(D("25"), 1_02, 26),  # 25.5
        VatLine(D("15"), 99_99, 15_00),  # 1499.85
        VatLine(D("12"), 20_02, 2_40),  # 240.24
        VatLine(D("0"), 5_00, 0),
    )
    assert draft.totals.net_minor == 1_02 + 99_99 + 20_02 + 5_00
    assert draft.totals.vat_minor == 26 + 15_00 + 2_40
    assert draft.totals.gross_minor == draft.totals.net_minor + draft.totals.vat_minor


line_inputs = st.builds(
    line,
    description=st.just("Vare"),
    quantity=st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3).map(str),
    unit_price_minor=st.integers(min_value=1, max_value=10**7),
    vat_rate=st.sampled_from(["25", "15", "12", "11.11", "0"]),
)


@settings(max_examples=60)
@given(st.lists(line_inputs, min_size=1, max_size=8))
def test_totals_follow_en_16931(lines: list[LineInput]) -> None:
    assume(any(line_net_minor(D(ln.quantity), ln.unit_price_minor) for ln in lines))
    draft = issue(command(lines=tuple(lines)))
    nets = [ln.net_amount_minor for ln in draft.lines]
    assert draft.totals.net_minor == sum(nets)  # BR-CO-10
    by_rate: dict[Decimal, int] = {}
    for ln in draft.lines:
        by_rate[ln.vat_rate] = by_rate.get(ln.vat_rate, 0) + ln.net_amount_minor
    assert {row.rate: row.taxable_minor for row in draft.totals.vat_breakdown} == by_rate
    for row in draft.totals.vat_breakdown:
        assert row.vat_minor == vat_amount_minor(row.taxable_minor, row.rate)  # BR-CO-17
    assert draft.totals.vat_minor == sum(row.vat_minor for row in draft.totals.vat_breakdown)  # BR-CO-14
    assert draft.totals.gross_minor == draft.totals.net_minor + draft.totals.vat_minor  # BR-CO-15
    per_line = sum(vat_amount_minor(ln.net_amount_minor, ln.vat_rate) for ln in draft.lines)
    assert abs(per_line - draft.totals.vat_minor) <= len(lines)


# --- KID ----------------------------------------------------------------------------------------

MOD10_KID = "7654321" + mod10_check_digit("7654321")
MOD11_KID = "12345678" + mod11_check_digit("12345678")
DASH_KID = "1009" + mod11_check_digit("1009")


def test_kid_examples() -> None:
    assert MOD10_KID == "76543214"
    assert mod11_check_digit(MOD10_KID[:-1]) != MOD10_KID[-1]
    assert MOD11_KID == "123456785"
    assert mod10_check_digit(MOD11_KID[:-1]) != MOD11_KID[-1]
    assert DASH_KID == "1009-"


@pytest.mark.parametrize(("kid", "scheme"), [(MOD10_KID, "mod10"), (MOD11_KID, "mod11")])
def test_valid_kid_is_kept(kid: str, scheme: str) -> None:
    assert issue(command(kid=kid), kid_scheme=scheme).kid == kid


@pytest.mark.parametrize(
    ("kid", "scheme"),
    [(MOD11_KID, "mod10"), (MOD10_KID, "mod11"), ("123", "mod10"), ("1" * 26, "mod10"), ("12a45", "mod10")],
)
def test_invalid_kid(kid: str, scheme: str) -> None:
    assert fields(command(kid=kid), kid_scheme=scheme) == {"kid"}


def test_kid_ending_in_dash_is_refused() -> None:
    found = violations(command(kid=DASH_KID), kid_scheme="mod11")
    assert found == {"kid": ["a KID ending in '-' is refused by banks; use another"]}
    found = violations(command(kid=DASH_KID), kid_scheme="mod10")
    assert set(found) == {"kid"}


# --- the request fingerprint --------------------------------------------------------------------


def test_fingerprint_is_stable() -> None:
    first = command(customer=CUSTOMER, lines=(line(), line("Reise", "2", 5_00, "12")))
    again = command(customer=dataclasses.replace(CUSTOMER), lines=(line(), line("Reise", "2", 5_00, "12")))
    assert first.fingerprint() == again.fingerprint() == first.fingerprint()
    assert len(first.fingerprint()) == 64
    assert int(first.fingerprint(), 16) >= 0


CHANGES: list[tuple[str, Any]] = [
    ("idempotency_key", "erp-2"),
    ("customer_number", "C-2"),
    ("customer", CUSTOMER),
    ("issue_date", "2026-03-03"),
    ("due_date", "2026-03-17"),
    ("payment_terms_days", 14),
    ("currency", "SEK"),
    ("lines", (line(), line())),
    ("lines", (line(description="Konsulenttimer"),)),
    ("lines", (line(quantity="1.0"),)),
    ("lines", (line(unit_price_minor=100_01),)),
    ("lines", (line(vat_rate="25.00"),)),
    ("lines", (line(unit_code="HUR"),)),
    ("buyer_reference", "Ola"),
    ("order_reference", "PO-1"),
    ("contract_reference", "K-1"),
    ("language", "nb"),
    ("invoice_number", "2026-1"),
    ("kid", MOD10_KID),
    ("reminder_fee_agreed", True),
    ("reminder_fee_agreed", False),
]


def test_an_unset_later_field_leaves_the_fingerprint_as_before_it_existed() -> None:
    # Requests stored before reminder_fee_agreed existed: a retry of one still matches its invoice.
    payload = dataclasses.asdict(command())
    del payload["reminder_fee_agreed"]
    for line_fields in payload["lines"]:
        for name in ("vat_category", "vat_exemption_reason"):
            if not line_fields[name]:
                del line_fields[name]
    before = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    assert command().fingerprint() == before


def test_every_field_is_in_the_fingerprint() -> None:
    changed = {name for name, _ in CHANGES}
    assert changed == {f.name for f in dataclasses.fields(IssueInvoice)}


@pytest.mark.parametrize(("name", "value"), CHANGES, ids=[f"{n}={v!r}"[:40] for n, v in CHANGES])
def test_fingerprint_differs_when_a_field_differs(name: str, value: Any) -> None:
    assert command(**{name: value}).fingerprint() != command().fingerprint()


@pytest.mark.parametrize(
    "customer",
    [
        dataclasses.replace(CUSTOMER, name="Fjord Fisk ASA"),
        dataclasses.replace(CUSTOMER, email_consent=True),
        dataclasses.replace(CUSTOMER, bank_accounts=("86011117947",)),
        dataclasses.replace(CUSTOMER, address=dataclasses.replace(OSLO, postal_code="0156")),
        dataclasses.replace(CUSTOMER, address=None),
    ],
)
def test_fingerprint_sees_inside_the_customer(customer: CustomerData) -> None:
    assert command(customer=customer).fingerprint() != command(customer=CUSTOMER).fingerprint()


commands = st.builds(
    command,
    idempotency_key=st.sampled_from(["a", "b"]),
    customer_number=st.sampled_from(["C-1", "1"]),
    payment_terms_days=st.sampled_from([0, 1]),
    due_date=st.sampled_from(["", "1", "2026-03-16"]),
    lines=st.lists(
        st.builds(line, quantity=st.sampled_from(["1", "1.0"]), unit_price_minor=st.sampled_from([1, 10])),
        max_size=2,
    ).map(tuple),
    kid=st.sampled_from(["", "0", "1"]),
)


@given(commands, commands)
def test_fingerprints_are_equal_exactly_when_commands_are(a: IssueInvoice, b: IssueInvoice) -> None:
    assert (a.fingerprint() == b.fingerprint()) is (a == b)


# --- credit notes -------------------------------------------------------------------------------

INVOICE = issue(command(lines=(line("Konsulenttime", "10", 1000_00, "25"), line("Reise", "1", 450_00, "12"))))
INVOICE_GROSS = INVOICE.totals.gross_minor  # 10 000 + 2 500 + 450 + 54 kroner
TODAY = date(2026, 3, 20)


def credit_command(**changes: Any) -> IssueCreditNote:
    base = IssueCreditNote(
        idempotency_key="erp-cn-1",
        invoice_id="inv-1",
        invoice_number="2026-1",
        issue_date="",
        lines=(),
        reason="Reklamasjon",
    )
    return dataclasses.replace(base, **changes)


INVOICED_BY_RATE = [(v.rate, v.taxable_minor) for v in INVOICE.totals.vat_breakdown]
INVOICED_VAT_BY_RATE = [(v.rate, v.vat_minor) for v in INVOICE.totals.vat_breakdown]


def credit(
    cmd: IssueCreditNote,
    *,
    already_credited: int = 0,
    left_to_credit: int | None = None,
    credited_by_rate: tuple[tuple[Decimal, int], ...] = (),
    today: date = TODAY,
) -> CreditDraft:
    return check_credit_note(
        cmd,
        invoice_number="2026-1",
        invoice_lines=INVOICE.lines,
        invoice_issue_date=ISSUE,
        already_credited=already_credited,
        left_to_credit=INVOICE_GROSS - already_credited if left_to_credit is None else left_to_credit,
        left_per_rate=left_by_rate(INVOICED_BY_RATE, credited_by_rate),
        vat_left_per_rate=left_by_rate(
            INVOICED_VAT_BY_RATE, [(rate, vat_amount_minor(net, rate)) for rate, net in credited_by_rate]
        ),
        jurisdiction="NO",
        today=today,
    )


def credit_violations(cmd: IssueCreditNote, **kwargs: Any) -> dict[str, list[str]]:
    with pytest.raises(InvalidArgument) as caught:
        credit(cmd, **kwargs)
    found: dict[str, list[str]] = {}
    for violation in caught.value.violations:
        found.setdefault(violation.field, []).append(violation.description)
    return found


def test_full_credit_copies_the_invoice_lines() -> None:
    draft = credit(credit_command())
    assert INVOICE_GROSS == 13_004_00
    assert draft.lines == INVOICE.lines
    assert draft.totals == INVOICE.totals
    assert draft.issue_date == TODAY


def test_partial_credit_names_its_lines() -> None:
    draft = credit(
        credit_command(issue_date="2026-03-10", lines=(line("Konsulenttime", "2", 1000_00, "25"),))
    )
    assert draft.issue_date == date(2026, 3, 10)
    assert draft.totals.net_minor == 2000_00
    assert draft.totals.vat_minor == 500_00
    assert draft.totals.gross_minor == 2500_00


def test_the_rest_of_a_partly_credited_invoice() -> None:
    rest = (line("Konsulenttime", "8", 1000_00, "25"), line("Reise", "1", 450_00, "12"))
    draft = credit(credit_command(lines=rest), already_credited=2500_00)
    assert draft.totals.gross_minor == INVOICE_GROSS - 2500_00


def test_credit_cannot_exceed_what_is_left() -> None:
    found = credit_violations(
        credit_command(lines=(line("Konsulenttime", "2", 1000_00, "25"),)), already_credited=11_000_00
    )
    assert found == {"lines": ["the credit note (250000) exceeds what is left to credit (200400)"]}


def test_full_credit_cannot_exceed_what_is_left() -> None:
    assert set(credit_violations(credit_command(), left_to_credit=INVOICE_GROSS - 1)) == {"lines"}


def test_credit_of_exactly_what_is_left() -> None:
    draft = credit(credit_command(lines=(line("Rest", "1", 2000_00, "25"),)), left_to_credit=2500_00)
    assert draft.totals.gross_minor == 2500_00


def test_credit_note_total_must_be_positive() -> None:
    found = credit_violations(credit_command(lines=(line(unit_price_minor=0),)))
    assert found == {"lines": ["the credit note total must be positive"]}


def test_credit_note_before_the_invoice_is_refused() -> None:
    found = credit_violations(credit_command(issue_date="2026-03-01"))
    assert found == {"issue_date": ["2026-03-01 is before the invoice's issue date 2026-03-02"]}
    found = credit_violations(credit_command(), today=date(2026, 3, 1))
    assert set(found) == {"issue_date"}


def test_credit_note_on_the_invoice_date() -> None:
    assert credit(credit_command(issue_date=ISSUE.isoformat())).issue_date == ISSUE


def test_credit_note_with_a_bad_date() -> None:
    assert set(credit_violations(credit_command(issue_date="2026-02-30"))) == {"issue_date"}


def test_credit_note_lines_are_checked_like_invoice_lines() -> None:
    lines = (line(description=""), line(quantity="-1"), line(vat_rate="6"))
    assert set(credit_violations(credit_command(lines=lines))) == {
        "lines[0].description",
        "lines[1].quantity",
        "lines[2].vat_rate",
    }


def test_credit_note_reports_every_wrong_field_at_once() -> None:
    found = credit_violations(
        credit_command(idempotency_key=" ", reason=" ", issue_date="2026-01-01"), already_credited=1
    )
    assert set(found) == {"idempotency_key", "issue_date", "reason", "lines"}


CREDIT_CHANGES: list[tuple[str, Any]] = [
    ("idempotency_key", "erp-cn-2"),
    ("invoice_id", "inv-2"),
    ("invoice_number", "2026-2"),
    ("issue_date", "2026-03-20"),
    ("lines", (line(),)),
    ("reason", "Feil pris"),
    ("credit_note_number", "K-1"),
]


def test_credit_note_fingerprint_is_stable() -> None:
    assert credit_command().fingerprint() == credit_command().fingerprint()
    assert {name for name, _ in CREDIT_CHANGES} == {f.name for f in dataclasses.fields(IssueCreditNote)}


@pytest.mark.parametrize(("name", "value"), CREDIT_CHANGES)
def test_credit_note_fingerprint_differs_when_a_field_differs(name: str, value: Any) -> None:
    assert credit_command(**{name: value}).fingerprint() != credit_command().fingerprint()


def test_left_by_rate_subtracts_credits_per_rate() -> None:
    left = left_by_rate(INVOICED_BY_RATE, [(Decimal("25"), 3000_00), (Decimal("25.00"), 1000_00)])
    assert left == {Decimal("25"): 6000_00, Decimal("12"): 450_00}


def test_a_credit_reverses_only_vat_the_invoice_charged() -> None:
    found = credit_violations(credit_command(lines=(line("Mat", "1", 100_00, "15"),)))
    assert found == {"lines[0].vat_rate": ["the invoice has no 15 % VAT (it has 25 %, 12 %)"]}


def test_a_credit_at_one_rate_cannot_exceed_what_that_rate_has_left() -> None:
    # 450 kr travel at 12 % was invoiced; 300 was credited before; crediting 200 more is too much,
    # even though the invoice as a whole has plenty left to credit.
    found = credit_violations(
        credit_command(lines=(line("Reise", "1", 200_00, "12"),)),
        already_credited=336_00,
        credited_by_rate=((Decimal("12"), 300_00),),
    )
    assert found == {"lines": ["credits 20000 at 12 % VAT, but only 15000 is left to credit at that rate"]}
    draft = credit(
        credit_command(lines=(line("Reise", "1", 150_00, "12"),)),
        already_credited=336_00,
        credited_by_rate=((Decimal("12"), 300_00),),
    )
    assert draft.totals.net_minor == 150_00


def test_amounts_quantities_dates_and_texts_out_of_range_are_named() -> None:
    huge = line("x", "99999999999", 900_000_000_000_000_000, "25")
    big = line("y" * 1001, "1000000000.5", 100, "25")
    found = violations(
        command(
            lines=(huge, big, line("z", "1", 10**12, "25", unit_code="KILOGRAM")),
            issue_date="9999-12-30",
            buyer_reference="r" * 201,
        )
    )
    assert found["lines[0].unit_price_minor"] == ["at most 1000000000000000"]
    assert "lines[1].description" in found
    assert found["lines[1].quantity"] == ["at most 1000000000"]
    assert "lines[2].unit_code" in found
    assert found["issue_date"] == ["9999-12-30 is outside 2000-2099"]
    assert found["buyer_reference"] == ["at most 200 characters, got 201"]


def test_a_line_whose_total_would_leave_int64_is_refused() -> None:
    found = violations(command(lines=(line("x", "999999999", 10**14, "25"),)))
    assert found == {"lines[0]": ["quantity x unit price is more than 1000000000000000"]}
