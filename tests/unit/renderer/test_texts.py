"""Every text in every language, with the same placeholders; the law's words where the law wants them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.renderer.domain.texts import LANGUAGES, TEXTS, MissingText, placeholders, text, unit_name

TEMPLATES = Path(__file__).resolve().parents[3] / "services" / "renderer" / "templates"


def test_every_key_has_every_language_and_no_other() -> None:
    for key, by_language in TEXTS.items():
        assert set(by_language) == set(LANGUAGES), key
        for language in LANGUAGES:
            assert by_language[language].strip(), f"{key} is empty in {language}"


def test_placeholders_are_the_same_in_every_language() -> None:
    for key, by_language in TEXTS.items():
        expected = placeholders(by_language["nb"])
        for language in LANGUAGES:
            assert placeholders(by_language[language]) == expected, f"{key} in {language}"


@pytest.mark.parametrize("kind", ["reminder", "notice"])
@pytest.mark.parametrize("jurisdiction", ["NO", "SE"])
def test_legal_texts_exist_for_each_law_and_state_amount_and_deadline(kind: str, jurisdiction: str) -> None:
    key = f"legal.{kind}.{jurisdiction}"
    for language in LANGUAGES:
        assert {"number", "due_date", "amount", "deadline"} <= placeholders(TEXTS[key][language]), key


def test_norwegian_collection_notice_says_what_inkassoloven_9_requires() -> None:
    notice = text(
        "legal.notice.NO",
        "nb",
        number="10023",
        due_date="28. mars 2025",
        amount="54 815,80 kr",
        deadline="16. mai 2025",
    )
    assert "inkassoloven § 9" in notice
    assert "minst 14 dager" in notice
    assert "inndriving bli iverksatt" in notice
    assert "ytterligere kostnader" in notice
    assert "54 815,80 kr innen 16. mai 2025" in notice
    for language in LANGUAGES:
        assert "14" in TEXTS["legal.notice.NO"][language]


def test_reminders_say_fees_are_shown_apart_from_the_claim() -> None:
    assert "atskilt fra kravet" in TEXTS["legal.reminder.NO"]["nb"]
    assert "skilda från fordran" in TEXTS["legal.reminder.SE"]["sv"]
    assert "apart from the claim" in TEXTS["legal.reminder.NO"]["en"]


def test_swedish_collection_demand_names_the_consequence() -> None:
    demand = TEXTS["legal.notice.SE"]["sv"]
    assert "Kronofogdemyndigheten" in demand
    assert "betalningsföreläggande" in demand
    assert "invändningar" in demand


def test_text_fills_placeholders() -> None:
    assert text("text.credits_invoice", "en", number="10023", date="14 Mar 2025") == (
        "Credits invoice 10023 dated 14 Mar 2025"
    )


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(MissingText, match=r"no text 'label\.nothing'"):
        text("label.nothing", "nb")


def test_units() -> None:
    assert unit_name("HUR", "nb") == "timer"
    assert unit_name("EA", "sv") == "st"
    assert unit_name("XPP", "en") == "XPP"


def test_sms_wordings_come_longest_first() -> None:
    for kind in ("invoice", "credit_note", "reminder", "collection_notice"):
        for language in LANGUAGES:
            long, short, shortest = (
                TEXTS[f"sms.{kind}.{size}"][language] for size in ("long", "short", "shortest")
            )
            assert len(long) > len(short) > len(shortest), (kind, language)
            assert "{link}" in shortest


def test_templates_use_no_text_key_that_does_not_exist() -> None:
    """Templates take their words from the presentation; any key they name must exist."""
    for template in TEMPLATES.glob("*.typ"):
        for key in re.findall(r'"((?:label|title|text|col|legal)\.[a-z_.A-Z]+)"', template.read_text()):
            assert key in TEXTS, f"{template.name} names {key}"
