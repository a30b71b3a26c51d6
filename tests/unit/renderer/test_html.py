"""The invoice page and the e-mail's HTML: the same facts as the PDF, everything escaped, nothing fetched."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from services.renderer.adapters.html import render_email_html, render_page
from services.renderer.domain.formatting import DocumentError, money, payment_accounts, payment_reference
from services.renderer.domain.model import DocumentView, Language
from tests.support.renderer_samples import credit_note, no_collection_notice, samples

LANGUAGES: tuple[Language, ...] = ("nb", "sv", "en")
EVIL = '<script>alert("x")</script><img src="https://evil.example/p.gif"> & "quotes"'


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    elements = Elements()
    elements.feed(html)
    return elements


def visible(html: str) -> str:
    return " ".join(" ".join(parse(html).text).split())


def assert_fetches_nothing(html: str) -> None:
    for tag, attrs in parse(html).tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "base", "form"), tag
        source = attrs.get("src")
        assert source is None or source.startswith("data:"), (tag, source)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    assert "url(" not in html
    assert "@import" not in html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(samples()))
def test_page_states_amount_deadline_reference_and_account(name: str, language: Language) -> None:
    view: DocumentView = replace(samples()[name], language=language)
    html = render_page(view)
    text = visible(html)
    assert view.buyer.name in text
    assert view.number in text
    if view.kind == "credit_note":
        assert money(view.gross_minor, view.currency, language) in text
        return
    assert money(view.amount_due_minor, view.currency, language) in text
    assert payment_reference(view.kid) in text
    for account in payment_accounts(view):
        assert account.value in text
    assert_fetches_nothing(html)


def test_page_forbids_every_request_and_shows_the_logo_inline() -> None:
    html = render_page(samples()["se_invoice"])
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html
    images = [attrs for tag, attrs in parse(html).tags if tag == "img"]
    assert len(images) == 1
    assert str(images[0]["src"]).startswith("data:image/png;base64,")
    assert "<svg" in html  # the QR code, inline


def test_page_escapes_everything_from_the_view() -> None:
    view = samples()["no_business_invoice"]
    evil_line = replace(view.lines[0], description=EVIL)
    evil = replace(
        view,
        buyer=replace(view.buyer, name=EVIL),
        seller=replace(view.seller, footer=EVIL, legal_name=EVIL),
        lines=(evil_line, *view.lines[1:]),
        order_reference=EVIL,
    )
    html = render_page(evil)
    assert_fetches_nothing(html)
    assert "<script>" not in html
    assert visible(html).count(EVIL) >= 4


def test_email_html_carries_amount_deadline_and_a_button_to_the_page() -> None:
    view = samples()["no_business_invoice"]
    html = render_email_html(view)
    text = visible(html)
    assert money(view.amount_due_minor, "NOK", "nb") in text
    assert "28. mars 2025" in text
    assert payment_reference(view.kid) in text
    links = [attrs.get("href") for tag, attrs in parse(html).tags if tag == "a"]
    assert links == [view.payment_link]
    assert_fetches_nothing(html)


def test_email_html_of_a_notice_carries_the_law_once() -> None:
    text = visible(render_email_html(no_collection_notice()))
    assert "inkassoloven § 9" in text
    assert text.count("Vi har ikke mottatt betaling") == 1


def test_email_html_of_a_credit_note() -> None:
    text = visible(render_email_html(credit_note()))
    assert "Kreditnota K-2025-0042" in text
    assert "10023" in text
    assert "Se dokumentet på nett" in text


def test_email_html_escapes_the_link() -> None:
    view = replace(
        samples()["no_consumer_invoice"], payment_link='https://pay.example/i/1"><script>x</script>'
    )
    html = render_email_html(view)
    assert "<script>" not in html
    assert re.search(r'href="https://pay.example/i/1&quot;&gt;&lt;script&gt;', html)


def test_unlawful_documents_are_refused() -> None:
    view = no_collection_notice()
    assert view.dunning is not None
    short = replace(view, dunning=replace(view.dunning, deadline=view.issue_date))
    with pytest.raises(DocumentError):
        render_page(short)
    with pytest.raises(DocumentError):
        render_email_html(short)
