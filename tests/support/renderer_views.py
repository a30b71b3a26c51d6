"""Varied, consistent DocumentViews for renderer tests and benches (PDF, HTML, EHF, e-mail, SMS).

Norwegian and Swedish sellers (enterprise register or not, F-skatt or not, bank account, IBAN only,
bankgiro, plusgiro), business and consumer buyers, VAT categories S/Z/E/AE/G/O at the national rates,
foreign currencies (JPY with no decimals), fractional quantities, long and special-character texts,
credit notes, prepaid amounts. Totals are computed as the ledger does: line net = quantity x unit
price rounded half up; VAT per category and rate from the summed taxable amount (EN 16931 BR-CO-17,
services.common.money.invoice_totals). Deterministic for a seed.

    views = varied_views(300, seed=7)          # invoices and credit notes that can go out as EHF
    view = make_view("invoice", norwegian_seller(rng), business_buyer(rng, "NO"), [make_line(...)])
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from services.common.kid import KidScheme, generate_kid, ocr_reference
from services.common.money import CURRENCY_EXPONENTS, invoice_totals, line_net_minor
from services.renderer.domain.model import (
    Address,
    Buyer,
    CreditedInvoice,
    DocumentKind,
    DocumentView,
    Language,
    Line,
    Seller,
    VatCategory,
    VatSubtotal,
)

NO_RATES = (Decimal(25), Decimal(15), Decimal(12))
SE_RATES = (Decimal(25), Decimal(12), Decimal(6))
ZERO = Decimal(0)
QUANTITIES = tuple(Decimal(q) for q in ("1", "2", "0.5", "3.333", "12", "0.25", "7.5", "1000", "1.125"))
MIXED_CATEGORIES: tuple[VatCategory, ...] = ("S", "S", "Z", "E")
NO_LANGUAGES: tuple[Language, ...] = ("nb", "en")
SE_LANGUAGES: tuple[Language, ...] = ("sv", "en")
UNIT_CODES = ("EA", "HUR", "KGM", "MTR", "LTR", "DAY", "MON", "C62", "H87", "XPP", "SET", "MIN")

PLAIN_DESCRIPTIONS = (
    "Konsulenttimer",
    "Lisens, årsabonnement",
    "Frakt",
    "Support (Gold)",
    "Konsulttimmar",
    "Hyra av lokal",
    "Installation",
    "Kaffe og wienerbrød",
)
SPECIAL_DESCRIPTIONS = (
    "Bolts < 5 mm & nuts > 3 mm",
    "Kabel \"Cat6\" 10 m, 'skjermet'",
    'R&D <consulting> & "design" ]]> done',
    "Rødgrøt med fløte, blåbærsyltetøy og smør",
    "Smörgåstårta för 12 personer, räksallad",
    "Ærfugldun, Øl, Åbningsgebyr: æøå ÆØÅ äöü ÄÖÜ",
    "Levering 🚚 og montering 🔧 (emoji 👍🏽)",
    "Line one of the text\nline two: details\n\tindented third",
    "Price 100 % & VAT 25 %; a<b, c>d, e&f",
    "Ελληνικά, русский, 日本語, العربية",
    "  spaces around  ",
)
LONG_WORDS = (
    "Vedlikehold av programvare i henhold til avtale, inkludert oppdateringer, feilrettinger,"
    " brukerstøtte på telefon og e-post i arbeidstiden, samt overvåking av tjenesten døgnet rundt."
)
NO_NAMES = ("Fjord Regnskap AS", "Smørbukk & Søn AS", "Nordlys Konsult ASA", "Bjørnstad Bygg NUF")
NO_SOLE_NAMES = ("Hansen Rørlegger", "Åse Ødegård Design")
SE_NAMES = ("Åkesson <Bygg> AB", "Lindqvist & Co Handelsbolag", "Ström Konsult AB", 'Kafé "Blåbär" AB')
BUYER_NAMES = (
    "Kunde AS",
    "Bakeriet på Hjørnet AS",
    "Tromsø Tre & Tak AS",
    "Göteborgs Glas AB",
    'Malmö "Mat" <Grossist> AB',
    "Ølbryggeriet 🍺 AS",
)
REASONS_E = (
    "Fritatt etter merverdiavgiftsloven § 3-2 (helsetjenester)",
    "Undantag enligt 3 kap. 4 § mervärdesskattelagen (sjukvård)",
    "Exempt financial services",
)


def no_org_number(rng: random.Random) -> str:
    """A Norwegian organisation number that passes MOD11 (first digit 8 or 9, as Enhetsregisteret gives)."""
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    while True:
        body = rng.choice("89") + "".join(rng.choice("0123456789") for _ in range(7))
        check = 11 - sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11
        if check == 11:
            return body + "0"
        if check != 10:
            return body + str(check)


def _luhn(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def se_org_number(rng: random.Random) -> str:
    """A Swedish organisation number (10 digits, Luhn; 55xxxxxxxx is an aktiebolag)."""
    body = "55" + rng.choice("6789") + "".join(rng.choice("0123456789") for _ in range(6))
    return body + _luhn(body)


def _no_address(rng: random.Random, lines: int | None = None) -> Address:
    streets = ("Storgata 1", "Kongens gate 12B", "Bryggen 5", "Postboks 123 Sentrum", "c/o Ærlig & Ås")
    count = rng.randint(0, 3) if lines is None else lines
    return Address(
        lines=tuple(rng.sample(streets, count)),
        postal_code=f"{rng.randint(1, 9999):04d}",
        city=rng.choice(("Oslo", "Bergen", "Tromsø", "Ålesund", "Bodø")),
        country="NO",
    )


def _se_address(rng: random.Random, lines: int | None = None) -> Address:
    streets = ("Drottninggatan 3", "Storgatan 14 lgh 1102", "Box 456", "Östra Hamngatan 24")
    count = rng.randint(0, 3) if lines is None else lines
    return Address(
        lines=tuple(rng.sample(streets, count)),
        postal_code=f"{rng.randint(100, 999)} {rng.randint(10, 99)}",
        city=rng.choice(("Stockholm", "Göteborg", "Malmö", "Umeå", "Västerås")),
        country="SE",
    )


def norwegian_seller(
    rng: random.Random,
    *,
    in_register: bool = True,
    vat_registered: bool = True,
    payment: str = "account",
) -> Seller:
    """payment: "account" (11-digit account), "iban" (IBAN and BIC only), "both", "none"."""
    org = no_org_number(rng)
    name = rng.choice(NO_NAMES if in_register else NO_SOLE_NAMES)
    account = "".join(rng.choice("0123456789") for _ in range(11))
    return Seller(
        legal_name=name,
        org_number=org,
        jurisdiction="NO",
        vat_id=f"NO{org}MVA" if vat_registered else "",
        in_enterprise_register=in_register,
        f_tax_approved=False,
        address=_no_address(rng, lines=rng.randint(1, 2)),
        email=rng.choice(("", "faktura@example.no")),
        phone=rng.choice(("", "+47 22 00 00 00")),
        website="https://example.no",
        bank_account=account if payment in ("account", "both") else "",
        iban=f"NO93{account}" if payment in ("iban", "both") else "",
        bic="DNBANOKKXXX" if payment in ("iban", "both") else "",
    )


def swedish_seller(
    rng: random.Random, *, f_tax_approved: bool = True, vat_registered: bool = True, payment: str = "bankgiro"
) -> Seller:
    """payment: "bankgiro" (7-8 digits, written with a hyphen), "plusgiro", "iban", "none"."""
    org = se_org_number(rng)
    return Seller(
        legal_name=rng.choice(SE_NAMES),
        org_number=org,
        jurisdiction="SE",
        vat_id=f"SE{org}01" if vat_registered else "",
        in_enterprise_register=False,
        f_tax_approved=f_tax_approved,
        address=_se_address(rng, lines=rng.randint(1, 2)),
        email=rng.choice(("", "faktura@example.se")),
        phone=rng.choice(("", "+46 8 123 456 00")),
        bankgiro=f"{rng.randint(100, 9999)}-{rng.randint(1000, 9999)}" if payment == "bankgiro" else "",
        plusgiro=f"{rng.randint(10000, 999999)}-{rng.randint(0, 9)}" if payment == "plusgiro" else "",
        iban="SE4550000000058398257466" if payment == "iban" else "",
        bic="ESSESESS" if payment == "iban" else "",
    )


def business_buyer(rng: random.Random, country: str = "NO") -> Buyer:
    return Buyer(
        name=rng.choice(BUYER_NAMES),
        kind="business",
        customer_number=str(rng.randint(1000, 999999)),
        address=_no_address(rng) if country == "NO" else _se_address(rng),
        org_number=no_org_number(rng) if country == "NO" else se_org_number(rng),
        email=rng.choice(("", "ap@kunde.example")),
        phone=rng.choice(("", "+47 400 00 000")),
    )


def consumer_buyer(rng: random.Random, country: str = "NO") -> Buyer:
    return Buyer(
        name=rng.choice(("Kari Nordmann", "Sven Svensson", "Ola Ødegård")),
        kind="consumer",
        customer_number=str(rng.randint(1000, 999999)),
        address=_no_address(rng, lines=1) if country == "NO" else _se_address(rng, lines=1),
        email="kari@example.no",
    )


def make_line(
    number: int,
    description: str,
    quantity: Decimal,
    unit_price_minor: int,
    *,
    rate: Decimal,
    category: VatCategory = "S",
    exemption_reason: str = "",
    unit_code: str = "EA",
) -> Line:
    return Line(
        number=number,
        description=description,
        quantity=quantity,
        unit_code=unit_code,
        unit_price_minor=unit_price_minor,
        net_minor=line_net_minor(quantity, unit_price_minor),
        vat_rate=rate,
        vat_category=category,
        vat_exemption_reason=exemption_reason,
    )


def vat_breakdown(lines: Sequence[Line]) -> tuple[VatSubtotal, ...]:
    """One subtotal per VAT category and rate, VAT rounded once per subtotal (BR-CO-17)."""
    by_category: dict[VatCategory, list[Line]] = {}
    for line in lines:
        by_category.setdefault(line.vat_category, []).append(line)
    subtotals: list[VatSubtotal] = []
    for category, members in by_category.items():
        totals = invoice_totals([(line.net_minor, line.vat_rate) for line in members])
        reason = next((line.vat_exemption_reason for line in members if line.vat_exemption_reason), "")
        subtotals.extend(
            VatSubtotal(
                category=category,
                rate=row.rate,
                taxable_minor=row.taxable_minor,
                vat_minor=row.vat_minor,
                exemption_reason=reason,
            )
            for row in totals.vat_breakdown
        )
    return tuple(subtotals)


def make_view(
    kind: DocumentKind,
    seller: Seller,
    buyer: Buyer,
    lines: Sequence[Line],
    *,
    currency: str | None = None,
    number: str = "10001",
    issue_date: date = date(2025, 3, 14),
    payment_days: int = 14,
    language: Language | None = None,
    buyer_reference: str = "",
    order_reference: str = "",
    contract_reference: str = "",
    paid_minor: int = 0,
    credits: CreditedInvoice | None = None,
    reason: str = "",
    kid: str | None = None,
) -> DocumentView:
    """A view whose totals follow from its lines (credit notes: amounts credited, all positive)."""
    vat = vat_breakdown(lines)
    net = sum(line.net_minor for line in lines)
    vat_total = sum(row.vat_minor for row in vat)
    gross = net + vat_total
    is_invoice = kind == "invoice"
    if kid is None:
        kid = (
            generate_kid(int(number) if number.isdigit() else 1, length=10, scheme=KidScheme.MOD10)
            if seller.jurisdiction == "NO"
            else ocr_reference(number if number.isdigit() else "1")
        )
    return DocumentView(
        kind=kind,
        language=language or ("nb" if seller.jurisdiction == "NO" else "sv"),
        tenant_id="tenant-test",
        invoice_id=f"inv-{number}",
        number=number,
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=payment_days) if is_invoice else None,
        currency=currency or ("NOK" if seller.jurisdiction == "NO" else "SEK"),
        seller=seller,
        buyer=buyer,
        lines=tuple(lines),
        vat=vat,
        net_minor=net,
        vat_minor=vat_total,
        gross_minor=gross,
        amount_due_minor=gross - paid_minor if is_invoice else 0,
        kid=kid if is_invoice else "",
        payment_link=f"https://pay.example/i/{number}",
        buyer_reference=buyer_reference,
        order_reference=order_reference,
        contract_reference=contract_reference,
        paid_minor=paid_minor,
        credits=credits,
        reason=reason,
    )


def _description(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(SPECIAL_DESCRIPTIONS)
    if roll < 0.45:
        return " ".join([LONG_WORDS] * rng.randint(3, 12))  # 550-2,200 characters
    return rng.choice(PLAIN_DESCRIPTIONS)


def _price(rng: random.Random, exponent: int, *, free: bool = True) -> int:
    major: int = rng.choice((0, 1, 9, 49, 125, 999, 1500, 24990, 150000) if free else (1, 49, 999, 24990))
    scale: int = 10**exponent
    return major * scale + rng.randint(0, scale - 1)


def _lines_for(rng: random.Random, scenario: str, rates: Sequence[Decimal], exponent: int) -> list[Line]:
    specs: list[tuple[VatCategory, Decimal, str]] = []
    count = rng.randint(1, 6)
    for _ in range(count):
        if scenario == "standard":
            specs.append(("S", rng.choice(rates), ""))
        elif scenario == "mixed":
            category = rng.choice(MIXED_CATEGORIES)
            if category == "S":
                specs.append(("S", rng.choice(rates), ""))
            else:
                specs.append((category, ZERO, rng.choice(REASONS_E) if category == "E" else ""))
        elif scenario == "reverse_charge":
            specs.append(("AE", ZERO, rng.choice(("", "Omvendt avgiftsplikt", "Reverse charge"))))
        elif scenario == "outside_scope":
            specs.append(("O", ZERO, rng.choice(("", "Utenfor merverdiavgiftsloven"))))
        elif scenario == "export":
            specs.append(("G", ZERO, rng.choice(("", "Export outside the EU"))))
        else:
            raise ValueError(f"unknown scenario {scenario}")
    lines = [
        make_line(
            number,
            _description(rng),
            rng.choice(QUANTITIES),
            _price(rng, exponent, free=number > 1),
            rate=rate,
            category=category,
            exemption_reason=reason,
            unit_code=rng.choice(UNIT_CODES),
        )
        for number, (category, rate, reason) in enumerate(specs, start=1)
    ]
    if scenario in ("standard", "mixed") and lines[0].net_minor >= 10 and rng.random() < 0.15:
        # A discount line as an ERP sends it: a negative unit price.
        first = lines[0]
        discount = -max(1, first.net_minor // 10)
        lines.append(
            make_line(
                len(lines) + 1,
                "Rabatt 10 %",
                Decimal(1),
                discount,
                rate=first.vat_rate,
                category=first.vat_category,
                exemption_reason=first.vat_exemption_reason,
            )
        )
    return lines


def varied_views(count: int, *, seed: int = 0) -> list[DocumentView]:
    """count invoices and credit notes to business buyers in Norway or Sweden, all EHF-ready."""
    rng = random.Random(seed)
    return [_varied_view(rng, index) for index in range(count)]


def _varied_view(rng: random.Random, index: int) -> DocumentView:
    norwegian = rng.random() < 0.6
    scenario = rng.choices(
        ("standard", "mixed", "reverse_charge", "outside_scope", "export"), weights=(50, 25, 10, 10, 5)
    )[0]
    vat_registered = scenario != "outside_scope" or rng.random() < 0.5
    if norwegian:
        seller = norwegian_seller(
            rng,
            in_register=rng.random() < 0.8,
            vat_registered=vat_registered,
            payment=rng.choice(("account", "account", "iban", "both")),
        )
        currency = rng.choices(("NOK", "EUR", "USD", "SEK", "JPY"), weights=(70, 10, 8, 8, 4))[0]
        rates = NO_RATES
    else:
        seller = swedish_seller(
            rng,
            f_tax_approved=rng.random() < 0.8,
            vat_registered=vat_registered,
            payment=rng.choice(("bankgiro", "bankgiro", "plusgiro", "iban")),
        )
        currency = rng.choices(("SEK", "EUR", "NOK"), weights=(80, 12, 8))[0]
        rates = SE_RATES
    buyer = business_buyer(
        rng, rng.choice(("NO", "NO", "SE")) if norwegian else rng.choice(("SE", "SE", "NO"))
    )
    exponent = CURRENCY_EXPONENTS[currency]
    lines = _lines_for(rng, scenario, rates, exponent)
    number = str(10000 + index)
    issue = date(2024, 1, 1) + timedelta(days=rng.randint(0, 1000))
    references = rng.choice(("buyer", "order", "both", "none", "all"))
    kind: DocumentKind = "credit_note" if rng.random() < 0.25 else "invoice"
    view = make_view(
        kind,
        seller,
        buyer,
        lines,
        currency=currency,
        number=number,
        issue_date=issue,
        payment_days=rng.choice((10, 14, 30)),
        language=rng.choice(NO_LANGUAGES if norwegian else SE_LANGUAGES),
        buyer_reference=rng.choice(("3150bdn", "Avd. Økonomi & <Innkjøp>", "Ref: Åsa"))
        if references in ("buyer", "both", "all")
        else "",
        order_reference=f"PO-{rng.randint(1, 99999)}" if references in ("order", "both", "all") else "",
        contract_reference=f"K-{rng.randint(1, 999)}/2024" if references == "all" else "",
        credits=CreditedInvoice(number=str(9000 + index), issue_date=issue - timedelta(days=20))
        if kind == "credit_note"
        else None,
        reason=rng.choice(("Feil antall levert", "Reklamation: skadad vara", "Price correction <5 %>"))
        if kind == "credit_note"
        else "",
    )
    if kind == "invoice" and view.gross_minor > 0 and rng.random() < 0.15:
        paid = rng.randint(1, view.gross_minor)
        view = replace(view, paid_minor=paid, amount_due_minor=view.gross_minor - paid)
    return view
