"""VAT categories on lines (EN 16931 / Peppol): S charges VAT, Z, E, AE, K, G and O charge none, and
those that charge none for a reason state it. The money does not change: the breakdown stays per rate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from services.common.errors import InvalidArgument
from services.ledger.domain.invoice import (
    VAT_CATEGORIES,
    CreditDraft,
    InvoiceDraft,
    IssueCreditNote,
    IssueInvoice,
    LineInput,
    check_credit_note,
    check_issue_invoice,
    left_by_rate,
    line_doc,
    line_from_doc,
)

D = Decimal
ISSUE = date(2026, 3, 2)


def line(
    vat_rate: str = "25", vat_category: str = "", reason: str = "", price: int = 100_00, text: str = "Vare"
) -> LineInput:
    return LineInput(text, "1", price, vat_rate, "", vat_category, reason)


def command(*lines: LineInput, **changes: Any) -> IssueInvoice:
    base = IssueInvoice(
        idempotency_key="erp-1",
        customer_number="C-1",
        customer=None,
        issue_date=ISSUE.isoformat(),
        due_date="2026-03-16",
        payment_terms_days=0,
        currency="NOK",
        lines=lines or (line(),),
    )
    return dataclasses.replace(base, **changes)


def issue(*lines: LineInput) -> InvoiceDraft:
    return check_issue_invoice(command(*lines), jurisdiction="NO", kid_scheme="mod10")


def wrong(*lines: LineInput) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        issue(*lines)
    return {v.field: v.description for v in caught.value.violations}


def test_without_a_category_a_line_is_standard_or_zero_rated() -> None:
    draft = issue(line("25"), line("15"), line("0"))

    assert [ln.vat_category for ln in draft.lines] == ["S", "S", "Z"]
    assert [ln.vat_exemption_reason for ln in draft.lines] == ["", "", ""]


@pytest.mark.parametrize("category", ["E", "AE", "K", "G", "O"])
def test_a_line_without_vat_for_a_reason_states_it(category: str) -> None:
    first = line("0", "O", "Utlegg") if category == "O" else line("25")
    draft = issue(first, line("0", category, "  Unntatt etter mval. § 3-2  "))

    assert draft.lines[1].vat_category == category
    assert draft.lines[1].vat_exemption_reason == "Unntatt etter mval. § 3-2"


@pytest.mark.parametrize("category", ["E", "AE", "K", "G", "O"])
def test_the_reason_is_required(category: str) -> None:
    found = wrong(line("0", category))

    assert set(found) == {"lines[0].vat_exemption_reason"}
    assert category in found["lines[0].vat_exemption_reason"]


def test_categories_are_read_in_any_case() -> None:
    assert issue(line("25", "s"), line("0", " z ")).lines[1].vat_category == "Z"


@pytest.mark.parametrize("category", ["X", "VAT", "SS", "E1"])
def test_an_unknown_category_is_refused(category: str) -> None:
    found = wrong(line("0", category, "Exempt"))

    assert set(found) == {"lines[0].vat_category"}
    assert ", ".join(VAT_CATEGORIES) in found["lines[0].vat_category"]


def test_standard_rated_needs_a_rate_above_zero() -> None:
    found = wrong(line("0", "S"))

    assert set(found) == {"lines[0].vat_category"}
    assert "above 0" in found["lines[0].vat_category"]


@pytest.mark.parametrize("category", ["Z", "E", "AE", "K", "G", "O"])
def test_every_other_category_charges_no_vat(category: str) -> None:
    found = wrong(line("25", category, "Reason" if category != "Z" else ""))

    assert set(found) == {"lines[0].vat_category"}
    assert "0 % VAT, not 25 %" in found["lines[0].vat_category"]


@pytest.mark.parametrize("category", ["S", "Z", ""])
def test_standard_and_zero_rated_lines_have_no_exemption_reason(category: str) -> None:
    rate = "25" if category == "S" else "0"
    found = wrong(line(rate, category, "Fritatt"))

    assert set(found) == {"lines[0].vat_exemption_reason"}
    assert "E, AE, K, G or O" in found["lines[0].vat_exemption_reason"]


def test_the_reason_is_checked_text() -> None:
    found = wrong(line("0", "E", "x" * 201), line("0", "E", "Fritatt\u202e"))

    assert "at most 200" in found["lines[0].vat_exemption_reason"]
    assert "U+202E" in found["lines[1].vat_exemption_reason"]


def test_every_wrong_line_is_named_at_once() -> None:
    found = wrong(line("0", "S"), line("25", "E", "Fritatt"), line("0", "AE"), line("0", "Q"))

    assert set(found) == {
        "lines[0].vat_category",
        "lines[1].vat_category",
        "lines[2].vat_exemption_reason",
        "lines[3].vat_category",
    }


def test_a_refused_rate_is_not_reported_again_against_the_category() -> None:
    assert set(wrong(line("7", "E", "Fritatt"))) == {"lines[0].vat_rate"}


def test_the_money_is_the_same_whatever_the_zero_rate_category() -> None:
    plain = issue(line("25"), line("0", price=50_00), line("0", price=30_00))
    categorised = issue(
        line("25"), line("0", "E", "Fritatt", price=50_00), line("0", "G", "Eksport", price=30_00)
    )

    assert categorised.totals == plain.totals
    # Still one breakdown line per rate.
    assert [(v.rate, v.taxable_minor, v.vat_minor) for v in categorised.totals.vat_breakdown] == [
        (D("25"), 100_00, 25_00),
        (D("0"), 80_00, 0),
    ]


def test_the_category_is_stored_and_read_back() -> None:
    draft = issue(line("25"), line("0", "AE", "Omvendt avgiftsplikt"))

    docs = [line_doc(ln) for ln in draft.lines]

    assert [(d["vat_category"], d["vat_exemption_reason"]) for d in docs] == [
        ("S", ""),
        ("AE", "Omvendt avgiftsplikt"),
    ]
    assert tuple(line_from_doc(d) for d in docs) == draft.lines


def test_a_line_stored_before_categories_takes_its_rates_default() -> None:
    old = {k: v for k, v in line_doc(issue(line("0")).lines[0]).items() if not k.startswith("vat_c")}
    old.pop("vat_exemption_reason")

    assert line_from_doc(old).vat_category == "Z"


def old_fingerprint(cmd: IssueInvoice) -> str:
    """How a request was hashed before lines had categories (stored on every invoice issued then)."""
    payload = dataclasses.asdict(cmd)
    # Nor was there a reminder_fee_agreed on the request then.
    assert payload.pop("reminder_fee_agreed") is None
    for ln in payload["lines"]:
        del ln["vat_category"], ln["vat_exemption_reason"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def test_a_retry_of_a_request_from_before_categories_still_matches() -> None:
    cmd = command(line("25"), line("0"))

    assert cmd.fingerprint() == old_fingerprint(cmd)


def test_the_category_and_reason_are_in_the_fingerprint() -> None:
    plain = command(line("0"))

    assert command(line("0", "Z")).fingerprint() != plain.fingerprint()
    assert (
        command(line("0", "E", "Fritatt")).fingerprint() != command(line("0", "E", "Unntatt")).fingerprint()
    )


# --- credit notes -------------------------------------------------------------------------------

INVOICE = issue(
    line("25", price=1000_00, text="Konsulent"),
    line("0", "E", "Unntatt: helsetjenester", price=400_00, text="Behandling"),
    line("0", "G", "Eksport", price=100_00, text="Frakt til utlandet"),
)
INVOICED = [(v.rate, v.taxable_minor) for v in INVOICE.totals.vat_breakdown]
INVOICED_VAT = [(v.rate, v.vat_minor) for v in INVOICE.totals.vat_breakdown]


def credit(*lines: LineInput, credited: tuple[tuple[Decimal, int], ...] = ()) -> CreditDraft:
    already = sum(amount for _, amount in credited)
    return check_credit_note(
        IssueCreditNote(
            idempotency_key="cn-1",
            invoice_id="inv-1",
            invoice_number="1",
            issue_date="",
            lines=lines,
            reason="Feil",
        ),
        invoice_number="1",
        invoice_lines=INVOICE.lines,
        invoice_issue_date=ISSUE,
        already_credited=already,
        left_to_credit=INVOICE.totals.gross_minor - already,
        left_per_rate=left_by_rate(INVOICED, credited),
        vat_left_per_rate=left_by_rate(INVOICED_VAT, ()),
        jurisdiction="NO",
        today=ISSUE,
    )


def test_a_credit_note_line_takes_a_category_the_invoice_used() -> None:
    draft = credit(line("0", "G", "Eksport", price=50_00))

    assert draft.lines[0].vat_category == "G"
    assert draft.lines[0].vat_exemption_reason == "Eksport"


def test_a_credit_note_cannot_reverse_a_category_the_invoice_did_not_use() -> None:
    with pytest.raises(InvalidArgument) as caught:
        credit(line("0", "AE", "Omvendt", price=50_00), line("0", price=10_00))

    found = {v.field: v.description for v in caught.value.violations}
    assert set(found) == {"lines[0].vat_category", "lines[1].vat_category"}
    assert "no 0 % lines in VAT category AE (it has E, G)" in found["lines[0].vat_category"]


def test_a_credit_note_line_follows_the_same_rules() -> None:
    with pytest.raises(InvalidArgument) as caught:
        credit(line("0", "E", price=50_00))

    assert {v.field for v in caught.value.violations} == {"lines[0].vat_exemption_reason"}


def test_crediting_an_invoice_whole_keeps_its_categories() -> None:
    draft = credit()

    assert [(ln.vat_category, ln.vat_exemption_reason) for ln in draft.lines] == [
        ("S", ""),
        ("E", "Unntatt: helsetjenester"),
        ("G", "Eksport"),
    ]


def test_crediting_the_rest_takes_the_category_of_the_largest_line_at_each_rate() -> None:
    draft = credit(credited=((D("25"), 100_00),))

    assert [(ln.vat_rate, ln.vat_category, ln.vat_exemption_reason) for ln in draft.lines] == [
        (D("25"), "S", ""),
        (D("0"), "E", "Unntatt: helsetjenester"),
    ]


@pytest.mark.parametrize("other", [("25", ""), ("0", "Z"), ("0", "E")])
def test_lines_outside_the_scope_of_vat_stand_on_an_invoice_of_their_own(other: tuple[str, str]) -> None:
    outlay = line("0", "O", "Utlegg, rettsgebyr")
    rate, category = other
    taxable = line(rate, category, "Helsetjenester, mval. § 3-2" if category == "E" else "")

    found = wrong(taxable, outlay)

    assert "BR-O-11" in found["lines"]
    assert [ln.vat_category for ln in issue(outlay, line("0", "O", "Utlegg, tinglysing")).lines] == ["O", "O"]
