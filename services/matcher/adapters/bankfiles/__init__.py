"""Bank files of incoming payments, read whole: Nets OCR Giro, ISO 20022 camt.054/camt.053, BgMax.

    detect(content) -> FileFormat          from the content (never the file name)
    parse(content, format=None) -> BankFile   every payment, or BankFileError with every problem

Pure: bytes in, the shared model (services/matcher/domain/payments.py) out. A file is validated whole:
its declared counts and totals are checked, and a file with any problem is refused with all of them
(location and reason), never returned in part.
"""

from __future__ import annotations

import re

from services.matcher.adapters.bankfiles import bgmax, camt, ocr_giro
from services.matcher.domain.payments import FORMATS, BankFile, BankFileError, FileFormat, Problem

__all__ = ["FORMATS", "BankFile", "BankFileError", "FileFormat", "Problem", "detect", "parse"]

# How much of the start of a file detection looks at.
_HEAD = 65536
_CAMT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(BkToCstmrDbtCdtNtfctn|BkToCstmrStmt|BkToCstmrAcctRpt)[\s/>]")
_CAMT_FORMATS: dict[bytes, FileFormat] = {b"BkToCstmrDbtCdtNtfctn": "camt.054", b"BkToCstmrStmt": "camt.053"}
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def detect(content: bytes, filename: str = "") -> FileFormat:
    """The format of a bank file, from its content; BankFileError when it is none of them.
    `filename` only names the file in the error."""
    head = content[:_HEAD]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    if b"\x00" in head[:200]:  # UTF-16 XML: look at it as ASCII
        head = head.replace(b"\x00", b"")
    stripped = head.lstrip()
    if stripped.startswith(b"<"):
        found = _CAMT.search(head)
        if found is not None:
            name = found.group(1)
            if name in _CAMT_FORMATS:
                return _CAMT_FORMATS[name]
            raise _unknown(filename, "a camt.052 account report; camt.053 and camt.054 are read")
        raise _unknown(filename, "XML, but not an ISO 20022 camt.053 or camt.054 message")
    if stripped.startswith(b"NY") and stripped[2:8].isdigit():
        return "ocr_giro"
    if stripped.startswith(b"01BGMAX"):
        return "bgmax"
    raise _unknown(
        filename,
        "not Nets OCR Giro (records starting 'NY'), BgMax (starting '01BGMAX')"
        " or ISO 20022 camt.053/camt.054 XML",
    )


def parse(content: bytes, *, format: FileFormat | None = None, filename: str = "") -> BankFile:
    """Every payment of a bank file. With `format` given, a file of another format is refused."""
    found = detect(content, filename)
    if format is not None and format != found:
        if format not in FORMATS:
            raise BankFileError([Problem("", f"unknown format {format!r}; one of {', '.join(FORMATS)}")])
        raise BankFileError([Problem("", f"{_name(filename)}the file is {found}, not {format}")])
    if found == "ocr_giro":
        return ocr_giro.parse(content)
    if found == "bgmax":
        return bgmax.parse(content)
    return camt.parse(content)


def _name(filename: str) -> str:
    return f"{filename}: " if filename else ""


def _unknown(filename: str, what: str) -> BankFileError:
    return BankFileError([Problem("", f"{_name(filename)}unknown format: {what}")])
