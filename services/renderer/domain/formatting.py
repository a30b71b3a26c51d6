"""Numbers, money, dates and account numbers as a reader of each language expects them (Babel, CLDR),
and a whole document as the strings its forms show (`present`).

Pure functions of their inputs. Separators are plain spaces (U+0020), never CLDR's no-break spaces,
so that the same text serves PDF, HTML, e-mail and SMS (GSM-7 has no U+00A0); a renderer that must not
break inside an amount keeps it together itself (a Typst box, CSS `white-space: nowrap`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import NumberPattern, parse_pattern

from services.common.money import CURRENCY_EXPONENTS, check_currency
from services.renderer.domain.model import Address, DocumentView, Language
from services.renderer.domain.qr import payment_code, qr_svg
from services.renderer.domain.texts import text, unit_name

_LOCALES: dict[Language, Locale] = {
    "nb": Locale.parse("nb_NO"),
    "sv": Locale.parse("sv_SE"),
    "en": Locale.parse("en_GB"),
}
# The currency each language writes as "kr"; every other currency is shown by its ISO code, which no
# reader mistakes ("kr" alone would not say whether a Swede owes NOK or SEK).
_HOME_CURRENCY: dict[Language, str] = {"nb": "NOK", "sv": "SEK"}
# CLDR's spaces (no-break, narrow no-break) and minus sign, mapped to what every channel can carry.
_PLAIN = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2212": "-"})
# Numeric dates in NO and SE; English gets the month's name, as 05/03 reads differently across the Atlantic.
_DATE_FORMATS: dict[Language, str] = {"nb": "dd.MM.yyyy", "sv": "yyyy-MM-dd", "en": "d MMM yyyy"}


def _locale(language: Language) -> Locale:
    try:
        return _LOCALES[language]
    except KeyError:
        raise ValueError(f"unsupported language {language!r} (expected nb, sv or en)") from None


@lru_cache(maxsize=256)
def _money_pattern(language: Language, currency: str, with_currency: bool) -> NumberPattern:
    exponent = CURRENCY_EXPONENTS[currency]
    digits = "#,##0" + ("." + "0" * exponent if exponent else "")
    sign = "¤" if _HOME_CURRENCY.get(language) == currency else "¤¤"
    if not with_currency:
        text = digits
    elif language == "en":
        text = f"{sign} {digits}"
    else:
        text = f"{digits} {sign}"
    pattern = copy.copy(parse_pattern(text))
    pattern.frac_prec = (exponent, exponent)
    return pattern


def _decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-CURRENCY_EXPONENTS[check_currency(currency)])


def money(minor: int, currency: str, language: Language) -> str:
    """An amount with its currency: nb "1 250,00 kr", sv "1 250,00 kr", en "NOK 1,250.00", nb "12,50 EUR".

    Minor units per ISO 4217 (services/common/money.py), not CLDR's: ISK 0, KWD 3 decimals.
    """
    pattern = _money_pattern(language, check_currency(currency), True)
    text: str = pattern.apply(
        _decimal(minor, currency), _locale(language), currency=currency, currency_digits=False
    )
    return text.translate(_PLAIN)


def amount(minor: int, currency: str, language: Language) -> str:
    """An amount without its currency, for table columns whose heading names it: "1 250,00"."""
    pattern = _money_pattern(language, check_currency(currency), False)
    text: str = pattern.apply(_decimal(minor, currency), _locale(language), currency_digits=False)
    return text.translate(_PLAIN)


def short_date(value: date, language: Language) -> str:
    """nb "05.03.2025", sv "2025-03-05", en "5 Mar 2025"."""
    text: str = format_date(value, _DATE_FORMATS[language], locale=_locale(language))
    return text


def long_date(value: date, language: Language) -> str:
    """nb "5. mars 2025", sv "5 mars 2025", en "5 March 2025"."""
    text: str = format_date(value, "long", locale=_locale(language))
    return text.translate(_PLAIN)


def compact_date(value: date) -> str:
    """YYYYMMDD, as payment codes carry dates."""
    return value.strftime("%Y%m%d")


_QUANTITY = parse_pattern("#,##0.######")


def quantity(value: Decimal, language: Language) -> str:
    """A quantity with the decimals it has and no trailing zeros: "2", "1,5", "0,125", "1 200"."""
    if not value.is_finite():
        raise ValueError(f"quantity must be a finite number, got {value}")
    text: str = _QUANTITY.apply(value, _locale(language), decimal_quantization=False)
    return text.translate(_PLAIN)


_PERCENT: dict[Language, NumberPattern] = {
    "nb": parse_pattern("#,##0.## %"),
    "sv": parse_pattern("#,##0.## %"),
    "en": parse_pattern("#,##0.##%"),
}


def percent(rate: Decimal, language: Language) -> str:
    """A rate given in percent: nb "25 %", "11,11 %"; en "12.5%"."""
    text: str = _PERCENT[language].apply(rate / 100, _locale(language))
    return text.translate(_PLAIN)


def _digits(value: str) -> str:
    return "".join(char for char in value if char.isdigit())


def _groups_from_right(text: str, size: int) -> str:
    head = len(text) % size
    parts = [text[:head]] if head else []
    parts.extend(text[i : i + size] for i in range(head, len(text), size))
    return " ".join(parts)


def no_account(number: str) -> str:
    """A Norwegian account number as banks print it: "8601 11 17947" (4 + 2 + 5 digits)."""
    digits = _digits(number)
    if len(digits) != 11:
        return number.strip()
    return f"{digits[:4]} {digits[4:6]} {digits[6:]}"


def iban(value: str) -> str:
    """An IBAN in groups of four: "NO93 8601 1117 947"."""
    compact = "".join(value.split()).upper()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def bankgiro(number: str) -> str:
    """A bankgiro number: "123-4567" (7 digits) or "5050-1055" (8 digits)."""
    digits = _digits(number)
    if len(digits) not in (7, 8):
        return number.strip()
    return f"{digits[:-4]}-{digits[-4:]}"


def plusgiro(number: str) -> str:
    """A PlusGiro number: pairs from the right, the check digit apart: "4 77 47-4", "90 20 01-2"."""
    digits = _digits(number)
    if not 2 <= len(digits) <= 8:
        return number.strip()
    return f"{_groups_from_right(digits[:-1], 2)}-{digits[-1]}"


def payment_reference(reference: str) -> str:
    """A KID or OCR reference in groups of four from the left, as IBANs and RF references are written:
    "0001 0023 02". A MOD11 KID may end in "-", which stays with the last group."""
    compact = "".join(reference.split())
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def org_number(number: str, jurisdiction: str) -> str:
    """An organisation number: NO "974 760 673", SE "556677-8899"; anything else unchanged."""
    digits = _digits(number)
    if jurisdiction == "NO" and len(digits) == 9:
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    if jurisdiction == "SE" and len(digits) == 10:
        return f"{digits[:6]}-{digits[6:]}"
    return number.strip()


# --- A whole document as the strings its forms show ------------------------------------------------
# The PDF template, the HTML page and the e-mails read this, so every form says the same thing in the
# same words; the templates only lay it out.

MIN_DUNNING_DAYS = 14  # inkassoforskriften §1-2, inkassoloven §9: a deadline of at least 14 days


class DocumentError(ValueError):
    """A view that cannot be rendered as a lawful document (the text says what is wrong)."""


@dataclass(frozen=True)
class Pair:
    label: str
    value: str


@dataclass(frozen=True)
class TotalRow:
    label: str
    value: str
    # "strong": a total; "heading": a section title with no amount; "": an ordinary row.
    style: str = ""


@dataclass(frozen=True)
class Party:
    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class PaymentBox:
    amount: Pair
    due: Pair | None
    reference: Pair | None
    accounts: tuple[Pair, ...]
    note: str
    link: str
    link_label: str


@dataclass(frozen=True)
class CreditBox:
    text: str
    amount: Pair
    reason: Pair | None
    note: str


@dataclass(frozen=True)
class LineRow:
    number: str
    description: str
    quantity: str
    unit: str
    unit_price: str
    vat_rate: str
    amount: str


@dataclass(frozen=True)
class DunningBox:
    rows: tuple[TotalRow, ...]
    legal: str


@dataclass(frozen=True)
class QrBlock:
    kind: str
    svg: str
    caption: str


@dataclass(frozen=True)
class Presentation:
    language: Language
    kind: str
    title: str
    number: str
    # "Faktura 10023 - Fjordkraft AS", for the PDF's metadata and the page's <title>.
    document_name: str
    # The document's date, ISO 8601 (the PDF's creation date, so the same view gives the same bytes).
    date: str
    accent: str
    seller: Party
    # E-mail, phone, website (the address is in seller.lines).
    seller_contact: tuple[str, ...]
    seller_legal: tuple[str, ...]
    seller_footer: str
    buyer: Party
    facts: tuple[Pair, ...]
    payment: PaymentBox | None
    credit: CreditBox | None
    columns: LineRow
    lines: tuple[LineRow, ...]
    totals: tuple[TotalRow, ...]
    dunning: DunningBox | None
    qr: QrBlock | None
    page_label: str
    continued_label: str


_HOME = {"NO": "NOK", "SE": "SEK"}
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


def check_document(view: DocumentView) -> None:
    """What every rendered form relies on: a credit note names its invoice; a reminder or notice has its
    dunning facts and a deadline at least 14 days after it is sent. Else DocumentError."""
    if view.kind == "credit_note" and view.credits is None:
        raise DocumentError(f"credit note {view.number} does not name the invoice it credits")
    if view.kind in ("reminder", "collection_notice"):
        if view.dunning is None:
            raise DocumentError(f"{view.kind} for invoice {view.number} has no dunning facts")
        days = (view.dunning.deadline - view.issue_date).days
        if days < MIN_DUNNING_DAYS:
            raise DocumentError(
                f"{view.kind} for invoice {view.number}: the deadline {view.dunning.deadline} is {days} days "
                f"after sending ({view.issue_date}); at least {MIN_DUNNING_DAYS} are required"
            )
    if view.kind in ("invoice", "nudge") and view.due_date is None:
        raise DocumentError(f"{view.kind} for invoice {view.number} has no due date")


def document_title(view: DocumentView) -> str:
    language = view.language
    if view.kind == "reminder":
        stage = view.dunning.stage if view.dunning is not None else 1
        return (
            text("title.reminder", language)
            if stage <= 1
            else text("title.reminder_repeat", language, stage=stage)
        )
    if view.kind == "collection_notice":
        return text(f"title.collection_notice.{view.seller.jurisdiction}", language)
    return text(f"title.{view.kind}", language)


def payment_accounts(view: DocumentView) -> tuple[Pair, ...]:
    """Where to pay: the domestic account for the home currency, else IBAN and BIC."""
    seller, language = view.seller, view.language
    domestic: list[Pair] = []
    if seller.bank_account:
        domestic.append(Pair(text("label.account", language), no_account(seller.bank_account)))
    if seller.bankgiro:
        domestic.append(Pair(text("label.bankgiro", language), bankgiro(seller.bankgiro)))
    if seller.plusgiro:
        domestic.append(Pair(text("label.plusgiro", language), plusgiro(seller.plusgiro)))
    international: list[Pair] = []
    if seller.iban:
        international.append(Pair(text("label.iban", language), iban(seller.iban)))
        if seller.bic:
            international.append(Pair(text("label.bic", language), seller.bic.strip().upper()))
    if view.currency == _HOME.get(seller.jurisdiction) and domestic:
        return tuple(domestic)
    return tuple(international or domestic)


def payment_box(view: DocumentView) -> PaymentBox | None:
    """The amount, deadline, reference and account, or None for a credit note."""
    if view.kind == "credit_note":
        return None
    language = view.language
    # A nudge names the invoice's own due date; a reminder or notice its new deadline.
    due_label = "label.due_date" if view.kind in ("invoice", "nudge") else "label.deadline"
    reference = None
    if view.kid:
        reference = Pair(
            text(f"label.reference.{view.seller.jurisdiction}", language), payment_reference(view.kid)
        )
    return PaymentBox(
        amount=Pair(
            text("label.amount_to_pay", language), money(view.amount_due_minor, view.currency, language)
        ),
        due=Pair(text(due_label, language), short_date(view.due_date, language)) if view.due_date else None,
        reference=reference,
        accounts=payment_accounts(view),
        note=text("text.use_reference", language) if reference else "",
        link=view.payment_link,
        link_label=text("label.pay_online", language),
    )


def _address_lines(address: Address, language: Language, home_country: str) -> list[str]:
    lines = [line for line in address.lines if line.strip()]
    place = " ".join(part for part in (address.postal_code, address.city) if part)
    if place:
        lines.append(place)
    if address.country and address.country != home_country:
        lines.append(_locale(language).territories.get(address.country, address.country))
    return lines


def _seller_legal(view: DocumentView) -> tuple[str, ...]:
    seller, language = view.seller, view.language
    org = org_number(seller.org_number, seller.jurisdiction)
    lines: list[str] = []
    if seller.jurisdiction == "NO":
        suffix = " MVA" if seller.vat_id else ""
        lines.append(f"{text('label.org_number', language)} {org}{suffix}")
        if seller.in_enterprise_register:
            lines.append(text("legal.enterprise_register", language))
    else:
        lines.append(f"{text('label.org_number', language)} {org}")
        if seller.vat_id:
            lines.append(f"{text('label.vat_number', language)} {seller.vat_id}")
        if seller.f_tax_approved:
            lines.append(text("legal.f_tax", language))
    return tuple(lines)


def _facts(view: DocumentView) -> tuple[Pair, ...]:
    language = view.language
    facts: list[Pair] = []
    if view.kind == "credit_note":
        facts.append(Pair(text("label.credit_note_number", language), view.number))
        facts.append(Pair(text("label.credit_note_date", language), short_date(view.issue_date, language)))
    elif view.kind == "invoice":
        facts.append(Pair(text("label.invoice_number", language), view.number))
        facts.append(Pair(text("label.invoice_date", language), short_date(view.issue_date, language)))
        if view.due_date is not None:
            facts.append(Pair(text("label.due_date", language), short_date(view.due_date, language)))
    elif view.kind == "nudge":
        facts.append(Pair(text("label.invoice_number", language), view.number))
        facts.append(Pair(text("label.notice_date", language), short_date(view.issue_date, language)))
        if view.due_date is not None:
            facts.append(Pair(text("label.due_date", language), short_date(view.due_date, language)))
    else:
        facts.append(Pair(text("label.invoice_number", language), view.number))
        facts.append(Pair(text("label.notice_date", language), short_date(view.issue_date, language)))
        if view.due_date is not None:
            facts.append(Pair(text("label.deadline", language), short_date(view.due_date, language)))
    if view.buyer.customer_number:
        facts.append(Pair(text("label.customer_number", language), view.buyer.customer_number))
    for key, value in (
        ("label.buyer_reference", view.buyer_reference),
        ("label.order_reference", view.order_reference),
        ("label.contract_reference", view.contract_reference),
    ):
        if value:
            facts.append(Pair(text(key, language), value))
    return tuple(facts)


def _lines(view: DocumentView) -> tuple[LineRow, ...]:
    language, currency = view.language, view.currency
    return tuple(
        LineRow(
            number=str(line.number),
            description=line.description,
            quantity=quantity(line.quantity, language),
            unit=unit_name(line.unit_code, language),
            unit_price=amount(line.unit_price_minor, currency, language),
            vat_rate=percent(line.vat_rate, language),
            amount=amount(line.net_minor, currency, language),
        )
        for line in view.lines
    )


def _totals(view: DocumentView) -> tuple[TotalRow, ...]:
    language, currency = view.language, view.currency
    rows = [TotalRow(text("label.net_total", language), money(view.net_minor, currency, language))]
    for subtotal in view.vat:
        label = text(
            "label.vat_at",
            language,
            rate=percent(subtotal.rate, language),
            base=money(subtotal.taxable_minor, currency, language),
        )
        if subtotal.exemption_reason:
            label = f"{label} ({subtotal.exemption_reason})"
        rows.append(TotalRow(label, money(subtotal.vat_minor, currency, language)))
    gross_label = "label.credit_total" if view.kind == "credit_note" else "label.gross_total"
    settled = view.kind == "invoice" and (view.paid_minor or view.credited_minor)
    rows.append(
        TotalRow(
            text(gross_label, language),
            money(view.gross_minor, currency, language),
            "" if settled else "strong",
        )
    )
    if settled:
        if view.paid_minor:
            rows.append(TotalRow(text("label.paid", language), money(-view.paid_minor, currency, language)))
        if view.credited_minor:
            rows.append(
                TotalRow(text("label.credited", language), money(-view.credited_minor, currency, language))
            )
        rows.append(
            TotalRow(
                text("label.amount_to_pay", language),
                money(view.amount_due_minor, currency, language),
                "strong",
            )
        )
    return tuple(rows)


def _dunning(view: DocumentView) -> DunningBox | None:
    dunning = view.dunning
    if dunning is None or view.kind not in ("reminder", "collection_notice"):
        return None
    language, currency, jurisdiction = view.language, view.currency, view.seller.jurisdiction
    rows = [
        TotalRow(
            text(
                "label.original_invoice",
                language,
                number=view.number,
                issue_date=short_date(dunning.original_issue_date, language),
                due_date=short_date(dunning.original_due_date, language),
            ),
            money(dunning.original_gross_minor, currency, language),
        )
    ]
    if dunning.paid_minor:
        rows.append(TotalRow(text("label.paid", language), money(-dunning.paid_minor, currency, language)))
    if dunning.credited_minor:
        rows.append(
            TotalRow(text("label.credited", language), money(-dunning.credited_minor, currency, language))
        )
    claim = dunning.original_gross_minor - dunning.paid_minor - dunning.credited_minor
    rows.append(
        TotalRow(text("label.claim_outstanding", language), money(claim, currency, language), "strong")
    )
    if dunning.charges:
        rows.append(TotalRow(text("label.fees_and_interest", language), "", "heading"))
        for charge in dunning.charges:
            what = charge.description or text(f"label.{charge.kind}.{jurisdiction}", language)
            if charge.kind == "compensation":
                # The ledger's line carries the step's name; the debtor is owed the law's.
                what = text(f"label.compensation.{jurisdiction}", language)
            label = text(
                "label.charge_added", language, what=what, date=short_date(charge.added_on, language)
            )
            rows.append(TotalRow(label, money(charge.amount_minor, currency, language)))
    rows.append(
        TotalRow(
            text("label.total_due", language), money(view.amount_due_minor, currency, language), "strong"
        )
    )
    if dunning.interest_to_date_minor > 0:
        rows.append(
            TotalRow(
                text("label.interest_to_date", language, date=short_date(view.issue_date, language)),
                money(dunning.interest_to_date_minor, currency, language),
            )
        )
    return DunningBox(rows=tuple(rows), legal=dunning_legal(view))


def dunning_legal(view: DocumentView) -> str:
    """What the law asks a reminder or notice to say, in words (the PDF, the page and both e-mail
    bodies): the creditor's law's text, then the interest accrued to the notice's date and whether the
    amount to pay includes it (a reminder states what is owed: the claim, fees and interest, apart)."""
    dunning = view.dunning
    if dunning is None:
        raise DocumentError(f"{view.kind} for invoice {view.number} has no dunning facts")
    language, currency = view.language, view.currency
    legal_key = "legal.reminder" if view.kind == "reminder" else "legal.notice"
    legal = text(
        f"{legal_key}.{view.seller.jurisdiction}",
        language,
        number=view.number,
        due_date=long_date(dunning.original_due_date, language),
        amount=money(view.amount_due_minor, currency, language),
        deadline=long_date(dunning.deadline, language),
    )
    accrued = dunning.interest_to_date_minor
    if accrued <= 0:
        return legal
    charged = dunning.interest_minor
    how = "included" if charged >= accrued else ("partly" if charged > 0 else "extra")
    interest = text(
        f"text.interest_to_date.{how}",
        language,
        date=long_date(view.issue_date, language),
        amount=money(accrued, currency, language),
        charged=money(charged, currency, language),
    )
    return f"{legal} {interest}"


def _credit(view: DocumentView) -> CreditBox | None:
    if view.kind != "credit_note" or view.credits is None:
        return None
    language = view.language
    return CreditBox(
        text=text(
            "text.credits_invoice",
            language,
            number=view.credits.number,
            date=short_date(view.credits.issue_date, language),
        ),
        amount=Pair(text("label.credit_total", language), money(view.gross_minor, view.currency, language)),
        reason=Pair(text("label.reason", language), view.reason) if view.reason else None,
        note=text("text.credit_settlement", language),
    )


def _qr(view: DocumentView) -> QrBlock | None:
    code = payment_code(view)
    if code is None:
        return None
    return QrBlock(kind=code.kind, svg=qr_svg(code.payload), caption=text("label.scan_to_pay", view.language))


def present(view: DocumentView, *, with_qr: bool = True) -> Presentation:
    """The view as the strings every form of it shows (check_document first: DocumentError).
    with_qr=False leaves out the payment QR code, for forms that do not show it (e-mail)."""
    check_document(view)
    language, seller = view.language, view.seller
    title = document_title(view)
    contact: list[str] = []
    for label_key, value in (("label.email", seller.email), ("label.phone", seller.phone)):
        if value:
            contact.append(f"{text(label_key, language)} {value}")
    if seller.website:
        contact.append(seller.website)
    buyer_lines = _address_lines(view.buyer.address, language, seller.jurisdiction)
    if view.buyer.kind == "business" and view.buyer.org_number:
        buyer_org = org_number(view.buyer.org_number, view.buyer.address.country)
        buyer_lines.append(f"{text('label.org_number', language)} {buyer_org}")
    show_lines = view.kind in ("invoice", "credit_note")
    return Presentation(
        language=language,
        kind=view.kind,
        title=title,
        number=view.number,
        document_name=f"{title} {view.number} \u2013 {seller.legal_name}",
        date=view.issue_date.isoformat(),
        accent=seller.accent_colour if _HEX_COLOUR.fullmatch(seller.accent_colour) else "#1F4E79",
        seller=Party(seller.legal_name, tuple(_address_lines(seller.address, language, seller.jurisdiction))),
        seller_contact=tuple(contact),
        seller_legal=_seller_legal(view),
        seller_footer=seller.footer,
        buyer=Party(view.buyer.name, tuple(buyer_lines)),
        facts=_facts(view),
        payment=payment_box(view),
        credit=_credit(view),
        columns=LineRow(
            number=text("col.line", language),
            description=text("col.description", language),
            quantity=text("col.quantity", language),
            unit=text("col.unit", language),
            unit_price=text("col.unit_price", language),
            vat_rate=text("col.vat_rate", language),
            amount=text("col.amount_in", language, currency=view.currency),
        ),
        lines=_lines(view) if show_lines else (),
        totals=_totals(view) if show_lines else (),
        dunning=_dunning(view),
        qr=_qr(view) if with_qr else None,
        page_label=text("label.page", language),
        continued_label=text("label.continued", language),
    )
