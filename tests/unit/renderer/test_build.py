"""From the ledger's messages to the document's view: the language a customer reads, VAT per category
with the ledger's rounding, what a reminder and a credit note must state."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.creditor import CreditorProfile, check_profile
from services.ledger.sandbox import sandbox_profile
from services.renderer.domain.build import build_view, language_of
from services.renderer.domain.model import Charge, VatSubtotal

D = Decimal
LINK = "https://faktura.test/i/abc"
NOTICE = date(2026, 5, 4)


def nok(minor: int) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency="NOK")


def profile() -> CreditorProfile:
    return check_profile(sandbox_profile("Fjordlys Energi AS")).model_copy(update={"version": 3})


def customer(kind: pb.CustomerKind.ValueType = pb.CUSTOMER_KIND_BUSINESS, language: str = "") -> pb.Customer:
    return pb.Customer(
        id="c-1",
        number="K-1",
        name="Fjordbris Kaffe AS",
        kind=kind,
        org_number="923609016" if kind == pb.CUSTOMER_KIND_BUSINESS else "",
        address=common_pb2.Address(lines=["Storgata 1"], postal_code="0155", city="Oslo", country="NO"),
        language=language,
    )


def line(number: int, net: int, rate: str, category: str = "", reason: str = "") -> pb.InvoiceLine:
    return pb.InvoiceLine(
        number=number,
        description=f"Vare {number}",
        quantity="1",
        unit_price_minor=net,
        vat_rate=rate,
        unit_code="EA",
        net_amount_minor=net,
        vat_category=category,
        vat_exemption_reason=reason,
    )


def invoice(**changes: object) -> pb.Invoice:
    fields: dict[str, object] = {
        "id": "inv-1",
        "invoice_number": "10042",
        "kid": "0000100421",
        "issue_date": "2026-03-02",
        "due_date": "2026-03-16",
        "currency": "NOK",
        # Two lines at 25 % whose VAT the ledger rounds on the total (0,33 + 0,33 → 0,17 not 0,16).
        "lines": [
            line(1, 33, "25"),
            line(2, 33, "25"),
            line(3, 500_00, "0"),
            line(4, 200_00, "0", "E", "Unntatt etter mval. § 3-2"),
        ],
        "vat_breakdown": [
            pb.VatBreakdown(vat_rate="25", taxable_amount_minor=66, vat_amount_minor=17),
            pb.VatBreakdown(vat_rate="0", taxable_amount_minor=700_00, vat_amount_minor=0),
        ],
        "net_total": nok(700_66),
        "vat_total": nok(17),
        "gross_total": nok(700_83),
        "paid_total": nok(0),
        "credited_total": nok(0),
        "balance": nok(700_83),
    }
    fields.update(changes)
    return pb.Invoice(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("asked", "on_invoice", "customers", "jurisdiction", "expected"),
    [
        ("sv", "en", "nb", "NO", "sv"),
        ("", "en", "nb", "NO", "en"),
        ("", "", "nn", "NO", "nb"),
        ("", "", "", "SE", "sv"),
        ("", "", "", "NO", "nb"),
        # A language documents are not written in: English, not the creditor's own.
        ("", "", "de", "NO", "en"),
    ],
)
def test_the_document_is_in_the_first_language_asked_for(
    asked: str, on_invoice: str, customers: str, jurisdiction: str, expected: str
) -> None:
    assert language_of(asked, on_invoice, customers, jurisdiction=jurisdiction) == expected


def test_vat_is_the_ledgers_per_rate_and_split_by_category_at_zero() -> None:
    view = build_view("invoice", invoice(), customer(), profile(), link=LINK, notice_date=NOTICE)

    assert view.vat == (
        VatSubtotal("S", D(25), 66, 17),
        VatSubtotal("E", D(0), 200_00, 0, "Unntatt etter mval. § 3-2"),
        VatSubtotal("Z", D(0), 500_00, 0),
    )
    assert sum(v.taxable_minor for v in view.vat) == view.net_minor
    assert sum(v.vat_minor for v in view.vat) == view.vat_minor
    assert [ln.vat_category for ln in view.lines] == ["S", "S", "Z", "E"]
    assert view.amount_due_minor == 700_83
    assert view.due_date == date(2026, 3, 16)
    assert view.kid == "0000100421"
    assert view.buyer.kind == "business"
    assert view.profile_version == 3
    assert view.payment_link == LINK


def test_a_part_paid_invoice_asks_only_for_what_is_left() -> None:
    part_paid = invoice(paid_total=nok(500_00), balance=nok(200_83))

    view = build_view("invoice", part_paid, customer(), profile(), link=LINK, notice_date=NOTICE)

    assert (view.paid_minor, view.amount_due_minor, view.gross_minor) == (500_00, 200_83, 700_83)


def test_a_credit_note_names_what_it_credits_and_asks_for_nothing() -> None:
    note = invoice(
        id="cn-1",
        invoice_number="CN-7",
        kind=pb.INVOICE_KIND_CREDIT_NOTE,
        reason="Feil antall",
        balance=nok(-700_83),
    )
    credited = invoice()

    view = build_view(
        "credit_note", note, customer(), profile(), link=LINK, notice_date=NOTICE, credited=credited
    )

    assert view.credits is not None
    assert (view.credits.number, view.credits.issue_date) == ("10042", date(2026, 3, 2))
    assert (view.amount_due_minor, view.kid, view.due_date) == (0, "", None)
    assert view.reason == "Feil antall"


def test_a_reminder_states_the_original_claim_its_charges_and_the_new_deadline() -> None:
    reminded = invoice(
        paid_total=nok(100_00),
        balance=nok(700_83 - 100_00 + 35_00 + 1_23),
        charges=[
            pb.Charge(
                kind="reminder_fee",
                description="Purregebyr",
                amount_minor=35_00,
                added_at="2026-05-04T08:00:00Z",
            ),
            pb.Charge(
                kind="late_interest",
                description="Forsinkelsesrente",
                amount_minor=1_23,
                added_at="2026-05-04T08:00:00Z",
            ),
        ],
    )
    deadline = date(2026, 5, 18)

    view = build_view(
        "reminder",
        reminded,
        customer(pb.CUSTOMER_KIND_CONSUMER, "nb"),
        profile(),
        link=LINK,
        notice_date=NOTICE,
        deadline=deadline,
        reminders_before=1,
    )

    assert view.dunning is not None
    assert view.dunning.stage == 2
    assert (view.issue_date, view.due_date, view.dunning.deadline) == (NOTICE, deadline, deadline)
    assert view.dunning.original_gross_minor == 700_83
    assert view.dunning.original_due_date == date(2026, 3, 16)
    assert view.dunning.paid_minor == 100_00
    assert view.dunning.charges == (
        Charge("fee", "Purregebyr", 35_00, NOTICE),
        Charge("interest", "Forsinkelsesrente", 1_23, NOTICE),
    )
    assert view.amount_due_minor == 700_83 - 100_00 + 35_00 + 1_23
    assert view.buyer.kind == "consumer"


def test_a_collection_notice_counts_the_reminders_before_it() -> None:
    view = build_view(
        "collection_notice",
        invoice(),
        customer(),
        profile(),
        link=LINK,
        notice_date=NOTICE,
        deadline=date(2026, 5, 18),
        reminders_before=2,
    )

    assert view.dunning is not None
    assert view.dunning.stage == 2


def test_a_reminder_without_its_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="deadline"):
        build_view("reminder", invoice(), customer(), profile(), link=LINK, notice_date=NOTICE)
