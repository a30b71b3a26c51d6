"""Invoice numbers and KIDs a payer wrote in a payment's free text ("Faktura 10042", "fakt.nr 10042",
"KID 1234567890"), told apart from the numbers that only look like them: dates, amounts, phone,
account, organisation and customer numbers, years.

A number is *labelled* when a word before it says what it is ("faktura", "KID", "nr"); labels carry
over a list ("fakturaene 10042, 10043 og 10044"). An unlabelled number is only a weak hint and must be
at least four digits long and not a year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Label = Literal["invoice", "kid", "reference", "none"]

# Masked before numbers are read: each becomes spaces, so none of its digits can be taken for a reference.
_MASKS: Final = tuple(
    re.compile(pattern)
    for pattern in (
        # Dates: 2024-03-15, 15.03.2024, 15/3-24, 15.03.
        r"(?<![\w])\d{4}-\d{1,2}-\d{1,2}(?!\w)",
        r"(?<![\w])\d{1,2}[./-]\d{1,2}(?:[./-]\d{2,4})?(?![\w])",
        # Amounts: 1 234,50  1.234,50  1234.50  kr 500  500 kr  500,-  NOK 1 200  1 200 kr
        r"(?<![\w.,])\d{1,3}(?:[ .\u00a0]\d{3})+,(?:\d{1,2}|-)(?!\w)",
        r"(?<![\w.,])\d{1,3}(?:[ .\u00a0]\d{3})+(?=\s*(?:kr|nok|sek|eur)\b)",
        r"(?<![\w.,])\d+(?:[.,]\d{1,2}|,-)(?!\w|[.,]\d)",
        r"\b(?:kr|nok|sek|eur)\.?\s*\d[\d \u00a0.]*(?:,\d{1,2}|,-)?",
        r"(?<![\w.,])\d+\s*(?:kr|nok|sek|eur)\b",
        # Phone numbers: +47 912 34 567, 0047…, tlf 91234567, 12 34 56 78, 123 45 678
        r"\+\d{2}[\d \u00a0]{6,}",
        r"\b(?:tlf|tel|telefon|mob|mobil|phone|ring)\.?:?\s*\d[\d \u00a0]*",
        r"(?<![\w])\d{2} \d{2} \d{2} \d{2}(?![\w])",
        r"(?<![\w])\d{3} \d{2} \d{3}(?![\w])",
        # Account numbers (1234.56.78903, 1234 56 78903) and organisation numbers (987 654 321, 556677-8899).
        r"(?<![\w])\d{4}[. ]\d{2}[. ]\d{5}(?![\w])",
        r"(?<![\w])\d{3} \d{3} \d{3}(?![\w])",
        r"(?<![\w])\d{6}-\d{4}(?![\w])",
        # Times: 12:30
        r"(?<![\w])\d{1,2}:\d{2}(?![\w])",
    )
)

# The label a word gives the numbers after it (its dots removed: "fakt.nr." -> "faktnr").
_WordLabel = Literal["invoice", "kid", "reference", "generic", "not"]
_LABELS: Final[dict[str, _WordLabel]] = {
    **dict.fromkeys(
        (
            "faktura",
            "fakturaen",
            "fakturaer",
            "fakturaene",
            "fakturanr",
            "fakturanummer",
            "fakturanumre",
            "fakturor",
            "fakturan",
            "fakturanumer",
            "fakt",
            "faktnr",
            "fak",
            "fa",
            "fnr",
            "invoice",
            "invoices",
            "inv",
            "invno",
            "invnr",
            "lasku",
        ),
        "invoice",
    ),
    **dict.fromkeys(("kid", "kidnr", "kidnummer", "ocr", "ocrnr"), "kid"),
    **dict.fromkeys(
        ("ref", "referanse", "referens", "reference", "betalingsreferanse", "betreff"), "reference"
    ),
    **dict.fromkeys(("nr", "no", "nummer", "number", "num", "#"), "generic"),
    **dict.fromkeys(
        (
            "kunde",
            "kundenr",
            "kundenummer",
            "kundnr",
            "kundnummer",
            "customer",
            "cust",
            "ordre",
            "ordrenr",
            "ordrenummer",
            "order",
            "ordernr",
            "bestilling",
            "org",
            "orgnr",
            "organisasjonsnummer",
            "konto",
            "kontonr",
            "kontonummer",
            "account",
            "acc",
            "postnr",
            "postboks",
            "pb",
            "avtale",
            "avtalenr",
            "medlem",
            "medlemsnr",
            "leilighet",
            "lgh",
            "gnr",
            "bnr",
            "personnr",
            "fodselsnr",
            "pnr",
            "mva",
            "bilag",
            "bilagsnr",
            "periode",
            "uke",
            "år",
            "year",
            "gate",
            "gata",
            "vei",
            "veien",
            "vegen",
            "gatan",
            "vägen",
        ),
        "not",
    ),
}
_CONNECTORS: Final = frozenset({"og", "and", "och", "&", "+", ",", "/", "samt", "ja", "-"})
_WORD: Final = re.compile(r"[^\W\d_]+(?:\.[^\W\d_]+)*\.?|\d+|[#&+,/-]")
_GLUED: Final = re.compile(r"([^\W\d_]+(?:\.[^\W\d_]*)*)[.:#=-]*(\d+)$")
_YEAR: Final = re.compile(r"(?:19[89]\d|20[0-4]\d)")
# What a masked stretch becomes: a separator no pattern reads as space, digit or word.
_MASKED: Final = "\x00"
_SPLIT: Final = re.compile(r"[\s\x00:;=()\[\]\"']+")


def _blank(match: re.Match[str]) -> str:
    return _MASKED * len(match.group(0))


@dataclass(frozen=True, slots=True)
class Mention:
    """A number in the text that may name an invoice: its digits and what its label says it is."""

    digits: str
    label: Label

    @property
    def labelled(self) -> bool:
        return self.label != "none"


def mentions(text: str) -> list[Mention]:
    """The numbers in text that may be invoice numbers or KIDs, in order, each once.

    Digit groups right after one another under a KID label are one KID ("KID 0000 1234 55").
    """
    lowered = text.casefold()
    for mask in _MASKS:
        lowered = mask.sub(_blank, lowered)
    found: list[Mention] = []
    label: _WordLabel | None = None
    previous_digits = False
    for raw in _SPLIT.split(lowered):
        if not raw:
            continue
        words = _WORD.findall(raw)
        glued = _GLUED.match(raw)
        if glued and not raw.isdigit():
            glued_label = _LABELS.get(glued.group(1).replace(".", ""))
            if glued_label is not None:
                words = [glued.group(1), glued.group(2)]
        for word in words:
            if word.isdigit():
                if previous_digits and label == "kid" and found and found[-1].label == "kid":
                    found[-1] = Mention(found[-1].digits + word, "kid")
                else:
                    mention = _mention(word, label)
                    if mention is not None:
                        found.append(mention)
                previous_digits = True
                continue
            previous_digits = False
            if word in _CONNECTORS:
                continue
            word_label = _LABELS.get(word.replace(".", ""))
            if word_label == "generic" and label in ("invoice", "kid", "reference", "not"):
                continue  # "faktura nr", "kunde nr": the first word says what the number is
            label = word_label
        if not raw.isdigit() and not words:
            previous_digits = False
    unique: dict[str, Mention] = {}
    for mention in found:
        unique.setdefault(mention.digits, mention)
    return list(unique.values())


def _mention(digits: str, label: _WordLabel | None) -> Mention | None:
    if label == "not":
        return None
    if label == "generic":
        return Mention(digits, "reference")
    if label is not None:
        return Mention(digits, label)
    if len(digits) < 4 or _YEAR.fullmatch(digits):
        return None
    return Mention(digits, "none")
