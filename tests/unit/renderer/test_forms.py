"""Which forms a document gets, and what happens to an EHF that cannot or may not be sent."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

import pytest

from services.renderer.adapters.ehf import render_ehf
from services.renderer.domain.model import DocumentView, Form
from services.renderer.forms import Forms, forms_for
from tests.support.renderer_views import (
    business_buyer,
    consumer_buyer,
    make_line,
    make_view,
    norwegian_seller,
)

ALL: tuple[Form, ...] = ("pdf", "html", "email", "sms", "ehf")


def view(buyer_country: str = "NO", *, consumer: bool = False) -> DocumentView:
    rng = random.Random(7)
    buyer = consumer_buyer(rng) if consumer else business_buyer(rng, "SE" if buyer_country == "SE" else "NO")
    if buyer_country not in ("NO", "SE"):
        buyer = replace(buyer, address=replace(buyer.address, country=buyer_country))
    lines = [make_line(1, "Konsulenttimer", Decimal(3), 1_250_00, rate=Decimal(25))]
    return make_view("invoice", norwegian_seller(rng), buyer, lines)


@pytest.fixture(scope="module")
def engines() -> Forms:
    return Forms()


def test_ehf_is_due_only_to_businesses_peppol_can_address() -> None:
    assert set(forms_for(view("NO"))) == set(ALL)
    assert set(forms_for(view("SE"))) == set(ALL)
    assert "ehf" not in forms_for(view("DK"))
    assert "ehf" not in forms_for(view(consumer=True))
    credit_note = replace(view("NO"), kind="credit_note")
    assert set(forms_for(credit_note)) == {"pdf", "html", "email", "ehf"}


def test_an_ehf_that_is_not_possible_is_skipped_not_refused(engines: Forms) -> None:
    rendering = engines.render(view("DK"), ALL, attach_pdf=True)

    assert {d.form for d in rendering.documents} == {"pdf", "html", "email", "sms"}
    assert rendering.refused == {}
    assert "DK" in rendering.skipped["ehf"]


def test_an_ehf_that_breaks_the_rules_is_refused_with_the_rule(
    engines: Forms, monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_buyer_reference(v: DocumentView, *, pdf: bytes | None = None) -> bytes:
        xml = render_ehf(v, pdf=pdf)
        start, end = xml.index(b"<cbc:BuyerReference>"), xml.index(b"</cbc:BuyerReference>")
        return xml[:start] + xml[end + len(b"</cbc:BuyerReference>") :]

    monkeypatch.setattr("services.renderer.forms.render_ehf", without_buyer_reference)
    rendering = engines.render(view("NO"), ALL, attach_pdf=False)

    assert {d.form for d in rendering.documents} == {"pdf", "html", "email", "sms"}
    assert "PEPPOL-EN16931-R003" in rendering.refused["ehf"]
    assert rendering.skipped == {}


def test_the_email_says_its_language() -> None:
    import email
    from email.policy import default

    message = email.message_from_bytes(Forms.email(view(consumer=True)), policy=default)
    assert message["Content-Language"] == "nb"
    assert message.get_content_type() == "multipart/alternative"
