"""Typed text and dates as the contracts define them: no control or bidi characters, YYYY-MM-DD only."""

from __future__ import annotations

from datetime import date

import pytest

from services.common.clock import parse_iso_date
from services.common.errors import Violations
from services.common.text import check_text, text_problem


@pytest.mark.parametrize(
    "text",
    [
        "Fjordbris Kaffe AS",
        "Øst-Agder Rør & Varme",
        "Åsa Öberg",
        "Kunde: 50 % rabatt",
        "日本語の請求書",
        "Café ☕",
    ],
)
def test_ordinary_text_passes(text: str) -> None:
    assert text_problem(text) is None


@pytest.mark.parametrize(
    "text",
    ["a\u202eb", "a\u202db", "a\u2066b", "a\u2067b", "a\u2068b", "a\u2069b", "a\u200fb", "a\u061cb"],
)
def test_bidi_controls_are_refused(text: str) -> None:
    problem = text_problem(text)
    assert problem is not None
    assert "bidirectional" in problem


@pytest.mark.parametrize("text", ["a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\ufeffb", "a\u2028b", "a\ue000b"])
def test_control_and_invisible_characters_are_refused(text: str) -> None:
    assert text_problem(text) is not None


def test_line_breaks_only_where_text_may_have_several_lines() -> None:
    assert text_problem("first\nsecond") is not None
    assert text_problem("first\nsecond\ttab", multiline=True) is None


def test_check_text_names_the_field_once() -> None:
    v = Violations()
    check_text("x" * 11, "reference", 10, v)
    check_text("ok\u202e", "name", 10, v)
    assert [(f.field, f.description.split()[0]) for f in v] == [("reference", "at"), ("name", "contains")]


@pytest.mark.parametrize(
    "text", ["20261123", "2026-W48-1", "2026-11-23T00:00", "2026-1-3", " 2026-11-23", ""]
)
def test_only_yyyy_mm_dd_is_a_date(text: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_iso_date(text)


def test_a_real_date_parses_and_an_impossible_one_does_not() -> None:
    assert parse_iso_date("2026-11-23") == date(2026, 11, 23)
    with pytest.raises(ValueError, match="calendar date"):
        parse_iso_date("2026-02-30")
