"""A nudge: a friendly e-mail and SMS with the amount, the original due date and the payment link, nothing
attached. Reminders and notices: the fixed compensation named by its law, and the interest accrued to
the notice's date stated, with whether the amount to pay includes it."""

from __future__ import annotations

import email
from dataclasses import replace
from datetime import UTC, date, datetime
from email.policy import default

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import ChargeAdded, ChargeAddedData, InvoiceSummary
from services.renderer.adapters.html import render_email_html
from services.renderer.domain import formatting as fmt
from services.renderer.domain.build import build_view, charge_kind, charges_of
from services.renderer.domain.messages import SMS_LIMIT, email_subject, email_text, gsm7_septets, sms_text
from services.renderer.domain.model import Charge, DocumentView, Language
from services.renderer.forms import Forms, filename, forms_for
from services.renderer.rendering import target_of
from tests.support.renderer_samples import (
    no_business_invoice,
    no_collection_notice,
    no_consumer_invoice,
    no_reminder,
)
from tests.unit.renderer.test_build import LINK, NOTICE, customer, invoice, nok, profile

LANGUAGES: tuple[Language, ...] = ("nb", "sv", "en")
SENT = date(2025, 4, 4)


def nudge(language: Language = "nb") -> DocumentView:
    """The consumer invoice (due 28 March 2025), nudged a week later."""
    return replace(no_consumer_invoice(), kind="nudge", issue_date=SENT, language=language)


# --- the view ---------------------------------------------------------------------------------------


def test_a_nudge_is_dated_when_sent_and_names_the_invoices_own_due_date_and_balance() -> None:
    overdue = invoice(paid_total=nok(200_00), balance=nok(700_83 - 200_00))

    view = build_view(
        "nudge", overdue, customer(pb.CUSTOMER_KIND_CONSUMER), profile(), link=LINK, notice_date=NOTICE
    )

    assert (view.kind, view.issue_date, view.due_date) == ("nudge", NOTICE, date(2026, 3, 16))
    assert view.amount_due_minor == 700_83 - 200_00
    assert view.dunning is None
    assert view.payment_link == LINK


def test_a_nudge_is_only_an_email_and_an_sms() -> None:
    assert forms_for(nudge()) == ("email", "sms")
    assert filename(nudge(), "sms") == "nudge-10024.txt"


def test_a_nudge_without_a_due_date_is_refused() -> None:
    with pytest.raises(fmt.DocumentError):
        sms_text(replace(nudge(), due_date=None))


# --- the SMS and the e-mail -------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_nudge_sms_fits_one_message_with_amount_due_date_and_the_whole_link(language: Language) -> None:
    view = nudge(language)
    message = sms_text(view)
    septets = gsm7_septets(message)
    assert septets is not None, message
    assert septets <= SMS_LIMIT, message
    assert message.endswith(view.payment_link)
    assert fmt.money(view.amount_due_minor, "NOK", language) in message
    assert fmt.short_date(date(2025, 3, 28), language) in message


def test_the_nudge_sms_is_friendly_and_threatens_nothing() -> None:
    message = sms_text(nudge())
    assert message.startswith("Hei! Faktura 10024 fra Fjordline Energi AS")
    for word in ("Purring", "inkasso", "gebyr"):
        assert word.lower() not in message.lower()


def test_a_long_link_makes_the_nudge_sms_shorter_not_cut() -> None:
    long_link = "https://pay.fordring.example/i/" + "n" * 70
    message = sms_text(replace(nudge(), payment_link=long_link))
    assert message.endswith(long_link)
    assert len(message) <= SMS_LIMIT


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_nudge_email_gives_amount_due_date_reference_and_link_and_attaches_nothing(
    language: Language,
) -> None:
    view = nudge(language)
    body = email_text(view)
    assert fmt.money(view.amount_due_minor, "NOK", language) in body
    assert fmt.long_date(date(2025, 3, 28), language) in body
    assert fmt.payment_reference(view.kid) in body
    assert view.payment_link in body
    assert "PDF" not in body
    html = render_email_html(view)
    assert f'href="{view.payment_link}"' in html
    assert "PDF" not in html


def test_the_nudge_email_subject_and_lead() -> None:
    view = nudge()
    assert email_subject(view) == "Vennlig påminnelse: faktura 10024 fra Fjordline Energi AS"
    body = email_text(view)
    assert "ikke er betalt ennå" in body
    assert "kan du se bort fra denne meldingen" in body
    assert "Forfallsdato: 28.03.2025" in body  # the invoice's due date, not a new deadline
    assert email_subject(nudge("en")) == "Friendly reminder: invoice 10024 from Fjordline Energi AS"


def test_the_nudge_email_message_is_multipart_text_and_html() -> None:
    message = email.message_from_bytes(Forms.email(nudge()), policy=default)
    assert message["Content-Language"] == "nb"
    assert message.get_body(preferencelist=("plain",)) is not None
    assert message.get_body(preferencelist=("html",)) is not None
    assert not list(message.iter_attachments())


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_nudge_before_the_due_date_says_it_falls_due(language: Language) -> None:
    early = replace(nudge(language), issue_date=date(2025, 3, 25))
    message = sms_text(early)
    assert gsm7_septets(message) is not None
    assert len(message) <= SMS_LIMIT
    assert message.endswith(early.payment_link)
    falls_due = {"nb": "forfaller", "sv": "förfaller", "en": "is due"}[language]
    assert falls_due in message
    body = email_text(early)
    assert {"nb": "forfaller", "sv": "förfaller", "en": "falls due"}[language] in body
    assert {"nb": "forfalt", "sv": "förföll", "en": "has not been paid"}[language] not in body
    assert {"nb": "forfaller", "sv": "förfaller", "en": "falls due"}[language] in render_email_html(early)


# --- reminders and notices: compensation and interest to date --------------------------------------


def test_the_ledgers_charge_kinds_as_a_document_lists_them() -> None:
    assert charge_kind("reminder_fee") == "fee"
    assert charge_kind("collection_notice_interest") == "interest"
    assert charge_kind("late_interest_interest") == "interest"
    assert charge_kind("reminder_compensation") == "compensation"
    assert charge_kind("compensation") == "compensation"
    charged = invoice(
        charges=[
            pb.Charge(
                kind="reminder_fee",
                description="purring",
                amount_minor=35_00,
                added_at="2026-05-04T08:00:00Z",
            ),
            pb.Charge(
                kind="reminder_compensation",
                description="fixed compensation",
                amount_minor=435_00,
                added_at="2026-05-04T08:00:00Z",
            ),
        ]
    )
    assert [c.kind for c in charges_of(charged)] == ["fee", "compensation"]


def with_compensation(view: DocumentView, amount: int = 435_00) -> DocumentView:
    assert view.dunning is not None
    sent = view.issue_date
    charges = (*view.dunning.charges, Charge("compensation", "fixed compensation", amount, sent))
    return replace(
        view,
        amount_due_minor=view.amount_due_minor + amount,
        dunning=replace(view.dunning, charges=charges),
    )


@pytest.mark.parametrize(
    ("language", "label"),
    [
        ("nb", "Standardkompensasjon (forsinkelsesrenteloven § 3a), lagt til 02.05.2025"),
        ("en", "Fixed compensation (Norwegian Late Payment Interest Act § 3a), added 2 May 2025"),
    ],
)
def test_the_compensation_is_a_line_of_its_own_named_by_its_law(language: Language, label: str) -> None:
    view = replace(with_compensation(no_collection_notice()), language=language)
    shown = fmt.present(view)
    assert shown.dunning is not None
    rows = {row.label: row.value for row in shown.dunning.rows}
    assert rows[label] == fmt.money(435_00, "NOK", language)
    assert shown.dunning.rows[-1].value == fmt.money(view.amount_due_minor, "NOK", language)


def test_a_swedish_claim_names_its_forseningsersattning() -> None:
    view = replace(
        with_compensation(no_reminder(), 450_00), seller=replace(no_reminder().seller, jurisdiction="SE")
    )
    shown = fmt.present(replace(view, language="sv", currency="SEK"))
    assert shown.dunning is not None
    assert any(row.label.startswith("Förseningsersättning, tillagd") for row in shown.dunning.rows)


def with_interest_to_date(view: DocumentView, accrued: int) -> DocumentView:
    assert view.dunning is not None
    return replace(view, dunning=replace(view.dunning, interest_to_date_minor=accrued))


def test_no_interest_to_date_states_nothing_more() -> None:
    shown = fmt.present(no_reminder())
    assert shown.dunning is not None
    assert shown.dunning.rows[-1].label == "Totalt å betale"
    assert "Påløpt forsinkelsesrente" not in shown.dunning.legal


def test_interest_accrued_and_charged_is_stated_as_included() -> None:
    view = with_interest_to_date(no_reminder(), 11_27)  # the reminder charged 11,27 of interest
    shown = fmt.present(view)
    assert shown.dunning is not None
    last = shown.dunning.rows[-1]
    assert (last.label, last.value) == ("Påløpt forsinkelsesrente per 14.04.2025", "11,27 kr")
    assert shown.dunning.rows[-2].label == "Totalt å betale"
    assert "Påløpt forsinkelsesrente per 14. april 2025 er 11,27 kr og er tatt med i beløpet å betale" in (
        shown.dunning.legal
    )


def test_interest_accrued_beyond_what_is_charged_comes_in_addition() -> None:
    partly = fmt.present(with_interest_to_date(no_reminder(), 20_00))
    assert partly.dunning is not None
    assert "er 20,00 kr, hvorav 11,27 kr er tatt med i beløpet å betale; resten kommer i tillegg" in (
        partly.dunning.legal
    )
    reminder = no_reminder()
    assert reminder.dunning is not None
    uncharged = replace(
        reminder,
        dunning=replace(
            reminder.dunning,
            charges=tuple(c for c in reminder.dunning.charges if c.kind != "interest"),
            interest_to_date_minor=20_00,
        ),
    )
    extra = fmt.present(uncharged)
    assert extra.dunning is not None
    assert "er 20,00 kr. Den kommer i tillegg til beløpet å betale" in extra.dunning.legal


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_reminder_email_states_the_interest_to_date_too(language: Language) -> None:
    view = replace(with_interest_to_date(no_reminder(), 20_00), language=language)
    body = email_text(view)
    assert fmt.money(20_00, "NOK", language) in body
    assert body.count(fmt.money(20_00, "NOK", language)) == 1
    html = render_email_html(view)
    assert fmt.money(20_00, "NOK", language) in html


# --- what the renderer renders ----------------------------------------------------------------------


def test_a_nudge_charge_is_rendered_as_a_nudge_with_its_hints() -> None:
    summary = InvoiceSummary(
        invoice_id="inv-1",
        kind="invoice",
        invoice_number="10042",
        kid="",
        customer_id="c-1",
        customer_number="K-1",
        customer_kind="consumer",
        currency="NOK",
        issue_date="2026-03-02",
        due_date="2026-03-16",
        gross_minor=700_83,
        charges_minor=0,
        paid_minor=0,
        credited_minor=0,
        balance_minor=700_83,
        status="overdue",
        dunning_stage=0,
        version=3,
        language="nb",
    )

    def charge(action: str, **more: object) -> ChargeAdded:
        data = ChargeAddedData(
            invoice=summary, action_id="a-1", action=action, charge_minor=0, source_event_id="e-1", **more
        )
        return ChargeAdded(tenant_id="t-1", subject="inv-1", occurred_at=datetime.now(UTC), data=data)

    nudged = target_of(charge("nudge", channels=["email", "sms"], payment_link=True))
    assert nudged is not None
    assert (nudged.kind, nudged.invoice_id, nudged.channels) == ("nudge", "inv-1", ("email", "sms"))
    reminded = target_of(charge("reminder", deadline="2026-06-01", interest_to_date_minor=12_34))
    assert reminded is not None
    assert (reminded.kind, reminded.deadline, reminded.interest_to_date_minor) == (
        "reminder",
        "2026-06-01",
        12_34,
    )
    assert target_of(charge("late_interest")) is None
    assert target_of(charge("compensation")) is None


def test_every_nudge_text_exists_in_every_language() -> None:
    business = replace(no_business_invoice(), kind="nudge", issue_date=SENT)
    for language in LANGUAGES:
        view = replace(business, language=language)
        assert email_subject(view)
        assert email_text(view)
        assert sms_text(view)


@pytest.mark.parametrize(
    ("language", "words"), [("nb", "AvtaleGiro"), ("sv", "Autogiro"), ("en", "AvtaleGiro")]
)
def test_the_early_nudge_offers_automatic_payment(language: Language, words: str) -> None:
    offered = replace(nudge(language), offers=("avtalegiro", "efaktura"))
    assert words in email_text(offered)
    assert words not in email_text(nudge(language))
