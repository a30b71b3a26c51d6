"""EHF for 320 generated documents: every one passes the in-process validator and the official
`../shared/peppol/validate` command with no fatal finding, and states the view's amounts exactly."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from services.common.money import CURRENCY_EXPONENTS
from services.renderer.adapters.ehf import render_ehf
from services.renderer.adapters.peppol import PeppolValidator
from services.renderer.domain.model import DocumentView
from tests.support.renderer_views import varied_views

ROOT = Path(__file__).resolve().parents[3]
OFFICIAL = ROOT.parent / "shared" / "peppol" / "validate"
COUNT = 320
PDF = b"%PDF-1.4\n% a small stand-in for the rendered invoice \xe2\x82\xac\n%%EOF\n"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
# Allowed warnings: a Norwegian seller outside Foretaksregisteret (a sole proprietorship) does not
# state it, which NO-R-002 reminds of.
EXPECTED_WARNINGS = {"NO-R-002"}


@dataclass(frozen=True)
class Rendered:
    view: DocumentView
    with_pdf: bool
    xml: bytes


@pytest.fixture(scope="module")
def rendered() -> list[Rendered]:
    views = varied_views(COUNT, seed=20250314)
    return [Rendered(v, i % 2 == 1, render_ehf(v, pdf=PDF if i % 2 else None)) for i, v in enumerate(views)]


def test_the_generated_set_covers_what_ehf_must_handle(rendered: list[Rendered]) -> None:
    views = [r.view for r in rendered]
    lines = [line for v in views for line in v.lines]
    categories = Counter(line.vat_category for line in lines)
    assert {"S", "Z", "E", "AE", "O", "G"} <= set(categories)
    no_rates = {line.vat_rate for v in views if v.seller.jurisdiction == "NO" for line in v.lines}
    se_rates = {line.vat_rate for v in views if v.seller.jurisdiction == "SE" for line in v.lines}
    assert {Decimal(25), Decimal(15), Decimal(12), Decimal(0)} <= no_rates
    assert {Decimal(25), Decimal(12), Decimal(6), Decimal(0)} <= se_rates
    assert any(line.vat_category == "E" and line.vat_exemption_reason for line in lines)
    foreign_for_no = {v.currency for v in views if v.seller.jurisdiction == "NO"} - {"NOK"}
    assert {"EUR", "USD", "SEK", "JPY"} <= foreign_for_no
    assert {Decimal("0.5"), Decimal("3.333")} <= {line.quantity for line in lines}
    assert any(line.unit_price_minor < 0 for line in lines)
    texts = " ".join(line.description for line in lines)
    for fragment in ("<", "&", '"', "'", "🚚", "ø", "å", "ö", "ä", "]]>"):
        assert fragment in texts
    assert max(len(line.description) for line in lines) > 1000
    kinds = Counter(v.kind for v in views)
    assert kinds["credit_note"] >= 40
    assert kinds["invoice"] >= 200
    assert all(v.credits is not None for v in views if v.kind == "credit_note")
    assert any(v.seller.bankgiro for v in views)
    assert any(v.seller.plusgiro for v in views)
    assert any(v.seller.iban and not v.seller.bank_account and not v.seller.bankgiro for v in views)
    assert any(v.paid_minor for v in views)
    assert any(not v.seller.in_enterprise_register for v in views if v.seller.jurisdiction == "NO")
    assert any(not v.seller.f_tax_approved for v in views if v.seller.jurisdiction == "SE")
    assert any(not v.buyer_reference and v.order_reference for v in views)
    assert any(not v.buyer_reference and not v.order_reference for v in views)
    assert Counter(r.with_pdf for r in rendered) == {True: COUNT // 2, False: COUNT // 2}


def test_every_generated_document_passes_the_in_process_validator(
    rendered: list[Rendered], peppol_validator: PeppolValidator
) -> None:
    failures = []
    warnings: Counter[str] = Counter()
    for r in rendered:
        report = peppol_validator.validate(r.xml)
        if not report.valid:
            failures.append(f"{r.view.number} ({r.view.kind}, {r.view.currency}): {report.summary()}")
        warnings.update(f.rule for f in report.warnings)
    assert not failures, "\n".join(failures[:10])
    assert set(warnings) <= EXPECTED_WARNINGS, warnings


def test_every_generated_document_passes_the_official_validator(
    rendered: list[Rendered], peppol_validator: PeppolValidator, tmp_path: Path
) -> None:
    if not OFFICIAL.exists():
        pytest.skip(f"the official validator is not here ({OFFICIAL})")
    files = []
    for r in rendered:
        path = tmp_path / f"{r.view.kind}-{r.view.number}.xml"
        path.write_bytes(r.xml)
        files.append(path)
    done = subprocess.run(
        [str(OFFICIAL), "--json", *map(str, files)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    results: dict[str, list[dict[str, str]]] = json.loads(done.stdout)
    fatal = {path: [f for f in found if f["flag"] == "fatal"] for path, found in results.items()}
    assert not any(fatal.values()), {path: found for path, found in fatal.items() if found}
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(results) == COUNT
    # The same verdict, rule for rule, as the in-process validator.
    for r, path in zip(rendered, files, strict=True):
        official = sorted((f["id"], f["flag"]) for f in results[str(path)])
        ours = sorted((f.rule, f.flag) for f in peppol_validator.findings(r.xml))
        assert ours == official, path.name


def _minor(element: etree._Element, path: str, currency: str) -> int:
    node = element.find(path, NS)
    assert node is not None, path
    assert node.get("currencyID") == currency, path
    text = node.text or ""
    exponent = CURRENCY_EXPONENTS[currency]
    decimals = text.partition(".")[2]
    assert len(decimals) == exponent, (path, text)  # the currency's own decimals, always
    return int(Decimal(text).scaleb(exponent))


def test_amounts_and_vat_in_the_xml_are_the_views(rendered: list[Rendered]) -> None:
    for r in rendered:
        view, doc = r.view, etree.fromstring(r.xml)
        currency = view.currency
        assert doc.findtext("cbc:DocumentCurrencyCode", namespaces=NS) == currency
        totals = "cac:LegalMonetaryTotal/cbc:"
        assert _minor(doc, totals + "LineExtensionAmount", currency) == view.net_minor
        assert _minor(doc, totals + "TaxExclusiveAmount", currency) == view.net_minor
        assert _minor(doc, totals + "TaxInclusiveAmount", currency) == view.gross_minor
        paid = view.paid_minor if view.kind == "invoice" else 0
        assert _minor(doc, totals + "PayableAmount", currency) == view.gross_minor - paid
        if paid:
            assert _minor(doc, totals + "PrepaidAmount", currency) == paid
        else:
            assert doc.find(totals + "PrepaidAmount", NS) is None
        assert _minor(doc, "cac:TaxTotal/cbc:TaxAmount", currency) == view.vat_minor
        subtotals = doc.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
        assert len(subtotals) == len(view.vat)
        for element, row in zip(subtotals, view.vat, strict=True):
            assert _minor(element, "cbc:TaxableAmount", currency) == row.taxable_minor
            assert _minor(element, "cbc:TaxAmount", currency) == row.vat_minor
            assert element.findtext("cac:TaxCategory/cbc:ID", namespaces=NS) == row.category
            percent = element.findtext("cac:TaxCategory/cbc:Percent", namespaces=NS)
            assert (percent is None) if row.category == "O" else Decimal(percent or "x") == row.rate
        line_tag = "cac:InvoiceLine" if view.kind == "invoice" else "cac:CreditNoteLine"
        lines = doc.findall(line_tag, NS)
        assert [_minor(e, "cbc:LineExtensionAmount", currency) for e in lines] == [
            line.net_minor for line in view.lines
        ]
        assert sum(line.net_minor for line in view.lines) == view.net_minor
        assert sum(row.vat_minor for row in view.vat) == view.vat_minor
        assert view.net_minor + view.vat_minor == view.gross_minor
