"""The console's words: every key its pages and code use is there in Norwegian, Swedish and English."""

from __future__ import annotations

import re
from pathlib import Path

from services.portal.console.words import STRINGS, Words
from services.portal.i18n import STRINGS as PORTAL_STRINGS

ROOT = Path(__file__).parents[3] / "services" / "portal"
# Keys the pages build from a value (t("c.nav." + key) …), each value they can take.
BUILT = [
    *(
        f"c.nav.{k}"
        for k in ("dashboard", "search", "deviations", "review", "disputes", "flagged", "collection")
    ),
    *(f"c.role.{r}" for r in ("customer_service", "operator", "admin")),
    *(f"c.done.{d}" for d in ("resent", "allocated", "resolved", "comment", "policy")),
    *(
        f"c.problem.{p}"
        for p in ("channel", "no_payment", "no_invoice", "choose", "nothing_left", "resolution", "comment")
    ),
    *(f"c.chart.{c}" for c in ("status", "aging", "paid_before_due", "fallback", "methods", "stages")),
    *(f"c.caption.{c}" for c in ("status", "aging", "paid_before_due", "fallback", "methods", "stages")),
    *(f"c.stage.{n}" for n in (1, 2, 3)),
    *(f"c.note.{k}" for k in ("message", "dispute", "dispute_resolved")),
    *(f"c.author.{k}" for k in ("customer", "staff")),
    *(f"c.{k}" for k in ("forbidden", "not_allowed", "not_found", "login_failed", "login_blocked")),
    *(f"c.{k}_text" for k in ("forbidden", "not_allowed", "not_found")),
    "c.not_due",
    *(
        f"status.{s}"
        for s in (
            "unknown",
            "open",
            "part_paid",
            "paid",
            "overpaid",
            "credited",
            "overdue",
            "reminded",
            "collection_notice",
            "in_collection",
            "written_off",
        )
    ),
]


def used_keys() -> set[str]:
    found: set[str] = set()
    for path in [
        *ROOT.joinpath("templates", "console").glob("*.html"),
        *ROOT.joinpath("console").glob("*.py"),
    ]:
        found |= set(re.findall(r"""\bt\(\s*["']((?:c|status)\.[a-z0-9_.]+)["']""", path.read_text("utf-8")))
    # t("c.nav." + key) and the like: BUILT has those.
    return {key for key in found if not key.endswith(".")}


def test_every_key_in_every_language() -> None:
    keys = used_keys() | set(BUILT)
    assert len(keys) > 150
    for key in sorted(keys):
        entry = STRINGS.get(key) or PORTAL_STRINGS.get(key)
        assert entry is not None, f"{key} is missing"
        assert {"nb", "sv", "en"} <= set(entry), f"{key}: {sorted(entry)}"


def test_words_fall_back_on_the_portals_and_fill_in_values() -> None:
    assert Words("sv")("c.invoice", number="17") == "Faktura 17"
    assert Words("en")("status.paid") == PORTAL_STRINGS["status.paid"]["en"]
    assert Words("nb")("c.no.such.key") == "c.no.such.key"
