"""EHF: a DocumentView as a Peppol BIS Billing 3.0 document (UBL 2.1), an Invoice (380) or a CreditNote
(381) that the Peppol validation rules (CEN EN 16931, PEPPOL-EN16931, NO-R and SE-R) accept.

Amounts are written with the currency's ISO 4217 decimals; EN 16931 allows at most two (UBL-DT-01),
so currencies with three are refused. A credit note states what it credits with positive amounts.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Final

from lxml import etree

from services.common.money import CURRENCY_EXPONENTS, check_currency
from services.renderer.domain.model import Address, Buyer, DocumentView, Line, Seller, VatCategory

CUSTOMIZATION_ID: Final = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID: Final = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
INVOICE_TYPE_CODE: Final = "380"
CREDIT_NOTE_TYPE_CODE: Final = "381"
# UNCL4461 30: credit transfer (the SE-R rules want bankgiro and plusgiro as 30 too, told by the branch).
CREDIT_TRANSFER: Final = "30"
# Peppol Electronic Address Scheme / ISO 6523 ICD: 0192 Enhetsregisteret (NO), 0007 Bolagsverket (SE).
ORG_NUMBER_SCHEMES: Final = {"NO": "0192", "SE": "0007"}

_UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
_CAC = _UBL + "CommonAggregateComponents-2"
_CBC = _UBL + "CommonBasicComponents-2"
_ROOTS = {"invoice": (_UBL + "Invoice-2", "Invoice"), "credit_note": (_UBL + "CreditNote-2", "CreditNote")}
# Characters XML 1.0 cannot carry (C0 controls but tab and line breaks, surrogates, U+FFFE/FFFF).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_COMPACT = re.compile(r"[\s.\-]")
ITEM_NAME_MAX = 100
# BR-E-10, BR-AE-10, BR-G-10, BR-O-10 want a reason (text or code) on these categories; BR-S-10 and
# BR-Z-10 forbid one on S and Z. The standard texts, when the view states none.
_REASON_REQUIRED: Final[frozenset[VatCategory]] = frozenset({"E", "AE", "G", "O"})
_DEFAULT_REASONS: Final[dict[str, dict[VatCategory, str]]] = {
    "nb": {
        "E": "Fritatt for merverdiavgift",
        "AE": "Omvendt avgiftsplikt",
        "G": "Utførsel av varer og tjenester",
        "O": "Utenfor merverdiavgiftsloven",
    },
    "sv": {
        "E": "Undantaget från mervärdesskatt",
        "AE": "Omvänd betalningsskyldighet",
        "G": "Export",
        "O": "Utanför mervärdesskattelagens tillämpningsområde",
    },
    "en": {
        "E": "Exempt from VAT",
        "AE": "Reverse charge",
        "G": "Export outside the EU",
        "O": "Not subject to VAT",
    },
}
_DOCUMENT_NAMES = {
    "nb": {"invoice": "Faktura", "credit_note": "Kreditnota"},
    "sv": {"invoice": "Faktura", "credit_note": "Kreditfaktura"},
    "en": {"invoice": "Invoice", "credit_note": "Credit note"},
}
_PAY_AT = {"nb": "Betal her:", "sv": "Betala här:", "en": "Pay here:"}


class EhfNotPossible(ValueError):
    """The view cannot become an EHF document (not an invoice or credit note, a buyer outside Peppol)."""


def render_ehf(view: DocumentView, *, pdf: bytes | None = None) -> bytes:
    """The EHF (UBL 2.1, UTF-8) for an invoice or credit note; pdf, when given, is embedded (BG-24)."""
    _check(view, pdf)
    return _Writer(view).document(pdf)


def _check(view: DocumentView, pdf: bytes | None) -> None:
    if view.kind not in _ROOTS:
        raise EhfNotPossible(
            f"a {view.kind.replace('_', ' ')} is not an EHF document: Peppol BIS Billing 3.0 carries only "
            "invoices and credit notes; send it by e-mail, post or the portal"
        )
    buyer = view.buyer
    if buyer.kind == "consumer" or not _compact(buyer.org_number):
        raise EhfNotPossible(
            f"buyer {buyer.name!r} (customer {buyer.customer_number}) has no organisation number and cannot "
            "receive EHF: Peppol addresses businesses by organisation number; use eFaktura, e-mail or post"
        )
    if buyer.address.country not in ORG_NUMBER_SCHEMES:
        where = f"is in {buyer.address.country}" if buyer.address.country else "has no country in its address"
        raise EhfNotPossible(
            f"buyer {buyer.name!r} {where}: Fordring addresses EHF only to Norwegian (0192) and "
            "Swedish (0007) organisation numbers"
        )
    if not _compact(view.seller.org_number):
        raise EhfNotPossible("the seller has no organisation number (its Peppol address)")
    if not _text(view.number):
        raise EhfNotPossible("the document has no number (BT-1)")
    exponent = CURRENCY_EXPONENTS[check_currency(view.currency)]
    if exponent > 2:
        raise EhfNotPossible(
            f"{view.currency} has {exponent} decimals; EN 16931 amounts have at most two (UBL-DT-01)"
        )
    if any(line.vat_category == "K" for line in view.lines):
        # BR-IC-02, -11, -12: the buyer's VAT number, a delivery date and country, none of which the
        # view carries; and an intra-community supply needs a buyer in another EU state.
        raise EhfNotPossible("intra-community supply (VAT category K) is not supported in EHF")
    if pdf is not None and not pdf.startswith(b"%PDF-"):
        raise ValueError("pdf: not a PDF document (it does not start with %PDF-)")


def _text(value: str) -> str:
    """value without characters XML cannot hold, stripped: "" when nothing printable is left."""
    return _NOT_XML.sub("", value).strip()


def _compact(identifier: str) -> str:
    return _NOT_COMPACT.sub("", identifier)


def _decimal(value: Decimal) -> str:
    """25 -> "25", 0.500 -> "0.5", 100 -> "100" (never an exponent)."""
    return format(value.normalize(), "f") if value else "0"


class _Writer:
    def __init__(self, view: DocumentView) -> None:
        self.view = view
        self.currency = view.currency
        self.exponent = CURRENCY_EXPONENTS[view.currency]
        self.invoice = view.kind == "invoice"
        self.language = view.language if view.language in _DEFAULT_REASONS else "en"
        # BR-O-02: a document with VAT category O carries no VAT identifier at all.
        self.outside_scope = any(line.vat_category == "O" for line in view.lines) or any(
            row.category == "O" for row in view.vat
        )

    # -- building blocks --------------------------------------------------------------------------

    @staticmethod
    def cbc(parent: etree._Element, name: str, text: str, **attributes: str) -> etree._Element:
        element = etree.SubElement(parent, f"{{{_CBC}}}{name}", attributes)
        element.text = text
        return element

    @staticmethod
    def cac(parent: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{_CAC}}}{name}")

    def optional(self, parent: etree._Element, name: str, value: str) -> None:
        """cbc:name only when value has text (PEPPOL-EN16931-R008: no empty elements)."""
        text = _text(value)
        if text:
            self.cbc(parent, name, text)

    def amount(self, parent: etree._Element, name: str, minor: int) -> None:
        self.cbc(parent, name, self.money(minor), currencyID=self.currency)

    def money(self, minor: int) -> str:
        if not self.exponent:
            return str(minor)
        units, fraction = divmod(abs(minor), 10**self.exponent)
        return f"{'-' if minor < 0 else ''}{units}.{fraction:0{self.exponent}d}"

    # -- the document -----------------------------------------------------------------------------

    def document(self, pdf: bytes | None) -> bytes:
        view = self.view
        namespace, root_name = _ROOTS[view.kind]
        nsmap = {None: namespace, "cac": _CAC, "cbc": _CBC}
        # lxml-stubs do not know the None key (the default namespace).
        root = etree.Element(f"{{{namespace}}}{root_name}", nsmap=nsmap)  # type: ignore[arg-type]
        self.cbc(root, "CustomizationID", CUSTOMIZATION_ID)
        self.cbc(root, "ProfileID", PROFILE_ID)
        self.cbc(root, "ID", _text(view.number))
        self.cbc(root, "IssueDate", view.issue_date.isoformat())
        if self.invoice:
            if view.due_date is not None:
                self.cbc(root, "DueDate", view.due_date.isoformat())
            self.cbc(root, "InvoiceTypeCode", INVOICE_TYPE_CODE)
        else:
            self.cbc(root, "CreditNoteTypeCode", CREDIT_NOTE_TYPE_CODE)
        # PEPPOL-EN16931-R002: one document note at most.
        self.optional(root, "Note", view.reason)
        # No TaxCurrencyCode: with it BR-53 wants the VAT in that currency (BT-111), which the view does
        # not carry, and no rule asks for it when the document currency is foreign.
        self.cbc(root, "DocumentCurrencyCode", self.currency)
        self.references(root)
        if pdf is not None:
            self.attachment(root, pdf)
        self.seller(root, view.seller)
        self.buyer(root, view.buyer)
        if self.invoice:
            self.payment(root)
        self.tax_total(root)
        self.totals(root)
        for line in view.lines:
            self.line(root, line)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def references(self, root: etree._Element) -> None:
        """BuyerReference or OrderReference (PEPPOL-EN16931-R003); with neither, the customer number,
        which is how the buyer knows us best. Then the credited invoice and the contract."""
        view = self.view
        buyer_reference = _text(view.buyer_reference)
        order_reference = _text(view.order_reference)
        if not buyer_reference and not order_reference:
            buyer_reference = _text(view.buyer.customer_number)
        if buyer_reference:
            self.cbc(root, "BuyerReference", buyer_reference)
        if order_reference:
            self.cbc(self.cac(root, "OrderReference"), "ID", order_reference)
        if not self.invoice and view.credits is not None:
            credited = self.cac(self.cac(root, "BillingReference"), "InvoiceDocumentReference")
            self.cbc(credited, "ID", _text(view.credits.number))
            self.cbc(credited, "IssueDate", view.credits.issue_date.isoformat())
        contract = _text(view.contract_reference)
        if contract:
            self.cbc(self.cac(root, "ContractDocumentReference"), "ID", contract)

    def attachment(self, root: etree._Element, pdf: bytes) -> None:
        view = self.view
        reference = self.cac(root, "AdditionalDocumentReference")
        self.cbc(reference, "ID", _text(view.number))
        self.cbc(reference, "DocumentDescription", _DOCUMENT_NAMES[self.language][view.kind])
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", _text(view.number)) + ".pdf"
        self.cbc(
            self.cac(reference, "Attachment"),
            "EmbeddedDocumentBinaryObject",
            base64.b64encode(pdf).decode("ascii"),
            mimeCode="application/pdf",
            filename=filename,
        )

    # -- parties ----------------------------------------------------------------------------------

    def address(self, party: etree._Element, address: Address) -> None:
        postal = self.cac(party, "PostalAddress")
        lines = [text for text in (_text(line) for line in address.lines) if text]
        if lines:
            self.cbc(postal, "StreetName", lines[0])
        if len(lines) > 1:
            self.cbc(postal, "AdditionalStreetName", lines[1])
        self.optional(postal, "CityName", address.city)
        self.optional(postal, "PostalZone", address.postal_code)
        if len(lines) > 2:
            # UBL-SR-51: one third address line at most.
            self.cbc(self.cac(postal, "AddressLine"), "Line", ", ".join(lines[2:]))
        self.cbc(self.cac(postal, "Country"), "IdentificationCode", address.country)

    def tax_scheme(self, party: etree._Element, company_id: str, scheme: str) -> None:
        tax = self.cac(party, "PartyTaxScheme")
        self.cbc(tax, "CompanyID", company_id)
        self.cbc(self.cac(tax, "TaxScheme"), "ID", scheme)

    def legal_entity(self, party: etree._Element, name: str, org_number: str, scheme: str) -> None:
        legal = self.cac(party, "PartyLegalEntity")
        self.cbc(legal, "RegistrationName", _text(name))
        self.cbc(legal, "CompanyID", org_number, schemeID=scheme)

    def contact(self, party: etree._Element, phone: str, email: str) -> None:
        if _text(phone) or _text(email):
            contact = self.cac(party, "Contact")
            self.optional(contact, "Telephone", phone)
            self.optional(contact, "ElectronicMail", email)

    def seller(self, root: etree._Element, seller: Seller) -> None:
        party = self.cac(self.cac(root, "AccountingSupplierParty"), "Party")
        scheme = ORG_NUMBER_SCHEMES[seller.jurisdiction]
        org_number = _compact(seller.org_number)
        self.cbc(party, "EndpointID", org_number, schemeID=scheme)
        self.address(party, seller.address)
        vat_id = _compact(seller.vat_id).upper()
        if vat_id and not self.outside_scope:
            self.tax_scheme(party, vat_id, "VAT")
        if seller.jurisdiction == "NO" and seller.in_enterprise_register:
            # NO-R-002 (foretaksregisterloven § 10-2): AS, ASA and NUF state "Foretaksregisteret".
            self.tax_scheme(party, "Foretaksregisteret", "TAX")
        elif seller.jurisdiction == "SE" and seller.f_tax_approved:
            # SE-R-005: the only tax registration a Swedish seller may state.
            self.tax_scheme(party, "Godkänd för F-skatt", "TAX")
        self.legal_entity(party, seller.legal_name, org_number, scheme)
        self.contact(party, seller.phone, seller.email)

    def buyer(self, root: etree._Element, buyer: Buyer) -> None:
        party = self.cac(self.cac(root, "AccountingCustomerParty"), "Party")
        scheme = ORG_NUMBER_SCHEMES[buyer.address.country]
        org_number = _compact(buyer.org_number)
        self.cbc(party, "EndpointID", org_number, schemeID=scheme)
        self.address(party, buyer.address)
        self.legal_entity(party, buyer.name, org_number, scheme)
        self.contact(party, buyer.phone, buyer.email)

    # -- payment ----------------------------------------------------------------------------------

    def accounts(self) -> Iterator[tuple[str, str]]:
        """(account, branch) where to pay, the domestic one first for the domestic currency."""
        seller = self.view.seller
        iban = (_compact(seller.iban).upper(), _compact(seller.bic).upper())
        domestic = [
            (_compact(seller.bank_account), ""),
            # SE-R-007..010: the giro number, digits only, told apart by the branch.
            (re.sub(r"\D", "", seller.bankgiro), "SE:BANKGIRO"),
            (re.sub(r"\D", "", seller.plusgiro), "SE:PLUSGIRO"),
        ]
        home = {"NO": "NOK", "SE": "SEK"}[seller.jurisdiction]
        ordered = [*domestic, iban] if self.currency == home else [iban, *domestic]
        return ((account, branch) for account, branch in ordered if account)

    def payment(self, root: etree._Element) -> None:
        view = self.view
        kid = _text(view.kid)
        for account, branch in self.accounts():
            means = self.cac(root, "PaymentMeans")
            self.cbc(means, "PaymentMeansCode", CREDIT_TRANSFER)
            if kid:
                self.cbc(means, "PaymentID", kid)
            financial = self.cac(means, "PayeeFinancialAccount")
            self.cbc(financial, "ID", account)
            if branch:
                self.cbc(self.cac(financial, "FinancialInstitutionBranch"), "ID", branch)
        link = _text(view.payment_link)
        if link:
            self.cbc(self.cac(root, "PaymentTerms"), "Note", f"{_PAY_AT[self.language]} {link}")

    # -- VAT and totals ---------------------------------------------------------------------------

    def tax_category(
        self, parent: etree._Element, name: str, category: VatCategory, rate: Decimal, reason: str = ""
    ) -> None:
        element = self.cac(parent, name)
        self.cbc(element, "ID", category)
        if category != "O":  # BR-O-05: no rate outside the scope of VAT
            self.cbc(element, "Percent", _decimal(rate))
        if name == "TaxCategory" and category in _REASON_REQUIRED:
            text = _text(reason) or _DEFAULT_REASONS[self.language][category]
            self.cbc(element, "TaxExemptionReason", text)
        self.cbc(self.cac(element, "TaxScheme"), "ID", "VAT")

    def tax_total(self, root: etree._Element) -> None:
        view = self.view
        total = self.cac(root, "TaxTotal")
        self.amount(total, "TaxAmount", view.vat_minor)
        for row in view.vat:
            subtotal = self.cac(total, "TaxSubtotal")
            self.amount(subtotal, "TaxableAmount", row.taxable_minor)
            self.amount(subtotal, "TaxAmount", row.vat_minor)
            self.tax_category(subtotal, "TaxCategory", row.category, row.rate, row.exemption_reason)

    def totals(self, root: etree._Element) -> None:
        """BG-22. An invoice deducts what was paid on it (BT-113, BR-CO-16); credit notes and fees are
        documents of their own, so they do not change it, and a credit note pays out all it credits."""
        view = self.view
        paid = view.paid_minor if self.invoice else 0
        totals = self.cac(root, "LegalMonetaryTotal")
        self.amount(totals, "LineExtensionAmount", view.net_minor)
        self.amount(totals, "TaxExclusiveAmount", view.net_minor)
        self.amount(totals, "TaxInclusiveAmount", view.gross_minor)
        if paid:
            self.amount(totals, "PrepaidAmount", paid)
        self.amount(totals, "PayableAmount", view.gross_minor - paid)

    # -- lines ------------------------------------------------------------------------------------

    def line(self, root: etree._Element, line: Line) -> None:
        quantity, price = line.quantity, line.unit_price_minor
        if price < 0:
            # BR-27: a net price is never negative; a discount is a negative quantity.
            quantity, price = -quantity, -price
        element = self.cac(root, "InvoiceLine" if self.invoice else "CreditNoteLine")
        self.cbc(element, "ID", str(line.number))
        unit = _text(line.unit_code).upper() or "EA"
        self.cbc(
            element,
            "InvoicedQuantity" if self.invoice else "CreditedQuantity",
            _decimal(quantity),
            unitCode=unit,
        )
        self.amount(element, "LineExtensionAmount", line.net_minor)
        self.item(element, line)
        price_element = self.cac(element, "Price")
        # PEPPOL-EN16931-R120 allows 0.02 between net and quantity x price. A currency without decimals
        # rounds a fractional quantity's net by up to 0.5: then state the price for the whole quantity.
        slack = Decimal("0.02") * 10**self.exponent
        if (
            abs(quantity * price - line.net_minor) > slack
            and quantity
            and (line.net_minor == 0 or (quantity > 0) == (line.net_minor > 0))
        ):
            self.amount(price_element, "PriceAmount", abs(line.net_minor))
            self.cbc(price_element, "BaseQuantity", _decimal(abs(quantity)), unitCode=unit)
        else:
            self.amount(price_element, "PriceAmount", price)

    def item(self, parent: etree._Element, line: Line) -> None:
        """Item name (BT-153) is the first line of the description, cut at ITEM_NAME_MAX; the whole text
        goes to the description (BT-154) when it says more."""
        text = _text(line.description) or f"{line.number}"
        first = " ".join(text.splitlines()[0].split()) if text.splitlines() else text
        name = first if len(first) <= ITEM_NAME_MAX else first[: ITEM_NAME_MAX - 1].rstrip() + "…"
        item = self.cac(parent, "Item")
        if name != text:
            self.cbc(item, "Description", text)
        self.cbc(item, "Name", name or f"{line.number}")
        self.tax_category(item, "ClassifiedTaxCategory", line.vat_category, line.vat_rate)
