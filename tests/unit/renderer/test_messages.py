"""E-mail and SMS texts: in the customer's language, with amount, deadline and the link; SMS in one part."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.renderer.domain.formatting import DocumentError, money, payment_reference
from services.renderer.domain.messages import SMS_LIMIT, email_subject, email_text, gsm7_septets, sms_text
from services.renderer.domain.model import DocumentView, Language
from tests.support.renderer_samples import credit_note, no_collection_notice, no_reminder, samples

LANGUAGES: tuple[Language, ...] = ("nb", "sv", "en")


def test_gsm7_counts_the_extension_table_twice() -> None:
    assert gsm7_septets("Betal 100 kr") == 12
    assert gsm7_septets("æøå ÆØÅ äöü é") == 13
    assert gsm7_septets("EUR 5 €") == 8
    assert gsm7_septets("[x]{y}|~^\\") == 18
    assert gsm7_septets("ł") is None
    assert gsm7_septets("—") is None


@pytest.mark.parametrize("name", sorted(samples()))
@pytest.mark.parametrize("language", LANGUAGES)
def test_sms_fits_one_gsm7_message_with_the_whole_link(name: str, language: Language) -> None:
    view = replace(samples()[name], language=language)
    message = sms_text(view)
    septets = gsm7_septets(message)
    assert septets is not None, message
    assert septets <= SMS_LIMIT, message
    assert message.endswith(view.payment_link)


def test_sms_names_amount_and_deadline() -> None:
    view = samples()["no_business_invoice"]
    message = sms_text(view)
    assert money(view.amount_due_minor, "NOK", "nb") in message
    assert "28.03.2025" in message
    assert view.kid in message


def test_sms_falls_back_to_shorter_wording_for_a_long_link() -> None:
    view = samples()["no_business_invoice"]
    long_link = "https://pay.fordring.example/i/" + "a" * 60
    message = sms_text(replace(view, payment_link=long_link))
    assert message.endswith(long_link)
    assert len(message) <= SMS_LIMIT
    assert view.kid not in message  # the long wording did not fit


def test_sms_never_cuts_the_link_even_when_nothing_fits() -> None:
    view = samples()["no_business_invoice"]
    huge = "https://pay.fordring.example/i/" + "b" * 200
    message = sms_text(replace(view, payment_link=huge))
    assert message.endswith(huge)


def test_sms_replaces_accents_gsm7_lacks_in_names() -> None:
    view = samples()["no_consumer_invoice"]
    named = replace(view, seller=replace(view.seller, legal_name="Łódź Energia Sp. ź o.o."))
    message = sms_text(named)
    assert "Lodz Energia Sp. z o.o." in message
    assert gsm7_septets(message) is not None


def test_email_subject_per_kind_and_language() -> None:
    view = samples()["no_business_invoice"]
    assert email_subject(view) == "Faktura 10023 fra Fjordline Energi AS"
    assert email_subject(replace(view, language="en")) == "Invoice 10023 from Fjordline Energi AS"
    assert email_subject(samples()["se_invoice"]) == "Faktura 20517 från Ström & Söner Bygg AB"
    assert email_subject(credit_note()) == "Kreditnota K-2025-0042 fra Fjordline Energi AS"
    assert email_subject(no_reminder()) == "Purring: faktura 10024 fra Fjordline Energi AS"
    assert email_subject(no_collection_notice()) == "Inkassovarsel: faktura 10023 fra Fjordline Energi AS"


@pytest.mark.parametrize("name", sorted(samples()))
def test_email_text_has_amount_deadline_reference_and_link(name: str) -> None:
    view: DocumentView = samples()[name]
    body = email_text(view)
    assert view.buyer.name in body
    assert view.payment_link in body
    if view.kind == "credit_note":
        assert money(view.gross_minor, view.currency, view.language) in body
        assert "10023" in body
    else:
        assert money(view.amount_due_minor, view.currency, view.language) in body
        assert payment_reference(view.kid) in body


def test_collection_notice_email_carries_the_legal_text() -> None:
    body = email_text(no_collection_notice())
    assert "inkassoloven § 9" in body
    assert "minst 14 dager" in body
    assert body.count("Vi har ikke mottatt betaling") == 1


def test_messages_refuse_an_unlawful_notice() -> None:
    view = no_collection_notice()
    assert view.dunning is not None
    short = replace(view, dunning=replace(view.dunning, deadline=view.issue_date))
    with pytest.raises(DocumentError):
        sms_text(short)
    with pytest.raises(DocumentError):
        email_text(short)
