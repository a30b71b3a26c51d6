"""A few realistic DocumentViews, one per kind of document the renderer must get right.

Totals follow from the lines as the ledger computes them (services.common.money); KIDs and OCR
references pass their check digits; account numbers, IBANs and bankgiros are valid.

    view = samples()["no_reminder"]
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from services.common.kid import KidScheme, generate_kid, ocr_reference
from services.common.money import invoice_totals, line_net_minor
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
    VatSubtotal,
)

ISSUED = date(2025, 3, 14)

LOGO_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 240 64" width="240" height="64">
<rect x="0" y="4" width="56" height="56" rx="10" fill="#0B5E7E"/>
<path d="M6 46 L22 24 L32 36 L40 28 L52 46 Z" fill="#ffffff"/>
<rect x="68" y="16" width="150" height="12" rx="3" fill="#0B5E7E"/>
<rect x="68" y="36" width="110" height="10" rx="3" fill="#7FB3C8"/>
</svg>"""


@lru_cache(maxsize=1)
def logo_png() -> bytes:
    """A 240 x 64 RGBA PNG: a green square with a white peak and two bars (drawn here, no image library)."""
    width, height = 240, 64
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            pixel = (0, 0, 0, 0)
            if x < 56 and 4 <= y < 60:
                pixel = (31, 122, 76, 255)
                if y > 44 - (x // 3) and y > (x // 2) + 10 and y < 52:
                    pixel = (255, 255, 255, 255)
            elif 68 <= x < 218 and 16 <= y < 28:
                pixel = (31, 122, 76, 255)
            elif 68 <= x < 178 and 36 <= y < 46:
                pixel = (150, 200, 170, 255)
            rows.extend(pixel)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def no_seller(*, logo: bool = True) -> Seller:
    return Seller(
        legal_name="Fjordline Energi AS",
        org_number="974760673",
        jurisdiction="NO",
        vat_id="NO974760673MVA",
        in_enterprise_register=True,
        f_tax_approved=False,
        address=Address(lines=("Strandkaien 12",), postal_code="5013", city="Bergen", country="NO"),
        email="faktura@fjordline-energi.no",
        phone="+47 55 00 12 34",
        website="https://fjordline-energi.no",
        bank_account="86011117947",
        iban="NO9386011117947",
        bic="DNBANOKKXXX",
        logo=LOGO_SVG if logo else b"",
        logo_media_type="image/svg+xml" if logo else "",
        accent_colour="#0B5E7E",
        footer="Kundeservice hverdager 08-16",
    )


def se_seller() -> Seller:
    return Seller(
        legal_name="Ström & Söner Bygg AB",
        org_number="5566778899",
        jurisdiction="SE",
        vat_id="SE556677889901",
        in_enterprise_register=False,
        f_tax_approved=True,
        address=Address(lines=("Östra Hamngatan 24",), postal_code="411 09", city="Göteborg", country="SE"),
        email="faktura@stromsoner.se",
        phone="+46 31 123 45 00",
        bankgiro="5050-1055",
        logo=logo_png(),
        logo_media_type="image/png",
        accent_colour="#1F7A4C",
    )


def no_business() -> Buyer:
    return Buyer(
        name="Bakeriet på Hjørnet AS",
        kind="business",
        customer_number="40817",
        address=Address(lines=("Kongens gate 12B",), postal_code="7011", city="Trondheim", country="NO"),
        org_number="923609016",
        email="regnskap@bakerietpahjornet.no",
    )


def no_consumer() -> Buyer:
    return Buyer(
        name="Kari Nordmann",
        kind="consumer",
        customer_number="118204",
        address=Address(
            lines=("Bjørnstjerne Bjørnsons gate 7",), postal_code="3044", city="Drammen", country="NO"
        ),
        email="kari.nordmann@example.no",
        phone="+4791234567",
    )


def line(
    number: int, description: str, quantity: str, unit_price_minor: int, rate: str, unit: str = "EA"
) -> Line:
    q = Decimal(quantity)
    return Line(
        number=number,
        description=description,
        quantity=q,
        unit_code=unit,
        unit_price_minor=unit_price_minor,
        net_minor=line_net_minor(q, unit_price_minor),
        vat_rate=Decimal(rate),
    )


def invoice(
    seller: Seller,
    buyer: Buyer,
    lines: tuple[Line, ...],
    *,
    number: str,
    language: Language,
    currency: str,
    kid: str,
    kind: DocumentKind = "invoice",
    issue_date: date = ISSUED,
    days: int = 14,
    **extra: object,
) -> DocumentView:
    totals = invoice_totals([(item.net_minor, item.vat_rate) for item in lines])
    vat = tuple(VatSubtotal("S", row.rate, row.taxable_minor, row.vat_minor) for row in totals.vat_breakdown)
    view = DocumentView(
        kind=kind,
        language=language,
        tenant_id="tenant-samples",
        invoice_id=f"inv-{number}",
        number=number,
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=days) if kind == "invoice" else None,
        currency=currency,
        seller=seller,
        buyer=buyer,
        lines=lines,
        vat=vat,
        net_minor=totals.net_minor,
        vat_minor=totals.vat_minor,
        gross_minor=totals.gross_minor,
        amount_due_minor=totals.gross_minor if kind == "invoice" else 0,
        kid=kid if kind == "invoice" else "",
        payment_link=f"https://pay.fordring.example/i/{number}-7fq2",
    )
    return replace(view, **extra)  # type: ignore[arg-type]


def no_business_invoice() -> DocumentView:
    lines = (
        line(1, "Strøm, fastpris mars (kWh)", "12480", 89, "25", "KWH"),
        line(2, "Nettleie, energiledd (kWh)", "12480", 31, "25", "KWH"),
        line(3, "Fastbeløp nettleie", "1", 41500, "25", "MON"),
        line(4, "Installasjon av ladeboks 22 kW", "1", 1849000, "25"),
        line(5, "Elektriker, montering", "6.5", 95000, "25", "HUR"),
        line(6, "Kjøring", "84", 550, "25", "KMT"),
        line(7, "Kantinemat til befaring", "12", 18900, "15"),
        line(8, "Personbefordring, ferge Bergen-Stord", "2", 45000, "12"),
    )
    return invoice(
        no_seller(),
        no_business(),
        lines,
        number="10023",
        language="nb",
        currency="NOK",
        kid=generate_kid(10023, length=10, scheme=KidScheme.MOD10),
        buyer_reference="Ingrid Solberg",
        order_reference="PO-2025-0311",
        contract_reference="Rammeavtale 2024/17",
    )


def no_consumer_invoice() -> DocumentView:
    lines = (
        line(1, "Strøm, spotpris mars (kWh)", "1184", 112, "25", "KWH"),
        line(2, "Påslag", "1184", 4, "25", "KWH"),
        line(3, "Fastbeløp", "1", 3900, "25", "MON"),
    )
    return invoice(
        no_seller(logo=False),
        no_consumer(),
        lines,
        number="10024",
        language="nb",
        currency="NOK",
        kid=generate_kid(10024, length=10, scheme=KidScheme.MOD10),
    )


def se_invoice() -> DocumentView:
    lines = (
        line(1, "Renovering badrum, arbete", "32", 62000, "25", "HUR"),
        line(2, "Kakel och fix", "18.5", 42900, "25", "MTK"),
        line(3, "Bortforsling av byggavfall", "1", 185000, "25"),
        line(4, "Fika till arbetslaget", "1", 24000, "12"),
        line(5, "Facklitteratur, handbok våtrum", "1", 39900, "6"),
    )
    return invoice(
        se_seller(),
        Buyer(
            name="Göteborgs Glas AB",
            kind="business",
            customer_number="7731",
            address=Address(lines=("Box 456",), postal_code="402 29", city="Göteborg", country="SE"),
            org_number="5560125790",
        ),
        lines,
        number="20517",
        language="sv",
        currency="SEK",
        kid=ocr_reference("20517"),
        days=30,
        buyer_reference="Lars Ek",
        order_reference="4500123987",
    )


def eur_invoice() -> DocumentView:
    lines = (
        line(1, "Consulting, grid integration study", "24", 14500, "0"),
        line(2, "Travel Bergen-Hamburg", "1", 68000, "0"),
    )
    view = invoice(
        no_seller(),
        Buyer(
            name="Hanse Netz GmbH",
            kind="business",
            customer_number="90112",
            address=Address(lines=("Überseeallee 10",), postal_code="20457", city="Hamburg", country="DE"),
            org_number="",
        ),
        lines,
        number="10031",
        language="en",
        currency="EUR",
        kid=generate_kid(10031, length=10, scheme=KidScheme.MOD10),
        days=30,
        buyer_reference="Jana Vogt",
    )
    vat = tuple(replace(row, category="AE", exemption_reason="Reverse charge") for row in view.vat)
    return replace(view, vat=vat, lines=tuple(replace(item, vat_category="AE") for item in view.lines))


def credit_note() -> DocumentView:
    lines = (line(1, "Kreditering: Kjøring, feilført", "84", 550, "25", "KMT"),)
    return invoice(
        no_seller(),
        no_business(),
        lines,
        number="K-2025-0042",
        language="nb",
        currency="NOK",
        kid="",
        kind="credit_note",
        issue_date=date(2025, 3, 20),
        credits=CreditedInvoice(number="10023", issue_date=ISSUED),
        reason="Kjøring var inkludert i fastprisen",
    )


def _dunning_view(
    original: DocumentView,
    *,
    kind: DocumentKind,
    stage: int,
    sent: date,
    paid: int,
    charges: tuple[Charge, ...],
) -> DocumentView:
    deadline = sent + timedelta(days=14)
    claim = original.gross_minor - paid
    return replace(
        original,
        kind=kind,
        issue_date=sent,
        due_date=deadline,
        amount_due_minor=claim + sum(c.amount_minor for c in charges),
        paid_minor=paid,
        dunning=Dunning(
            stage=stage,
            original_gross_minor=original.gross_minor,
            original_issue_date=original.issue_date,
            original_due_date=original.due_date or original.issue_date,
            paid_minor=paid,
            credited_minor=0,
            charges=charges,
            deadline=deadline,
        ),
    )


def no_reminder() -> DocumentView:
    original = no_consumer_invoice()
    sent = date(2025, 4, 14)
    return _dunning_view(
        original,
        kind="reminder",
        stage=1,
        sent=sent,
        paid=50000,
        charges=(
            Charge("fee", "", 3500, sent),
            Charge("interest", "", 1127, sent),
        ),
    )


def no_collection_notice() -> DocumentView:
    original = no_business_invoice()
    sent = date(2025, 5, 2)
    return _dunning_view(
        original,
        kind="collection_notice",
        stage=1,
        sent=sent,
        paid=0,
        charges=(
            Charge("fee", "", 3500, date(2025, 4, 14)),
            Charge("fee", "Gebyr for inkassovarsel", 3500, sent),
            Charge("interest", "", 48210, sent),
        ),
    )


def se_reminder() -> DocumentView:
    original = se_invoice()
    sent = date(2025, 5, 5)
    return _dunning_view(
        original,
        kind="reminder",
        stage=1,
        sent=sent,
        paid=0,
        charges=(Charge("fee", "", 6000, sent),),
    )


def long_invoice(count: int = 60) -> DocumentView:
    lines = tuple(
        line(
            i,
            f"Servicebesøk {i:02d}: kontroll av målepunkt og sikringsskap",
            str(1 + i % 3),
            49000 + i * 100,
            "25",
        )
        for i in range(1, count + 1)
    )
    return invoice(
        no_seller(),
        no_business(),
        lines,
        number="10077",
        language="nb",
        currency="NOK",
        kid=generate_kid(10077, length=10, scheme=KidScheme.MOD10),
        order_reference="PO-2025-0400",
    )


def samples() -> dict[str, DocumentView]:
    """Every sample by name."""
    return {
        "no_business_invoice": no_business_invoice(),
        "no_consumer_invoice": no_consumer_invoice(),
        "se_invoice": se_invoice(),
        "eur_invoice": eur_invoice(),
        "credit_note": credit_note(),
        "no_reminder": no_reminder(),
        "no_collection_notice": no_collection_notice(),
        "se_reminder": se_reminder(),
        "long_invoice": long_invoice(),
    }
