"""Text a person typed, checked before it is stored, printed on an invoice or sent to a customer.

Control characters break documents and terminals; Unicode bidirectional overrides make a text read
differently from what it is (an invoice reference or a name that displays reversed: "Trojan
Source", CVE-2021-42574). Both are refused with the field named, never silently dropped.
"""

from __future__ import annotations

import unicodedata
from typing import Final, Protocol

# Embeddings, overrides, isolates and marks that change the direction text is displayed in.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_LINE_BREAKS: Final = frozenset("\n\r\t")
_INVISIBLE: Final = frozenset("\ufeff\u2028\u2029")


class ViolationSink(Protocol):
    def add(self, field: str, description: str) -> None: ...


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` may not be stored as text, or None."""
    for position, char in enumerate(value):
        if char in BIDI_CONTROLS:
            return f"contains a bidirectional control character U+{ord(char):04X} at position {position}"
        if multiline and char in _LINE_BREAKS:
            continue
        if char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn"):
            return f"contains a control or unassigned character U+{ord(char):04X} at position {position}"
    return None


def check_text(
    value: str, field: str, limit: int, violations: ViolationSink, *, multiline: bool = False
) -> None:
    """At most `limit` characters, none of them control or bidi characters (one violation each)."""
    if len(value) > limit:
        violations.add(field, f"at most {limit} characters, got {len(value)}")
        return
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        violations.add(field, problem)
