"""From the ledger's data to the document's view model: pure, every input given (the invoice, its
customer and the creditor's profile as the ledger holds them, the link, and the notice's date)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, cast

from services.common.creditor import CreditorProfile
from services.renderer.domain.model import (
    Address,
    Buyer,
    Charge,
    CreditedInvoice,
    DocumentKind,
    DocumentView,
    Dunning,
    Language,
    Line,
    Seller,
    VatCategory,
    VatSubtotal,
)

_LANGUAGES: dict[str, Language] = {"nb": "nb", "nn": "nb", "no": "nb", "sv": "sv", "en": "en"}
_CATEGORIES = frozenset({"S", "Z", "E", "AE", "K", "G", "O"})


def language_of(*choices: str, jurisdiction: str) -> Language:
    """The first language asked for that documents are written in; else the creditor's country's."""
    for choice in choices:
        if choice and choice.lower() in _LANGUAGES:
            return _LANGUAGES[choice.lower()]
    for choice in choices:
        if choice:
            return "en"
    return "sv" if jurisdiction == "SE" else "nb"


def seller_of(profile: CreditorProfile) -> Seller:
    a = profile.address
    return Seller(
        legal_name=profile.legal_name,
        org_number=profile.org_number,
        jurisdiction=profile.jurisdiction,
        vat_id=profile.vat_id,
        in_enterprise_register=profile.in_enterprise_register,
        f_tax_approved=profile.f_tax_approved,
        address=Address(tuple(a.lines), a.postal_code, a.city, a.country or profile.jurisdiction),
        email=profile.email,
        phone=profile.phone,
        website=profile.website,
        bank_account=profile.bank_account,
        iban=profile.iban,
        bic=profile.bic,
        bankgiro=profile.bankgiro,
        plusgiro=profile.plusgiro,
        logo=profile.logo,
        logo_media_type=profile.logo_media_type,
        accent_colour=profile.accent_colour,
        footer=profile.footer,
    )


def buyer_of(customer: Any) -> Buyer:
    a = customer.address
    return Buyer(
        name=customer.name,
        kind="business" if customer.kind == 2 else "consumer",
        customer_number=customer.number,
        address=Address(tuple(a.lines), a.postal_code, a.city, a.country),
        org_number=customer.org_number,
        email=customer.email,
        phone=customer.phone,
    )


def lines_of(invoice: Any) -> tuple[Line, ...]:
    lines = []
    for ln in invoice.lines:
        rate = Decimal(ln.vat_rate)
        category = getattr(ln, "vat_category", "") or ("S" if rate > 0 else "Z")
        lines.append(
            Line(
                number=ln.number,
                description=ln.description,
                quantity=Decimal(ln.quantity),
                unit_code=ln.unit_code or "EA",
                unit_price_minor=ln.unit_price_minor,
                net_minor=ln.net_amount_minor,
                vat_rate=rate,
                vat_category=cast("VatCategory", category if category in _CATEGORIES else "S"),
                vat_exemption_reason=getattr(ln, "vat_exemption_reason", ""),
            )
        )
    return tuple(lines)


def vat_of(invoice: Any, lines: tuple[Line, ...]) -> tuple[VatSubtotal, ...]:
    """The ledger's VAT per rate (its rounding, which the money follows), split by category where
    lines of one rate differ in category (only at 0 %, where the VAT is 0 in every category)."""
    ledger_vat = {
        Decimal(v.vat_rate): (v.taxable_amount_minor, v.vat_amount_minor) for v in invoice.vat_breakdown
    }
    by_category: dict[tuple[Decimal, str, str], int] = defaultdict(int)
    for line in lines:
        by_category[(line.vat_rate, line.vat_category, line.vat_exemption_reason)] += line.net_minor
    subtotals = []
    for rate, (taxable, vat) in sorted(ledger_vat.items(), reverse=True):
        groups = [(k, amount) for k, amount in by_category.items() if k[0] == rate]
        if len(groups) <= 1:
            category, reason = (
                (groups[0][0][1], groups[0][0][2]) if groups else ("S" if rate > 0 else "Z", "")
            )
            subtotals.append(VatSubtotal(cast("VatCategory", category), rate, taxable, vat, reason))
            continue
        for (_, category, reason), amount in sorted(groups, key=lambda g: (g[0][1], g[0][2])):
            subtotals.append(VatSubtotal(cast("VatCategory", category), rate, amount, 0, reason))
    return tuple(subtotals)


def charge_kind(ledger_kind: str) -> Literal["fee", "interest", "compensation"]:
    """The ledger's charge kinds ("reminder_fee", "late_interest_interest", "reminder_compensation",
    "compensation") as a document lists them."""
    if ledger_kind.endswith("interest"):
        return "interest"
    if ledger_kind == "compensation" or ledger_kind.endswith("_compensation"):
        return "compensation"
    return "fee"


def charges_of(invoice: Any) -> tuple[Charge, ...]:
    found = []
    for c in invoice.charges:
        added = datetime.fromisoformat(c.added_at.replace("Z", "+00:00")).date() if c.added_at else date.min
        found.append(
            Charge(
                kind=charge_kind(c.kind),
                description=c.description,
                amount_minor=c.amount_minor,
                added_on=added,
            )
        )
    return tuple(found)


def build_view(
    kind: DocumentKind,
    invoice: Any,
    customer: Any,
    profile: CreditorProfile,
    *,
    link: str,
    notice_date: date,
    language: str = "",
    credited: Any = None,
    deadline: date | None = None,
    reminders_before: int = 0,
    interest_to_date_minor: int = 0,
    offers: tuple[str, ...] = (),
) -> DocumentView:
    """`invoice` and `customer` are the ledger's messages (fordring.ledger.v1 Invoice and Customer);
    `credited` is the invoice a credit note credits; reminders and notices pass their deadline, how
    many reminders came before and the interest accrued to the notice's date. A nudge is dated the
    day it is sent and names the invoice's own due date."""
    lines = lines_of(invoice)
    issue_date = date.fromisoformat(invoice.issue_date)
    dunning = None
    due_date: date | None = date.fromisoformat(invoice.due_date) if invoice.due_date else None
    document_date = issue_date
    if kind in ("reminder", "collection_notice"):
        if deadline is None:
            raise ValueError(f"a {kind.replace('_', ' ')} needs its deadline")
        dunning = Dunning(
            stage=reminders_before + (1 if kind == "reminder" else 0),
            original_gross_minor=invoice.gross_total.minor_units,
            original_issue_date=issue_date,
            original_due_date=date.fromisoformat(invoice.due_date),
            paid_minor=invoice.paid_total.minor_units,
            credited_minor=invoice.credited_total.minor_units,
            charges=charges_of(invoice),
            deadline=deadline,
            interest_to_date_minor=interest_to_date_minor,
        )
        due_date = deadline
        document_date = notice_date
    if kind == "nudge":
        document_date = notice_date
    if kind == "credit_note":
        due_date = None
    amount_due = 0 if kind == "credit_note" else max(0, invoice.balance.minor_units)
    return DocumentView(
        kind=kind,
        language=language_of(
            language, invoice.language, customer.language, jurisdiction=profile.jurisdiction
        ),
        tenant_id="",
        invoice_id=invoice.id,
        number=invoice.invoice_number,
        issue_date=document_date,
        due_date=due_date,
        currency=invoice.currency,
        seller=seller_of(profile),
        buyer=buyer_of(customer),
        lines=lines,
        vat=vat_of(invoice, lines),
        net_minor=invoice.net_total.minor_units,
        vat_minor=invoice.vat_total.minor_units,
        gross_minor=invoice.gross_total.minor_units,
        amount_due_minor=amount_due,
        kid="" if kind == "credit_note" else invoice.kid,
        payment_link=link,
        buyer_reference=invoice.buyer_reference,
        order_reference=invoice.order_reference,
        contract_reference=invoice.contract_reference,
        paid_minor=invoice.paid_total.minor_units,
        credited_minor=invoice.credited_total.minor_units,
        credits=CreditedInvoice(credited.invoice_number, date.fromisoformat(credited.issue_date))
        if credited is not None
        else None,
        reason=getattr(invoice, "reason", ""),
        dunning=dunning,
        profile_version=profile.version,
        offers=offers,
    )
