"""What a document shows, whatever its form: the view model every renderer reads (PDF, HTML, EHF,
e-mail, SMS). Built by `build.py` from the ledger's invoice, its customer and the creditor's profile
as it was when the invoice was issued. Pure data: amounts in minor units, dates as dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

DocumentKind = Literal["invoice", "credit_note", "nudge", "reminder", "collection_notice"]
# Kinds that are only a message (e-mail and SMS): no PDF to attach or print, no invoice page of their own.
MESSAGE_KINDS: frozenset[DocumentKind] = frozenset({"nudge"})
Language = Literal["nb", "sv", "en"]
# UNCL5305 as EN 16931 uses it: standard, zero rated, exempt, reverse charge, intra-community,
# export outside the EU/EEA, outside the scope of VAT.
VatCategory = Literal["S", "Z", "E", "AE", "K", "G", "O"]
# The forms a document is rendered to (the channels pick among them).
Form = Literal["pdf", "html", "ehf", "email", "sms"]
FORMS: tuple[Form, ...] = ("pdf", "html", "ehf", "email", "sms")


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...]
    postal_code: str
    city: str
    # ISO 3166-1 alpha-2.
    country: str


@dataclass(frozen=True)
class Seller:
    """The creditor, from its profile version."""

    legal_name: str
    org_number: str
    jurisdiction: Literal["NO", "SE"]
    # "NO974760673MVA" / "SE556677889901"; "" when not VAT registered.
    vat_id: str
    # NO: "Foretaksregisteret" is stated (AS, ASA, NUF).
    in_enterprise_register: bool
    # SE: "Godkänd för F-skatt" is stated.
    f_tax_approved: bool
    address: Address
    email: str = ""
    phone: str = ""
    website: str = ""
    # Where to pay: a Norwegian account (11 digits), IBAN/BIC, Swedish bankgiro/plusgiro.
    bank_account: str = ""
    iban: str = ""
    bic: str = ""
    bankgiro: str = ""
    plusgiro: str = ""
    logo: bytes = b""
    # "image/png" or "image/svg+xml"; "" when there is no logo.
    logo_media_type: str = ""
    # "#RRGGBB".
    accent_colour: str = "#1F4E79"
    footer: str = ""


@dataclass(frozen=True)
class Buyer:
    """The customer, as the ledger has it (the ERP is its master)."""

    name: str
    kind: Literal["consumer", "business"]
    customer_number: str
    address: Address
    # Businesses: organisation number (compact); "" for consumers.
    org_number: str = ""
    email: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Line:
    number: int
    description: str
    quantity: Decimal
    # UN/ECE rec. 20, e.g. "EA", "HUR".
    unit_code: str
    unit_price_minor: int
    net_minor: int
    # Percent, e.g. Decimal("25").
    vat_rate: Decimal
    vat_category: VatCategory = "S"
    vat_exemption_reason: str = ""


@dataclass(frozen=True)
class VatSubtotal:
    """One VAT category and rate of the document (EN 16931 BG-23)."""

    category: VatCategory
    rate: Decimal
    taxable_minor: int
    vat_minor: int
    exemption_reason: str = ""


@dataclass(frozen=True)
class Charge:
    """A fee, interest or the fixed B2B compensation a dunning step added to the claim."""

    kind: Literal["fee", "interest", "compensation"]
    description: str
    amount_minor: int
    added_on: date


@dataclass(frozen=True)
class CreditedInvoice:
    """The invoice a credit note credits (EN 16931 BG-3)."""

    number: str
    issue_date: date


@dataclass(frozen=True)
class Dunning:
    """What a reminder or a debt-collection notice must state (DOMAIN.md: inkassoloven §9,
    inkassoforskriften §1-2; the Swedish rules likewise): the original claim, what was paid or
    credited, fees apart from the claim, interest, the new deadline."""

    # 1: first reminder, 2: second reminder; for a collection notice the number of reminders before it.
    stage: int
    original_gross_minor: int
    original_issue_date: date
    original_due_date: date
    paid_minor: int
    credited_minor: int
    # Every fee, interest and compensation charge so far, this step's included.
    charges: tuple[Charge, ...]
    # The new payment deadline (at least 14 days after the notice is sent).
    deadline: date
    # Late-payment interest accrued from the due date to the notice's date, as the dunning step
    # computed it (0: not stated). Shown whatever part of it is charged (the interest charges).
    interest_to_date_minor: int = 0

    @property
    def fees_minor(self) -> int:
        return sum(c.amount_minor for c in self.charges if c.kind == "fee")

    @property
    def interest_minor(self) -> int:
        return sum(c.amount_minor for c in self.charges if c.kind == "interest")

    @property
    def compensation_minor(self) -> int:
        return sum(c.amount_minor for c in self.charges if c.kind == "compensation")


@dataclass(frozen=True)
class DocumentView:
    kind: DocumentKind
    language: Language
    tenant_id: str
    invoice_id: str
    # The invoice's or credit note's number (a reminder shows its invoice's number).
    number: str
    # The document's date: the invoice's or credit note's issue date, a reminder's or nudge's sending date.
    issue_date: date
    # Invoices and nudges: the (original) due date; reminders and notices: the new deadline; credit
    # notes: None.
    due_date: date | None
    currency: str
    seller: Seller
    buyer: Buyer
    lines: tuple[Line, ...]
    vat: tuple[VatSubtotal, ...]
    net_minor: int
    vat_minor: int
    gross_minor: int
    # What the customer is asked to pay now (balance with fees and interest); 0 for credit notes.
    amount_due_minor: int
    # The payment reference: a KID (NO) or an OCR reference (SE); "" on credit notes.
    kid: str
    # The invoice's own page (the portal), where it can be paid; also in e-mails and SMS.
    payment_link: str
    buyer_reference: str = ""
    order_reference: str = ""
    contract_reference: str = ""
    paid_minor: int = 0
    credited_minor: int = 0
    credits: CreditedInvoice | None = None
    # Why a credit note was issued (printed on it).
    reason: str = ""
    dunning: Dunning | None = None
    profile_version: int = 0
    # Offers the document makes besides asking for payment: "avtalegiro", "efaktura" (automatic
    # payment sign-up, offered to customers who paid late before).
    offers: tuple[str, ...] = ()
    # The PDF to attach to an EHF document, when the profile asks for it (set by the renderer).
    attachments: tuple[tuple[str, str, bytes], ...] = field(default=())
