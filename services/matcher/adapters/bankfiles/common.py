"""What the bank-file parsers share: the problem list, text decoding and bank-key bookkeeping."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

from services.matcher.domain.payments import BankFileError, BankPayment, Problem

# A broken file of a million lines would otherwise make a million problems; the count of the rest is kept.
MAX_PROBLEMS = 500

_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
# C0 controls other than tab, CR and LF, and the C1 block: never text in an ISO-8859-1 bank file
# (0x80-0x9f are Windows-1252's €, curly quotes and dashes when a file was re-saved on Windows).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class Problems:
    """Collects every problem of a file; `raise_if_any` refuses the file whole."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.more = 0

    def add(self, location: str, reason: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(location, reason))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            items = list(self.items)
            if self.more:
                items.append(Problem("", f"{self.more} more problems not listed"))
            raise BankFileError(items)


def decode_latin1(
    content: bytes, format_name: str, problems: Problems, *, record_length: int = 80, padded: bool = True
) -> str:
    """A fixed-width bank file's text. OCR Giro and BgMax are ISO-8859-1: every byte is a character, so a
    wrong encoding shows as UTF-16 zero bytes, UTF-8 multi-byte sequences, or control characters.

    Some ISO-8859-1 text is also valid UTF-8 ("Â¡" is the bytes of "¡"): a file is taken as re-saved in
    UTF-8 only when its records fit their width as UTF-8 and not as ISO-8859-1 (`padded`: every record
    is exactly `record_length`), or, for formats whose records may be shorter, when what UTF-8 reads
    is letters (a re-saved "Ødegård"), not the punctuation an ISO-8859-1 byte pair makes."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in content[:4096]:
        problems.add("", f"wrong encoding: the file looks like UTF-16; {format_name} files are ISO-8859-1")
        return ""
    if content.startswith(b"\xef\xbb\xbf") or _looks_utf8(content, record_length, padded):
        problems.add("", f"wrong encoding: the file is UTF-8 (re-saved?); {format_name} files are ISO-8859-1")
        return ""
    return content.decode("iso-8859-1")


def _looks_utf8(content: bytes, record_length: int, padded: bool) -> bool:
    if _UTF8_MULTIBYTE.search(content) is None:
        return False
    try:
        utf8 = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    latin1 = content.decode("iso-8859-1")
    # Records of exactly their width one way and not the other decide it (BgMax's are, when padded).
    fits_latin1 = all(len(line) == record_length for line in split_lines(latin1))
    fits_utf8 = all(len(line) == record_length for line in split_lines(utf8))
    if fits_latin1 != fits_utf8:
        return fits_utf8
    if not padded and any(len(line) > record_length for line in split_lines(latin1)):
        return all(len(line) <= record_length for line in split_lines(utf8))
    return all(c.isalpha() for c in utf8 if ord(c) > 0x7F)


def control_character(line: str) -> str | None:
    """The first control character of a line, for the problem text; None when the line is clean."""
    found = _CONTROL.search(line)
    return None if found is None else f"control character {found.group()!r} at position {found.start() + 1}"


def split_lines(text: str) -> list[str]:
    """The file's lines without line ends; trailing empty lines (a final newline) dropped."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def yymmdd(text: str) -> date | None:
    """DDMMYY (OCR Giro); None when not a date. Years 00-79 are 20xx, 80-99 are 19xx (Nets' files
    started in the 1980s)."""
    if len(text) != 6 or not text.isascii() or not text.isdigit():
        return None
    day, month, year = int(text[0:2]), int(text[2:4]), int(text[4:6])
    try:
        return date(2000 + year if year < 80 else 1900 + year, month, day)
    except ValueError:
        return None


def yyyymmdd(text: str) -> date | None:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def unique_keys(payments: list[BankPayment]) -> list[BankPayment]:
    """Two payments of one file may not share a bank key (the second would be taken for a repeat and
    dropped): a repeated key gets "~2", "~3" … in file order, which is stable when the same file or the
    same transactions come again."""
    seen: dict[str, int] = {}
    out: list[BankPayment] = []
    for payment in payments:
        count = seen.get(payment.bank_key, 0) + 1
        seen[payment.bank_key] = count
        out.append(payment if count == 1 else replace(payment, bank_key=f"{payment.bank_key}~{count}"))
    return out
