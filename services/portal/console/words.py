"""The console's words in Norwegian (bokmål), Swedish and English (strings.toml here), in the
browser's language, else Norwegian; the portal's words (statuses) where the console has none."""

from __future__ import annotations

import tomllib
from pathlib import Path

from starlette.requests import Request

from services.portal.i18n import Translator, pick_language

STRINGS: dict[str, dict[str, str]] = tomllib.loads(
    (Path(__file__).parent / "strings.toml").read_text("utf-8")
)


class Words(Translator):
    """`t("c.<key>")`: the console's words first, then the portal's; a missing key shows as itself."""

    def __call__(self, key: str, **values: object) -> str:
        entry = STRINGS.get(key)
        if entry is None:
            return super().__call__(key, **values)
        text = entry.get(self.language) or entry.get("en") or key
        return text.format(**values) if values else text


def words_for(request: Request) -> Words:
    return Words(pick_language(request.headers.get("accept-language", "")))
