"""PDFs read back as a customer's PDF reader would: who, what, how much, by when, to which account."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from pypdf import PdfReader
from pypdf.generic import StreamObject

from services.renderer.adapters.pdf import PdfRenderer
from services.renderer.domain.formatting import (
    DocumentError,
    money,
    payment_accounts,
    payment_reference,
    short_date,
)
from services.renderer.domain.model import DocumentView, Language
from tests.support.renderer_samples import long_invoice, no_collection_notice, samples

LANGUAGES: tuple[Language, ...] = ("nb", "sv", "en")
TITLES = {
    ("invoice", "nb"): "Faktura",
    ("invoice", "sv"): "Faktura",
    ("invoice", "en"): "Invoice",
    ("credit_note", "nb"): "Kreditnota",
    ("credit_note", "sv"): "Kreditfaktura",
    ("credit_note", "en"): "Credit note",
    ("reminder", "nb"): "Purring",
    ("reminder", "sv"): "Påminnelse",
    ("reminder", "en"): "Payment reminder",
    ("collection_notice", "nb"): "Inkassovarsel",
    ("collection_notice", "sv"): "Inkassovarsel",
    ("collection_notice", "en"): "Debt collection notice",
}


@pytest.fixture(scope="module")
def renderer() -> Iterator[PdfRenderer]:
    with PdfRenderer() as pdf:
        yield pdf


def pages_text(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    return [" ".join(page.extract_text().split()) for page in reader.pages]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(samples()))
def test_pdf_states_who_asks_for_what_and_how_to_pay(
    renderer: PdfRenderer, name: str, language: Language
) -> None:
    view: DocumentView = replace(samples()[name], language=language)
    text = " ".join(pages_text(renderer.render(view)))
    assert TITLES[(view.kind, language)] in text
    assert view.buyer.name in text
    assert view.seller.legal_name in text
    assert view.number in text
    if view.kind == "credit_note":
        assert money(view.gross_minor, view.currency, language) in text
        assert view.credits is not None
        assert view.credits.number in text
        return
    assert money(view.amount_due_minor, view.currency, language) in text
    assert view.due_date is not None
    assert short_date(view.due_date, language) in text
    assert payment_reference(view.kid) in text
    for account in payment_accounts(view):
        assert account.value in text


def test_reminder_shows_claim_payments_fees_interest_total_deadline_and_law(renderer: PdfRenderer) -> None:
    view = samples()["no_reminder"]
    assert view.dunning is not None
    text = " ".join(pages_text(renderer.render(view)))
    assert "Faktura 10024 av 14.03.2025, forfalt 28.03.2025" in text
    assert money(view.dunning.original_gross_minor, "NOK", "nb") in text
    assert f"Innbetalt {money(-view.dunning.paid_minor, 'NOK', 'nb')}" in text
    assert f"Purregebyr, lagt til 14.04.2025 {money(3500, 'NOK', 'nb')}" in text
    assert f"Forsinkelsesrente, lagt til 14.04.2025 {money(1127, 'NOK', 'nb')}" in text
    assert f"Totalt å betale {money(view.amount_due_minor, 'NOK', 'nb')}" in text
    assert "28.04.2025" in text
    assert "atskilt fra kravet" in text


def test_collection_notice_carries_the_words_of_inkassoloven_9(renderer: PdfRenderer) -> None:
    text = " ".join(pages_text(renderer.render(no_collection_notice())))
    assert "Inkassovarsel etter inkassoloven § 9" in text
    assert "minst 14 dager" in text
    assert "ytterligere kostnader" in text


def test_swedish_reminder_in_swedish(renderer: PdfRenderer) -> None:
    text = " ".join(pages_text(renderer.render(samples()["se_reminder"])))
    assert "Påminnelseavgift" in text
    assert "skilda från fordran" in text
    assert "60,00 kr" in text


def test_credit_note_names_the_invoice_it_credits(renderer: PdfRenderer) -> None:
    text = " ".join(pages_text(renderer.render(samples()["credit_note"])))
    assert "Krediterer faktura 10023 av 14.03.2025" in text
    assert "Kjøring var inkludert i fastprisen" in text
    assert "KID" not in text


def test_long_invoice_flows_onto_pages_with_repeated_header_and_page_numbers(renderer: PdfRenderer) -> None:
    view = long_invoice(60)
    pages = pages_text(renderer.render(view))
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"Side {number}/{len(pages)}" in page
        assert "Beskrivelse" in page  # the table's header, repeated
        assert "Beløp (NOK)" in page
    assert "Servicebesøk 01:" in pages[0]
    assert "Servicebesøk 60:" in pages[-1]
    assert "Faktura 10077 (fortsettelse)" in pages[-1]
    assert money(view.gross_minor, "NOK", "nb") in pages[-1]


def test_pdf_is_pdf_a_2b_with_title(renderer: PdfRenderer) -> None:
    content, standard = renderer.render_with_standard(samples()["se_invoice"])
    assert standard == "a-2b"
    reader = PdfReader(io.BytesIO(content))
    stream = reader.root_object["/Metadata"].get_object()
    assert isinstance(stream, StreamObject)
    metadata = stream.get_data().decode()
    assert re.search(r"pdfaid:part(>|=\")2", metadata)
    assert re.search(r"pdfaid:conformance(>|=\")B", metadata)
    assert reader.metadata is not None
    assert reader.metadata.title == "Faktura 20517 \u2013 Ström & Söner Bygg AB"


def test_same_view_gives_the_same_bytes(renderer: PdfRenderer) -> None:
    view = samples()["no_business_invoice"]
    assert renderer.render(view) == renderer.render(view)


def test_text_no_shipped_font_can_draw_gives_a_plain_pdf_not_an_error(renderer: PdfRenderer) -> None:
    view = samples()["no_consumer_invoice"]
    odd = replace(
        view, lines=(replace(view.lines[0], description="Levering 🚚 日本語 العربية"), *view.lines[1:])
    )
    content, standard = renderer.render_with_standard(odd)
    assert standard is None
    assert "Levering" in " ".join(pages_text(content))


def test_view_text_is_shown_never_evaluated(renderer: PdfRenderer) -> None:
    view = samples()["no_consumer_invoice"]
    markup = '#set page(fill: red) *bold* $x^2$ <script>alert(1)</script> ]"}'
    odd = replace(view, buyer=replace(view.buyer, name=markup))
    assert markup in " ".join(pages_text(renderer.render(odd)))


def test_png_and_svg_logos_render_and_a_broken_logo_is_left_out(renderer: PdfRenderer) -> None:
    se = samples()["se_invoice"]  # PNG logo
    no = samples()["no_business_invoice"]  # SVG logo
    assert se.seller.logo_media_type == "image/png"
    assert no.seller.logo_media_type == "image/svg+xml"
    for view in (se, no):
        assert renderer.render(view).startswith(b"%PDF-")
    broken = replace(no, seller=replace(no.seller, logo=b"\x89PNG not really", logo_media_type="image/png"))
    assert "Fjordline Energi AS" in " ".join(pages_text(renderer.render(broken)))


def test_unlawful_notice_is_refused(renderer: PdfRenderer) -> None:
    view = no_collection_notice()
    assert view.dunning is not None
    short = replace(view, dunning=replace(view.dunning, deadline=view.issue_date))
    with pytest.raises(DocumentError):
        renderer.render(short)


def test_one_renderer_serves_threads(renderer: PdfRenderer) -> None:
    views = list(samples().values())
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(renderer.render, views))
    for view, content in zip(views, results, strict=True):
        assert view.buyer.name in " ".join(pages_text(content))


def test_page_one_renders_as_an_image(renderer: PdfRenderer, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: `make setup` installs it")
    source = tmp_path / "invoice.pdf"
    source.write_bytes(renderer.render(samples()["no_business_invoice"]))
    subprocess.run(
        [pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "1", str(source), str(tmp_path / "page")], check=True
    )
    (image,) = tmp_path.glob("page*.png")
    assert image.read_bytes().startswith(b"\x89PNG")
    assert image.stat().st_size > 5_000
