"""Amounts, dates, numbers and account numbers as each language writes them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.renderer.domain import formatting as fmt
from services.renderer.domain.model import Language
from tests.support.renderer_samples import credit_note, no_collection_notice, no_reminder, samples


@pytest.mark.parametrize(
    ("minor", "currency", "language", "expected"),
    [
        (125000, "NOK", "nb", "1 250,00 kr"),
        (125000, "SEK", "sv", "1 250,00 kr"),
        (125000, "NOK", "en", "NOK 1,250.00"),
        (125000, "SEK", "nb", "1 250,00 SEK"),
        (125000, "NOK", "sv", "1 250,00 NOK"),
        (125050, "EUR", "nb", "1 250,50 EUR"),
        (125050, "EUR", "en", "EUR 1,250.50"),
        (-125050, "NOK", "nb", "-1 250,50 kr"),
        (-125050, "NOK", "en", "-NOK 1,250.50"),
        (5, "NOK", "nb", "0,05 kr"),
        (0, "SEK", "sv", "0,00 kr"),
        (123456789012, "NOK", "nb", "1 234 567 890,12 kr"),
        # ISO 4217 minor units, not CLDR's: ISK and JPY have none, KWD three.
        (1234, "ISK", "nb", "1 234 ISK"),
        (1234, "JPY", "en", "JPY 1,234"),
        (1234567, "KWD", "en", "KWD 1,234.567"),
    ],
)
def test_money_per_language(minor: int, currency: str, language: Language, expected: str) -> None:
    assert fmt.money(minor, currency, language) == expected


def test_money_uses_plain_spaces_and_hyphen_minus_in_every_language() -> None:
    for language in ("nb", "sv", "en"):
        text = fmt.money(-123456789, "SEK", language)
        assert "\u00a0" not in text
        assert "\u202f" not in text
        assert "\u2212" not in text


def test_amount_without_currency() -> None:
    assert fmt.amount(125000, "NOK", "nb") == "1 250,00"
    assert fmt.amount(125000, "NOK", "en") == "1,250.00"
    assert fmt.amount(7, "JPY", "sv") == "7"


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        fmt.money(100, "nok", "nb")


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        fmt.money(100, "NOK", "de")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("language", "short", "long"),
    [
        ("nb", "05.03.2025", "5. mars 2025"),
        ("sv", "2025-03-05", "5 mars 2025"),
        ("en", "5 Mar 2025", "5 March 2025"),
    ],
)
def test_dates(language: Language, short: str, long: str) -> None:
    assert fmt.short_date(date(2025, 3, 5), language) == short
    assert fmt.long_date(date(2025, 3, 5), language) == long
    assert fmt.compact_date(date(2025, 3, 5)) == "20250305"


@pytest.mark.parametrize(
    ("value", "nb", "en"),
    [
        ("2", "2", "2"),
        ("2.000", "2", "2"),
        ("1.5", "1,5", "1.5"),
        ("0.125", "0,125", "0.125"),
        ("1200", "1 200", "1,200"),
        ("1E+2", "100", "100"),
        ("12480", "12 480", "12,480"),
        ("-3", "-3", "-3"),
    ],
)
def test_quantities_keep_their_decimals_and_drop_trailing_zeros(value: str, nb: str, en: str) -> None:
    assert fmt.quantity(Decimal(value), "nb") == nb
    assert fmt.quantity(Decimal(value), "en") == en


def test_percentages() -> None:
    assert fmt.percent(Decimal("25"), "nb") == "25 %"
    assert fmt.percent(Decimal("11.11"), "nb") == "11,11 %"
    assert fmt.percent(Decimal("12.5"), "sv") == "12,5 %"
    assert fmt.percent(Decimal("25.00"), "en") == "25%"
    assert fmt.percent(Decimal("0"), "en") == "0%"


def test_account_numbers_grouped_as_banks_print_them() -> None:
    assert fmt.no_account("86011117947") == "8601 11 17947"
    assert fmt.no_account("8601.11.17947") == "8601 11 17947"
    assert fmt.iban("no93 8601 1117 947") == "NO93 8601 1117 947"
    assert fmt.bankgiro("50501055") == "5050-1055"
    assert fmt.bankgiro("123-4567") == "123-4567"
    assert fmt.plusgiro("9020012") == "90 20 01-2"
    assert fmt.plusgiro("477474") == "4 77 47-4"
    assert fmt.org_number("974760673", "NO") == "974 760 673"
    assert fmt.org_number("5566778899", "SE") == "556677-8899"


def test_account_numbers_that_do_not_fit_are_shown_as_given() -> None:
    assert fmt.no_account("1234") == "1234"
    assert fmt.bankgiro("12") == "12"


def test_payment_references_grouped_in_fours() -> None:
    assert fmt.payment_reference("000123456782") == "0001 2345 6782"
    assert fmt.payment_reference("1234567") == "1234 567"
    assert fmt.payment_reference("12345678-") == "1234 5678 -"
    assert fmt.payment_reference("") == ""


def test_presentation_of_an_invoice_states_who_what_and_how_to_pay() -> None:
    view = samples()["no_business_invoice"]
    shown = fmt.present(view)
    assert shown.title == "Faktura"
    assert shown.payment is not None
    assert shown.payment.amount.value == fmt.money(view.amount_due_minor, "NOK", "nb")
    assert shown.payment.reference is not None
    assert shown.payment.reference.value == fmt.payment_reference(view.kid)
    assert [a.value for a in shown.payment.accounts] == ["8601 11 17947"]
    labels = [fact.label for fact in shown.facts]
    assert labels[:3] == ["Fakturanummer", "Fakturadato", "Forfallsdato"]
    assert {"Deres referanse", "Ordrenummer", "Kontrakt"} <= set(labels)
    vat_rows = [row.label for row in shown.totals if row.label.startswith("Mva.")]
    assert len(vat_rows) == 3  # 25, 15 and 12 %
    assert shown.seller_legal == ("Org.nr. 974 760 673 MVA", "Foretaksregisteret")
    assert shown.qr is not None
    assert shown.qr.kind == "link"


def test_eur_invoice_is_paid_to_iban_and_bic() -> None:
    shown = fmt.present(samples()["eur_invoice"])
    assert shown.payment is not None
    assert [(a.label, a.value) for a in shown.payment.accounts] == [
        ("IBAN", "NO93 8601 1117 947"),
        ("BIC", "DNBANOKKXXX"),
    ]
    assert shown.qr is not None
    assert shown.qr.kind == "epc"
    assert any("Reverse charge" in row.label for row in shown.totals)
    assert "Germany" in shown.buyer.lines


def test_swedish_invoice_states_f_tax_and_vat_number() -> None:
    shown = fmt.present(samples()["se_invoice"])
    assert shown.seller_legal == ("Org.nr 556677-8899", "Momsreg.nr SE556677889901", "Godkänd för F-skatt")
    assert shown.payment is not None
    assert shown.payment.reference is not None
    assert shown.payment.reference.label == "OCR"
    assert [a.value for a in shown.payment.accounts] == ["5050-1055"]


def test_credit_note_names_the_invoice_and_asks_for_no_payment() -> None:
    shown = fmt.present(credit_note())
    assert shown.payment is None
    assert shown.qr is None
    assert shown.credit is not None
    assert shown.credit.text == "Krediterer faktura 10023 av 14.03.2025"


def test_reminder_lists_the_claim_then_fees_and_interest_apart() -> None:
    view = no_reminder()
    shown = fmt.present(view)
    assert shown.dunning is not None
    labels = [row.label for row in shown.dunning.rows]
    assert labels[0] == "Faktura 10024 av 14.03.2025, forfalt 28.03.2025"
    assert labels.index("Utestående krav") < labels.index("Gebyrer og renter (i tillegg til kravet)")
    assert "Purregebyr, lagt til 14.04.2025" in labels
    assert "Forsinkelsesrente, lagt til 14.04.2025" in labels
    assert labels[-1] == "Totalt å betale"
    assert shown.dunning.rows[-1].value == fmt.money(view.amount_due_minor, "NOK", "nb")
    assert "28. april 2025" in shown.dunning.legal
    assert shown.lines == ()


def test_second_reminder_is_titled_as_such() -> None:
    view = no_reminder()
    assert view.dunning is not None
    second = replace(view, dunning=replace(view.dunning, stage=2))
    assert fmt.document_title(second) == "2. gangs purring"


def test_dunning_deadline_under_14_days_is_refused() -> None:
    view = no_collection_notice()
    assert view.dunning is not None
    short = replace(view, dunning=replace(view.dunning, deadline=view.issue_date + timedelta(days=13)))
    with pytest.raises(fmt.DocumentError, match="at least 14"):
        fmt.present(short)


def test_reminder_without_dunning_facts_is_refused() -> None:
    with pytest.raises(fmt.DocumentError, match="no dunning facts"):
        fmt.present(replace(no_reminder(), dunning=None))


def test_credit_note_that_names_no_invoice_is_refused() -> None:
    with pytest.raises(fmt.DocumentError, match="does not name the invoice"):
        fmt.present(replace(credit_note(), credits=None))


def test_invalid_accent_colour_falls_back_to_the_default() -> None:
    view = samples()["no_consumer_invoice"]
    odd = replace(view, seller=replace(view.seller, accent_colour="red;}</style><script>"))
    assert fmt.present(odd).accent == "#1F4E79"
