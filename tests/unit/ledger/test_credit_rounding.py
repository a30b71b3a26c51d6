"""Crediting an invoice in parts: its credit notes together reverse exactly its total and its VAT,
however its lines are grouped and ordered, with nothing left behind to be dunned."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.common.money import VatLine
from services.common.mongo import Doc
from services.ledger.documents import (
    add_credited,
    credited_by_rate,
    credited_vat_by_rate,
    invoiced_by_rate,
    invoiced_vat_by_rate,
    opening_amounts,
    position_of,
)
from services.ledger.domain.invoice import (
    CreditDraft,
    IssueCreditNote,
    IssueInvoice,
    LineInput,
    check_credit_note,
    check_issue_invoice,
    left_by_rate,
)
from services.ledger.domain.rates import vat_rates

D = Decimal
ISSUE = date(2026, 3, 2)
TODAY = date(2026, 3, 20)


def line(unit_price_minor: int, vat_rate: str = "25", quantity: str = "1") -> LineInput:
    return LineInput("Vare", quantity, unit_price_minor, vat_rate)


class Invoice:
    """An issued invoice as the ledger stores it, credited through the ledger's own bookkeeping."""

    def __init__(self, *lines: LineInput) -> None:
        self.lines = lines
        self.issued = check_issue_invoice(
            IssueInvoice(
                idempotency_key="erp-1",
                customer_number="K-1",
                customer=None,
                issue_date=ISSUE.isoformat(),
                due_date="2026-04-01",
                payment_terms_days=0,
                currency="NOK",
                lines=lines,
            ),
            jurisdiction="NO",
            kid_scheme="mod10",
        )
        self.doc: Doc = {"invoice_number": "1001", **opening_amounts(self.issued.lines, self.issued.totals)}
        self.credit_notes: list[CreditDraft] = []

    def credit(self, *lines: LineInput) -> CreditDraft:
        """Issue a credit note for these lines (none: all that is left), as IssueCreditNote does."""
        doc = self.doc
        position = position_of(doc)
        draft = check_credit_note(
            IssueCreditNote(
                idempotency_key=f"cn-{len(self.credit_notes) + 1}",
                invoice_id="inv-1",
                invoice_number="",
                issue_date="",
                lines=lines,
                reason="Retur",
            ),
            invoice_number=doc["invoice_number"],
            invoice_lines=self.issued.lines,
            invoice_issue_date=ISSUE,
            already_credited=position.credited,
            left_to_credit=position.left_to_credit,
            left_per_rate=left_by_rate(invoiced_by_rate(doc), credited_by_rate(doc)),
            vat_left_per_rate=left_by_rate(invoiced_vat_by_rate(doc), credited_vat_by_rate(doc)),
            jurisdiction="NO",
            today=TODAY,
        )
        self.doc = {
            **doc,
            "credited_minor": position.credited + draft.totals.gross_minor,
            "credited_vat": add_credited(doc, draft.totals),
        }
        self.credit_notes.append(draft)
        return draft

    @property
    def left_to_credit(self) -> int:
        return position_of(self.doc).left_to_credit

    def vat_credited_by_rate(self) -> dict[Decimal, int]:
        return {rate: vat for rate, vat in credited_vat_by_rate(self.doc) if vat}

    def vat_invoiced_by_rate(self) -> dict[Decimal, int]:
        return {v.rate: v.vat_minor for v in self.issued.totals.vat_breakdown if v.vat_minor}


def assert_fully_credited(invoice: Invoice) -> None:
    totals = invoice.issued.totals
    assert invoice.left_to_credit == 0
    assert sum(cn.totals.gross_minor for cn in invoice.credit_notes) == totals.gross_minor
    assert sum(cn.totals.net_minor for cn in invoice.credit_notes) == totals.net_minor
    assert sum(cn.totals.vat_minor for cn in invoice.credit_notes) == totals.vat_minor
    assert invoice.vat_credited_by_rate() == invoice.vat_invoiced_by_rate()
    for cn in invoice.credit_notes:
        assert cn.totals.net_minor + cn.totals.vat_minor == cn.totals.gross_minor
        assert cn.totals.vat_minor == sum(v.vat_minor for v in cn.totals.vat_breakdown)
        assert all(v.vat_minor >= 0 for v in cn.totals.vat_breakdown)


def test_two_lines_of_10_02_credited_one_by_one() -> None:
    invoice = Invoice(line(10_02), line(10_02))
    assert (invoice.issued.totals.net_minor, invoice.issued.totals.vat_minor) == (20_04, 5_01)

    first = invoice.credit(line(10_02))
    last = invoice.credit(line(10_02))  # was refused: "1253 exceeds what is left to credit (1252)"

    assert first.totals.gross_minor == 12_53  # 10,02 + 2,505 rounded up
    assert last.totals.gross_minor == 12_52  # 10,02 + the 2,50 of VAT left
    assert last.totals.vat_breakdown == (VatLine(rate=D("25"), taxable_minor=10_02, vat_minor=2_50),)
    assert_fully_credited(invoice)


def test_two_lines_of_10_01_credited_one_by_one_leave_nothing_behind() -> None:
    invoice = Invoice(line(10_01), line(10_01))
    assert invoice.issued.totals.gross_minor == 25_03  # 20,02 + 5,005 rounded up

    first = invoice.credit(line(10_01))
    last = invoice.credit(line(10_01))

    assert first.totals.gross_minor == 12_51  # 10,01 + 2,5025 rounded down
    assert last.totals.gross_minor == 12_52  # was 12,51, leaving 1 øre that could never be credited
    assert_fully_credited(invoice)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0)], ids=["in order", "reversed"])
def test_line_by_line_in_either_order(order: tuple[int, ...]) -> None:
    # Each line's VAT rounds up (250,5; 251,5; 0,5), the invoice's once: 502,5 -> 503, not 504.
    lines = (line(10_02), line(10_06), line(2))
    invoice = Invoice(*lines)
    assert invoice.issued.totals.vat_minor == 5_03

    for index in order:
        invoice.credit(lines[index])

    assert_fully_credited(invoice)


def test_partial_credits_never_reverse_more_vat_than_the_invoice_charged() -> None:
    # Each 0,02 line carries 0,005 of VAT, rounded up to 0,01; the invoice's 0,16 carries 0,04.
    invoice = Invoice(*[line(2)] * 8)
    assert invoice.issued.totals.vat_minor == 4

    vats = [invoice.credit(line(2)).totals.vat_minor for _ in range(8)]

    assert vats == [1, 1, 1, 1, 0, 0, 0, 0]
    assert_fully_credited(invoice)


def test_mixed_rates_credited_in_groups() -> None:
    lines = (
        line(10_02, "25"),  # 2,505 each, 5,01 for both
        line(10_02, "25"),
        line(10_10, "15"),  # 1,515 each, 3,03 for both
        line(10_10, "15"),
        line(10_04, "12"),  # 1,2048 each, 2,41 for both
        line(10_04, "12"),
        line(50_00, "0"),
        line(25_00, "0", quantity="2"),
    )
    invoice = Invoice(*lines)

    invoice.credit(lines[0], lines[2], lines[4])
    invoice.credit(lines[6], lines[3])
    invoice.credit(lines[5], lines[1], lines[7])

    assert_fully_credited(invoice)
    assert invoice.vat_credited_by_rate() == {D("25"): 5_01, D("15"): 3_03, D("12"): 2_41}


def test_no_lines_after_a_partial_credit_credit_all_that_is_left() -> None:
    invoice = Invoice(line(10_01), line(10_01))
    invoice.credit(line(10_01))

    rest = invoice.credit()

    assert [(ln.description, ln.net_amount_minor, ln.vat_rate) for ln in rest.lines] == [
        ("Remaining amount of invoice 1001 at 25 % VAT", 10_01, D("25"))
    ]
    assert rest.totals.gross_minor == 12_52
    assert_fully_credited(invoice)


def test_no_lines_after_a_partial_credit_at_several_rates_credit_each_rate_left() -> None:
    lines = (line(10_02, "25"), line(10_04, "12"), line(10_04, "12"), line(99_00, "0"), line(5_00, "15"))
    invoice = Invoice(*lines)
    invoice.credit(lines[1], lines[4])

    rest = invoice.credit()

    assert [(ln.vat_rate, ln.net_amount_minor) for ln in rest.lines] == [
        (D("25"), 10_02),
        (D("12"), 10_04),
        (D("0"), 99_00),
    ]
    assert_fully_credited(invoice)


def test_no_lines_on_an_invoice_not_yet_credited_credit_its_own_lines() -> None:
    invoice = Invoice(line(10_01), line(10_01, "15"))

    whole = invoice.credit()

    assert whole.lines == invoice.issued.lines
    assert whole.totals == invoice.issued.totals
    assert_fully_credited(invoice)


def test_nothing_left_to_credit_is_refused() -> None:
    invoice = Invoice(line(10_01))
    invoice.credit(line(10_01))

    with pytest.raises(InvalidArgument) as refused:
        invoice.credit()

    assert [(v.field, v.description) for v in refused.value.violations] == [
        ("lines", "nothing is left to credit")
    ]


def test_the_limits_still_hold_after_partial_credits() -> None:
    invoice = Invoice(line(10_02), line(10_02, "15"))
    invoice.credit(line(10_02))

    with pytest.raises(InvalidArgument) as again:
        invoice.credit(line(10_02))
    with pytest.raises(InvalidArgument) as wrong_rate:
        invoice.credit(line(5_00, "15"), line(1_00, "12"))

    assert "credits 1002 at 25 % VAT, but only 0 is left to credit at that rate" in [
        v.description for v in again.value.violations
    ]
    assert [v.field for v in wrong_rate.value.violations] == ["lines[1].vat_rate"]
    assert invoice.left_to_credit == 10_02 + 1_50


def old_document(invoice: Invoice, credited_minor: int, credited_taxable: Sequence[tuple[str, int]]) -> Doc:
    """The invoice as stored before the VAT credited per rate was recorded."""
    return {
        **invoice.doc,
        "credited_minor": credited_minor,
        "credited_vat": [{"vat_rate": r, "taxable_amount_minor": t} for r, t in credited_taxable],
    }


def test_an_old_invoice_with_two_credits_at_one_rate_is_closed_exactly() -> None:
    # Credited twice by line before the fix (2,505 -> 2,51 each): 5,02 of VAT reversed, not 5,01.
    invoice = Invoice(line(10_02), line(10_02), line(10_02))
    invoice.doc = old_document(invoice, 2 * 12_53, [("25", 20_04)])
    assert credited_vat_by_rate(invoice.doc) == [(D("25"), 5_02)]

    last = invoice.credit(line(10_02))

    assert last.totals.vat_minor == 2_50  # 7,52 (751,5 rounded) of invoice VAT less the 5,02 reversed
    assert invoice.left_to_credit == 0


def test_the_one_ore_an_old_invoice_could_not_credit_is_credited_by_no_lines() -> None:
    invoice = Invoice(line(10_01), line(10_01))
    invoice.doc = old_document(invoice, 2 * 12_51, [("25", 20_02)])
    assert invoice.left_to_credit == 1

    rest = invoice.credit()

    assert (rest.totals.net_minor, rest.totals.vat_minor) == (0, 1)
    assert invoice.left_to_credit == 0


def test_an_old_invoice_at_several_rates_shares_the_vat_credited() -> None:
    invoice = Invoice(line(100_00, "25"), line(100_00, "15"))
    invoice.doc = old_document(invoice, 125_00 + 57_50, [("15", 50_00), ("25", 100_00)])

    assert credited_vat_by_rate(invoice.doc) == [(D("15"), 7_50), (D("25"), 25_00)]


# --- any grouping and order of an invoice's lines ---------------------------------------------------

NORWEGIAN_RATES = sorted(str(rate) for rate in vat_rates("NO", ISSUE))
quantities = st.one_of(
    st.sampled_from(["1", "0.5", "3.333", "2", "0.75", "12.5"]),
    st.decimals(min_value=D("0.5"), max_value=D(1000), places=3).map(str),
)
# Tiny prices too: there one line's rounding is most of its VAT.
unit_prices = st.one_of(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=9))
invoice_lines = st.builds(
    line,
    unit_price_minor=unit_prices,
    vat_rate=st.sampled_from(NORWEGIAN_RATES),
    quantity=quantities,
)


@st.composite
def credit_plans(draw: st.DrawFn) -> tuple[tuple[LineInput, ...], list[list[LineInput]]]:
    """An invoice's lines, and the same lines split into credit notes in a random order."""
    lines = tuple(draw(st.lists(invoice_lines, min_size=1, max_size=8)))
    order = draw(st.permutations(range(len(lines))))
    cuts = draw(st.lists(st.booleans(), min_size=len(lines) - 1, max_size=len(lines) - 1))
    groups: list[list[LineInput]] = [[lines[order[0]]]]
    for index, cut in zip(order[1:], cuts, strict=True):
        if cut:
            groups.append([])
        groups[-1].append(lines[index])
    return lines, groups


@settings(max_examples=1000)
@given(credit_plans())
def test_any_credit_notes_covering_every_line_once_credit_exactly_the_invoice(
    plan: tuple[tuple[LineInput, ...], list[list[LineInput]]],
) -> None:
    lines, groups = plan
    invoice = Invoice(*lines)

    for group in groups:
        invoice.credit(*group)

    assert_fully_credited(invoice)


@settings(max_examples=500)
@given(credit_plans(), st.data())
def test_no_lines_after_any_partial_credits_credit_exactly_the_rest(
    plan: tuple[tuple[LineInput, ...], list[list[LineInput]]], data: st.DataObject
) -> None:
    lines, groups = plan
    invoice = Invoice(*lines)
    credited_first = data.draw(st.integers(min_value=0, max_value=len(groups) - 1))

    for group in itertools.islice(groups, credited_first):
        invoice.credit(*group)
    invoice.credit()

    assert_fully_credited(invoice)
