"""The portal's words in Norwegian (bokmål), Swedish and English: the customer's language, else the
browser's, else Norwegian."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

LANGUAGES = ("nb", "sv", "en")
DEFAULT = "nb"

# key → language → text (strings.toml; the console keeps its own words there too).
STRINGS: dict[str, dict[str, str]] = tomllib.loads(
    (Path(__file__).parent / "strings.toml").read_text("utf-8")
)


_MONTHS = {language: STRINGS["months"][language].split() for language in LANGUAGES}
# Times are shown where the reader most likely is.
_ZONES = {"nb": ZoneInfo("Europe/Oslo"), "sv": ZoneInfo("Europe/Stockholm"), "en": ZoneInfo("Europe/Oslo")}


class Translator:
    """`t("key")` in templates; a missing key shows as itself (and a test finds it)."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT

    def __call__(self, key: str, **values: object) -> str:
        text = STRINGS.get(key, {}).get(self.language) or STRINGS.get(key, {}).get("en") or key
        return text.format(**values) if values else text

    def date(self, day: date) -> str:
        """2. desember 2026, 2 december 2026, 2 December 2026."""
        month = _MONTHS[self.language][day.month - 1]
        return f"{day.day}. {month} {day.year}" if self.language == "nb" else f"{day.day} {month} {day.year}"

    def when(self, at: datetime) -> str:
        """A moment, in the reader's time zone: the date and hh:mm."""
        local = at.astimezone(_ZONES[self.language])
        return f"{self.date(local.date())} {local:%H:%M}"


def normalise(language: str) -> str:
    """A customer's or invoice's language ("nb", "nn", "no", "sv", "en", "sv-SE") as one of ours."""
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if code in ("nb", "nn", "no"):
        return "nb"
    return code if code in LANGUAGES else ""


def pick_language(accept_language: str, *preferred: str) -> str:
    """The first of `preferred` we speak, else the browser's first we speak, else Norwegian."""
    for language in preferred:
        if normalise(language):
            return normalise(language)
    for part in accept_language.split(","):
        code = normalise(part.split(";")[0])
        if code:
            return code
    return DEFAULT
