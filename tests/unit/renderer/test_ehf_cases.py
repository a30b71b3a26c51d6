"""EHF cases one by one: what a receiver sees for each seller, buyer, VAT category and document kind,
what is refused and why, and which rules a broken document breaks."""

from __future__ import annotations

import base64
import random
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from services.renderer.adapters.ehf import CUSTOMIZATION_ID, PROFILE_ID, EhfNotPossible, render_ehf
from services.renderer.adapters.peppol import PeppolValidator
from services.renderer.domain.model import Buyer, CreditedInvoice, DocumentKind, DocumentView, Line
from tests.support.renderer_views import (
    business_buyer,
    consumer_buyer,
    make_line,
    make_view,
    norwegian_seller,
    swedish_seller,
)

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"


@pytest.fixture
def rng() -> random.Random:
    return random.Random(42)


def _norwegian_invoice(rng: random.Random, lines: list[Line] | None = None, **kwargs: object) -> DocumentView:
    lines = lines or [
        make_line(1, "Konsulenttimer", Decimal("7.5"), 125000, rate=Decimal(25), unit_code="HUR")
    ]
    return make_view("invoice", norwegian_seller(rng), business_buyer(rng, "NO"), lines, **kwargs)  # type: ignore[arg-type]


def _xml(view: DocumentView, pdf: bytes | None = None) -> etree._Element:
    return etree.fromstring(render_ehf(view, pdf=pdf))


def _texts(doc: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in doc.findall(path, NS)]


def _assert_valid(validator: PeppolValidator, xml: bytes) -> None:
    report = validator.validate(xml)
    assert report.valid, report.summary()
    assert not report.warnings, report.summary()


def test_a_norwegian_invoice_says_what_ehf_requires(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    view = _norwegian_invoice(
        rng, buyer_reference="3150bdn", order_reference="PO-7", contract_reference="K-1"
    )
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    assert etree.QName(doc).localname == "Invoice"
    assert doc.findtext("cbc:CustomizationID", namespaces=NS) == CUSTOMIZATION_ID
    assert doc.findtext("cbc:ProfileID", namespaces=NS) == PROFILE_ID
    assert doc.findtext("cbc:InvoiceTypeCode", namespaces=NS) == "380"
    assert doc.findtext("cbc:DueDate", namespaces=NS) == view.due_date.isoformat() if view.due_date else False
    assert doc.findtext("cbc:BuyerReference", namespaces=NS) == "3150bdn"
    assert doc.findtext("cac:OrderReference/cbc:ID", namespaces=NS) == "PO-7"
    assert doc.findtext("cac:ContractDocumentReference/cbc:ID", namespaces=NS) == "K-1"
    seller = doc.find("cac:AccountingSupplierParty/cac:Party", NS)
    assert seller is not None
    endpoint = seller.find("cbc:EndpointID", NS)
    assert endpoint is not None
    assert (endpoint.get("schemeID"), endpoint.text) == ("0192", view.seller.org_number)
    assert _texts(seller, "cac:PartyTaxScheme/cbc:CompanyID") == [view.seller.vat_id, "Foretaksregisteret"]
    assert seller.findtext("cac:PartyLegalEntity/cbc:CompanyID", namespaces=NS) == view.seller.org_number
    buyer_endpoint = doc.find("cac:AccountingCustomerParty/cac:Party/cbc:EndpointID", NS)
    assert buyer_endpoint is not None
    assert (buyer_endpoint.get("schemeID"), buyer_endpoint.text) == ("0192", view.buyer.org_number)
    means = doc.find("cac:PaymentMeans", NS)
    assert means is not None
    assert means.findtext("cbc:PaymentMeansCode", namespaces=NS) == "30"
    assert means.findtext("cbc:PaymentID", namespaces=NS) == view.kid
    assert means.findtext("cac:PayeeFinancialAccount/cbc:ID", namespaces=NS) == view.seller.bank_account
    assert view.payment_link in (doc.findtext("cac:PaymentTerms/cbc:Note", namespaces=NS) or "")
    line = doc.find("cac:InvoiceLine", NS)
    assert line is not None
    quantity = line.find("cbc:InvoicedQuantity", NS)
    assert quantity is not None
    assert (quantity.text, quantity.get("unitCode")) == ("7.5", "HUR")
    assert line.findtext("cac:Price/cbc:PriceAmount", namespaces=NS) == "1250.00"
    assert line.findtext("cbc:LineExtensionAmount", namespaces=NS) == "9375.00"


def test_without_buyer_reference_the_order_reference_or_else_the_customer_number_is_used(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    with_order = _xml(_norwegian_invoice(rng, order_reference="PO-9"))
    assert with_order.find("cbc:BuyerReference", NS) is None
    assert with_order.findtext("cac:OrderReference/cbc:ID", namespaces=NS) == "PO-9"
    bare = _norwegian_invoice(rng)
    doc = _xml(bare)
    assert doc.findtext("cbc:BuyerReference", namespaces=NS) == bare.buyer.customer_number
    _assert_valid(peppol_validator, render_ehf(bare))


def test_a_credit_note_references_the_invoice_it_credits(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    lines = [make_line(1, "Returnert vare", Decimal(2), 49900, rate=Decimal(25))]
    view = make_view(
        "credit_note",
        norwegian_seller(rng),
        business_buyer(rng, "NO"),
        lines,
        credits=CreditedInvoice("9001", date(2025, 2, 1)),
        reason="Feil vare levert",
    )
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    assert etree.QName(doc).localname == "CreditNote"
    assert doc.findtext("cbc:CreditNoteTypeCode", namespaces=NS) == "381"
    assert doc.findtext("cbc:Note", namespaces=NS) == "Feil vare levert"
    reference = "cac:BillingReference/cac:InvoiceDocumentReference/"
    assert doc.findtext(reference + "cbc:ID", namespaces=NS) == "9001"
    assert doc.findtext(reference + "cbc:IssueDate", namespaces=NS) == "2025-02-01"
    assert doc.find("cbc:DueDate", NS) is None
    assert doc.find("cac:PaymentMeans", NS) is None
    assert doc.findtext("cac:CreditNoteLine/cbc:CreditedQuantity", namespaces=NS) == "2"
    assert doc.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) == "1247.50"


def test_a_swedish_seller_with_bankgiro_meets_the_se_rules(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    seller = swedish_seller(rng, payment="bankgiro")
    seller = replace(seller, bankgiro="5050-1055")
    lines = [
        make_line(n, "Konsulttimmar", Decimal(1), 100000, rate=Decimal(rate))
        for n, rate in enumerate((25, 12, 6), 1)
    ]
    view = make_view("invoice", seller, business_buyer(rng, "SE"), lines)
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    party = doc.find("cac:AccountingSupplierParty/cac:Party", NS)
    assert party is not None
    assert party.find("cbc:EndpointID", NS).get("schemeID") == "0007"  # type: ignore[union-attr]
    assert _texts(party, "cac:PartyTaxScheme/cbc:CompanyID") == [seller.vat_id, "Godkänd för F-skatt"]
    account = doc.find("cac:PaymentMeans/cac:PayeeFinancialAccount", NS)
    assert account is not None
    assert account.findtext("cbc:ID", namespaces=NS) == "50501055"
    assert account.findtext("cac:FinancialInstitutionBranch/cbc:ID", namespaces=NS) == "SE:BANKGIRO"
    assert doc.findtext("cac:PaymentMeans/cbc:PaymentID", namespaces=NS) == view.kid
    assert [Decimal(p) for p in _texts(doc, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent")] == [
        25,
        12,
        6,
    ]


def test_plusgiro_and_no_f_tax(rng: random.Random, peppol_validator: PeppolValidator) -> None:
    seller = replace(swedish_seller(rng, payment="plusgiro", f_tax_approved=False), plusgiro="4 78 09-1")
    view = make_view(
        "invoice",
        seller,
        business_buyer(rng, "SE"),
        [make_line(1, "Hyra", Decimal(1), 500000, rate=Decimal(25))],
    )
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    assert _texts(doc, "cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID") == [
        seller.vat_id
    ]
    account = doc.find("cac:PaymentMeans/cac:PayeeFinancialAccount", NS)
    assert account is not None
    assert account.findtext("cbc:ID", namespaces=NS) == "478091"
    assert account.findtext("cac:FinancialInstitutionBranch/cbc:ID", namespaces=NS) == "SE:PLUSGIRO"


def test_an_iban_only_seller_gives_iban_and_bic_and_foreign_currency_puts_iban_first(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    iban_only = make_view(
        "invoice",
        norwegian_seller(rng, payment="iban"),
        business_buyer(rng, "NO"),
        [make_line(1, "Lisens", Decimal(1), 99900, rate=Decimal(25))],
        currency="EUR",
    )
    doc = _xml(iban_only)
    accounts = doc.findall("cac:PaymentMeans/cac:PayeeFinancialAccount", NS)
    assert [
        (
            a.findtext("cbc:ID", namespaces=NS),
            a.findtext("cac:FinancialInstitutionBranch/cbc:ID", namespaces=NS),
        )
        for a in accounts
    ] == [(iban_only.seller.iban, iban_only.seller.bic)]
    both = replace(iban_only, seller=norwegian_seller(rng, payment="both"))
    ids = _texts(etree.fromstring(render_ehf(both)), "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID")
    assert ids == [both.seller.iban, both.seller.bank_account]
    in_nok = replace(both, currency="NOK")
    ids = _texts(etree.fromstring(render_ehf(in_nok)), "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID")
    assert ids == [both.seller.bank_account, both.seller.iban]
    for view in (iban_only, both, in_nok):
        _assert_valid(peppol_validator, render_ehf(view))


def test_zero_exempt_and_reverse_charge_state_their_reasons(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    lines = [
        make_line(1, "Bøker", Decimal(3), 29900, rate=Decimal(0), category="Z"),
        make_line(
            2,
            "Legetjenester",
            Decimal(1),
            150000,
            rate=Decimal(0),
            category="E",
            exemption_reason="Fritatt etter mval. § 3-2",
        ),
        make_line(3, "Varer", Decimal(1), 10000, rate=Decimal(15)),
    ]
    xml = render_ehf(_norwegian_invoice(rng, lines))
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    categories = {
        c.findtext("cbc:ID", namespaces=NS): c.findtext("cbc:TaxExemptionReason", namespaces=NS)
        for c in doc.findall("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory", NS)
    }
    assert categories == {"S": None, "Z": None, "E": "Fritatt etter mval. § 3-2"}
    reverse = [make_line(1, "Byggetjenester", Decimal(10), 80000, rate=Decimal(0), category="AE")]
    xml = render_ehf(_norwegian_invoice(rng, reverse))
    _assert_valid(peppol_validator, xml)
    reason = etree.fromstring(xml).findtext(
        "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReason", namespaces=NS
    )
    assert reason == "Omvendt avgiftsplikt"  # the standard text when the view states none (BR-AE-10)


def test_outside_the_scope_of_vat_carries_no_vat_number_and_no_rate(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    lines = [make_line(1, "Gebyr", Decimal(1), 35000, rate=Decimal(0), category="O")]
    view = _norwegian_invoice(rng, lines, language="en")
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    # BR-O-02: no VAT identifier; the seller is still known by its organisation number (BR-CO-26).
    assert _texts(doc, "cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID") == [
        "Foretaksregisteret"
    ]
    assert doc.find(".//cac:ClassifiedTaxCategory/cbc:Percent", NS) is None
    assert doc.find("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent", NS) is None
    assert doc.findtext(".//cac:TaxCategory/cbc:TaxExemptionReason", namespaces=NS) == "Not subject to VAT"


def test_special_characters_long_texts_and_control_characters(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    special = "Bolts < 5 mm & \"nuts\" 'M8' ]]> — blåbær, smörgås, emoji 🚚👍🏽"
    long_text = "Vedlikehold av programvare, inkludert oppdateringer og brukerstøtte. " * 40
    lines = [
        make_line(1, special, Decimal("0.5"), 1999, rate=Decimal(25)),
        make_line(2, long_text, Decimal(1), 100000, rate=Decimal(25)),
        make_line(3, "Bell\x07 and form\x0c feed", Decimal(1), 100, rate=Decimal(25)),
    ]
    seller = replace(norwegian_seller(rng), legal_name='Smørbukk & "Søn" <AS>')
    view = make_view(
        "invoice", seller, business_buyer(rng, "NO"), lines, buyer_reference="Avd. <Økonomi> & Co"
    )
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    names = _texts(doc, "cac:InvoiceLine/cac:Item/cbc:Name")
    assert names[0] == special
    assert len(names[1]) == 100
    assert names[1].endswith("…")
    assert _texts(doc, "cac:InvoiceLine/cac:Item/cbc:Description") == [long_text.strip()]
    assert names[2] == "Bell and form feed"
    assert doc.findtext("cbc:BuyerReference", namespaces=NS) == "Avd. <Økonomi> & Co"
    legal = doc.findtext(
        "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName", namespaces=NS
    )
    assert legal == 'Smørbukk & "Søn" <AS>'


def test_a_currency_without_decimals_and_a_fractional_quantity(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    lines = [
        make_line(1, "Consulting", Decimal("3.333"), 1001, rate=Decimal(25)),  # 3336.333 -> 3336
        make_line(2, "Screws", Decimal("0.25"), 1, rate=Decimal(25)),  # 0.25 -> 0
        make_line(3, "Cables", Decimal(2), 700, rate=Decimal(25)),
    ]
    view = _norwegian_invoice(rng, lines, currency="JPY")
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    assert doc.findtext("cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", namespaces=NS) == "5920"
    # PEPPOL-EN16931-R120 allows only 0.02 of rounding, so the price is stated for the whole quantity.
    prices = [
        (p.findtext("cbc:PriceAmount", namespaces=NS), p.findtext("cbc:BaseQuantity", namespaces=NS))
        for p in doc.findall("cac:InvoiceLine/cac:Price", NS)
    ]
    assert prices == [("3336", "3.333"), ("0", "0.25"), ("700", None)]


def test_a_discount_line_is_a_negative_quantity_at_a_positive_price(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    lines = [
        make_line(1, "Varer", Decimal(4), 25000, rate=Decimal(25)),
        make_line(2, "Rabatt", Decimal(1), -10000, rate=Decimal(25)),
    ]
    xml = render_ehf(_norwegian_invoice(rng, lines))
    _assert_valid(peppol_validator, xml)
    discount = etree.fromstring(xml).findall("cac:InvoiceLine", NS)[1]
    assert discount.findtext("cbc:InvoicedQuantity", namespaces=NS) == "-1"
    assert discount.findtext("cac:Price/cbc:PriceAmount", namespaces=NS) == "100.00"
    assert discount.findtext("cbc:LineExtensionAmount", namespaces=NS) == "-100.00"


def test_a_prepaid_amount_is_deducted(rng: random.Random, peppol_validator: PeppolValidator) -> None:
    view = replace(_norwegian_invoice(rng), paid_minor=50000)
    xml = render_ehf(view)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    assert doc.findtext("cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", namespaces=NS) == "11718.75"
    assert doc.findtext("cac:LegalMonetaryTotal/cbc:PrepaidAmount", namespaces=NS) == "500.00"
    assert doc.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) == "11218.75"


def test_the_pdf_is_embedded(rng: random.Random, peppol_validator: PeppolValidator) -> None:
    view = replace(_norwegian_invoice(rng), number="2025/17")
    xml = render_ehf(view, pdf=PDF)
    _assert_valid(peppol_validator, xml)
    doc = etree.fromstring(xml)
    reference = doc.find("cac:AdditionalDocumentReference", NS)
    assert reference is not None
    assert reference.findtext("cbc:ID", namespaces=NS) == "2025/17"
    blob = reference.find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", NS)
    assert blob is not None
    assert blob.get("mimeCode") == "application/pdf"
    assert blob.get("filename") == "2025_17.pdf"
    assert base64.b64decode(blob.text or "") == PDF
    assert _xml(view).find("cac:AdditionalDocumentReference", NS) is None
    with pytest.raises(ValueError, match="not a PDF"):
        render_ehf(view, pdf=b"<html>")


def test_a_consumer_cannot_receive_ehf(rng: random.Random) -> None:
    view = make_view(
        "invoice",
        norwegian_seller(rng),
        consumer_buyer(rng),
        [make_line(1, "Vare", Decimal(1), 100, rate=Decimal(25))],
    )
    with pytest.raises(EhfNotPossible, match="no organisation number and cannot receive EHF"):
        render_ehf(view)
    business_without_number = replace(view, buyer=replace(business_buyer(rng, "NO"), org_number=""))
    with pytest.raises(EhfNotPossible, match="no organisation number"):
        render_ehf(business_without_number)


@pytest.mark.parametrize("kind", ["reminder", "collection_notice"])
def test_reminders_and_collection_notices_are_not_ehf(rng: random.Random, kind: DocumentKind) -> None:
    view = replace(_norwegian_invoice(rng), kind=kind)
    with pytest.raises(EhfNotPossible, match="not an EHF document"):
        render_ehf(view)


def test_what_cannot_be_stated_in_ehf_is_refused(rng: random.Random) -> None:
    view = _norwegian_invoice(rng)
    with pytest.raises(EhfNotPossible, match="two"):
        render_ehf(replace(view, currency="KWD"))
    with pytest.raises(ValueError, match="unknown currency"):
        render_ehf(replace(view, currency="nok"))
    abroad = replace(
        view, buyer=Buyer("GmbH", "business", "1", replace(view.buyer.address, country="DE"), "123")
    )
    with pytest.raises(EhfNotPossible, match="is in DE"):
        render_ehf(abroad)
    intra = replace(view, lines=(replace(view.lines[0], vat_category="K", vat_rate=Decimal(0)),))
    with pytest.raises(EhfNotPossible, match="intra-community"):
        render_ehf(intra)


def test_a_broken_document_yields_the_expected_fatal_rules(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    doc = _xml(_norwegian_invoice(rng, buyer_reference="3150bdn"))
    for path in ("cbc:BuyerReference", "cac:AccountingCustomerParty/cac:Party/cbc:EndpointID"):
        element = doc.find(path, NS)
        assert element is not None
        element.getparent().remove(element)  # type: ignore[union-attr]
    total = doc.find("cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", NS)
    assert total is not None
    total.text = "1.00"
    report = peppol_validator.validate(etree.tostring(doc))
    assert not report.valid
    assert {"PEPPOL-EN16931-R003", "PEPPOL-EN16931-R010", "BR-CO-15", "BR-CO-16"} <= report.rules()


def test_a_seller_with_a_wrong_vat_number_breaks_no_r_001(
    rng: random.Random, peppol_validator: PeppolValidator
) -> None:
    view = _norwegian_invoice(rng)
    wrong = replace(view, seller=replace(view.seller, vat_id="NO123456789MVA"))
    assert "NO-R-001" in peppol_validator.validate(render_ehf(wrong)).rules()
    unregistered = replace(view, seller=replace(view.seller, in_enterprise_register=False))
    report = peppol_validator.validate(render_ehf(unregistered))
    assert report.valid
    assert {f.rule for f in report.warnings} == {"NO-R-002"}
