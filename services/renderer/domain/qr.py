"""The payment QR code in the form each market reads, and its SVG.

- EUR to an IBAN: the EPC QR code (EPC069-12, "GiroCode"), which European bank apps read.
- SEK to a Swedish bankgiro or PlusGiro: the Swedish invoice QR code (UsingQR, JSON), which Swedish
  bank apps read.
- Anything else: the document's payment link (the portal page), which any phone camera opens.

segno draws the code with a fixed mask (mask 0): its automatic mask search costs ~6.6 ms a code
(ARCHITECTURE.md §7), while any mask reads equally well. The SVG is cached by payload, so the PDF,
the HTML page and the e-mail of one document draw it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

import segno
from stdnum import iban as stdnum_iban
from stdnum import iso11649

from services.renderer.domain.model import DocumentView

QrKind = Literal["epc", "uqr", "link"]

# EPC069-12 (version 002) field limits.
EPC_MAX_BYTES = 331
EPC_NAME_MAX = 70
EPC_IBAN_MAX = 34
EPC_REFERENCE_MAX = 35
EPC_TEXT_MAX = 140
EPC_INFORMATION_MAX = 70
EPC_MAX_MINOR = 99_999_999_999  # EUR 999,999,999.99
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_PURPOSE = re.compile(r"[A-Z]{4}")

# UsingQR (Swedish invoice QR, specification revision 2) as Fordring fills it.
UQR_NAME_MAX = 70
UQR_REFERENCE_MAX = 25
_BANKGIRO = re.compile(r"[0-9]{7,8}")
_PLUSGIRO = re.compile(r"[0-9]{2,8}")


class InvalidPaymentCode(ValueError):
    """Data that a payment code's specification does not allow."""


@dataclass(frozen=True)
class PaymentCode:
    kind: QrKind
    payload: str


def _euro_amount(minor: int) -> str:
    if not 1 <= minor <= EPC_MAX_MINOR:
        raise InvalidPaymentCode(f"EPC amount must be EUR 0.01 to 999999999.99, got {minor} cents")
    units, cents = divmod(minor, 100)
    return f"EUR{units}.{cents:02d}"


def epc_payload(
    *,
    name: str,
    iban: str,
    amount_minor: int,
    bic: str = "",
    reference: str = "",
    text: str = "",
    purpose: str = "",
    information: str = "",
) -> str:
    """An EPC069-12 version 002 payload (UTF-8, SEPA credit transfer), lines joined by LF.

    reference: an ISO 11649 RF creditor reference goes in the structured field; anything else (a KID,
    an invoice number) in the unstructured one, as only one of the two may be given. A name longer than
    70 characters is cut to 70: the bank app shows it, the IBAN decides where the money goes.
    """
    compact_iban = "".join(iban.split()).upper()
    if len(compact_iban) > EPC_IBAN_MAX or not stdnum_iban.is_valid(compact_iban):
        raise InvalidPaymentCode(f"not a valid IBAN: {iban!r}")
    compact_bic = "".join(bic.split()).upper()
    if compact_bic and _BIC.fullmatch(compact_bic) is None:
        raise InvalidPaymentCode(f"BIC must be 8 or 11 letters and digits, got {bic!r}")
    beneficiary = " ".join(name.split())[:EPC_NAME_MAX]
    if not beneficiary:
        raise InvalidPaymentCode("EPC needs the beneficiary's name")
    if purpose and _PURPOSE.fullmatch(purpose) is None:
        raise InvalidPaymentCode(f"purpose must be a 4-letter ISO 20022 code, got {purpose!r}")
    structured = unstructured = ""
    compact_reference = "".join(reference.split()).upper()
    if compact_reference and iso11649.is_valid(compact_reference):
        structured = compact_reference
    else:
        unstructured = " ".join(part for part in (reference.strip(), text.strip()) if part)
    if len(structured) > EPC_REFERENCE_MAX:
        raise InvalidPaymentCode(f"structured reference is at most {EPC_REFERENCE_MAX} characters")
    if len(unstructured) > EPC_TEXT_MAX:
        raise InvalidPaymentCode(f"remittance text is at most {EPC_TEXT_MAX} characters")
    if len(information) > EPC_INFORMATION_MAX:
        raise InvalidPaymentCode(f"information is at most {EPC_INFORMATION_MAX} characters")
    fields = [
        "BCD",
        "002",
        "1",  # UTF-8
        "SCT",
        compact_bic,
        beneficiary,
        compact_iban,
        _euro_amount(amount_minor),
        purpose,
        structured,
        unstructured,
        information,
    ]
    while fields[-1] == "":  # trailing empty fields may be left out
        fields.pop()
    payload = "\n".join(fields)
    if len(payload.encode("utf-8")) > EPC_MAX_BYTES:
        raise InvalidPaymentCode(f"EPC payload is at most {EPC_MAX_BYTES} bytes")
    return payload


def _json_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(char if ord(char) >= 0x20 else f"\\u{ord(char):04x}" for char in escaped) + '"'


def swedish_invoice_payload(
    *,
    name: str,
    account_type: Literal["BG", "PG"],
    account: str,
    reference: str,
    invoice_date: date,
    due_date: date,
    amount_minor: int,
    org_number: str = "",
) -> str:
    """The Swedish invoice QR code (UsingQR) for a SEK invoice paid to a bankgiro or PlusGiro:
    {"uqr":1,"tp":1,"nme":…,"cc":"SE","cid":…,"iref":OCR,"idt":YYYYMMDD,"ddt":YYYYMMDD,"due":1250.00,
    "cur":"SEK","pt":"BG","acc":"50501055"}. Amount as a JSON number with two decimals, never a float."""
    digits = "".join(account.replace("-", "").split())
    pattern = _BANKGIRO if account_type == "BG" else _PLUSGIRO
    if pattern.fullmatch(digits) is None:
        raise InvalidPaymentCode(f"{account_type} account must be {pattern.pattern} digits, got {account!r}")
    compact_reference = "".join(reference.split())
    if not compact_reference or len(compact_reference) > UQR_REFERENCE_MAX:
        raise InvalidPaymentCode(f"invoice reference must be 1 to {UQR_REFERENCE_MAX} characters")
    payee = " ".join(name.split())[:UQR_NAME_MAX]
    if not payee:
        raise InvalidPaymentCode("the Swedish invoice QR code needs the payee's name")
    if amount_minor < 0:
        raise InvalidPaymentCode(f"amount must not be negative, got {amount_minor}")
    if due_date < invoice_date:
        raise InvalidPaymentCode("the due date must not be before the invoice date")
    units, ore = divmod(amount_minor, 100)
    fields = [
        ("uqr", "1"),
        ("tp", "1"),  # 1: invoice
        ("nme", _json_string(payee)),
        ("cc", '"SE"'),
    ]
    org_digits = "".join(char for char in org_number if char.isdigit())
    if org_digits:
        fields.append(("cid", _json_string(org_digits)))
    fields += [
        ("iref", _json_string(compact_reference)),
        ("idt", _json_string(invoice_date.strftime("%Y%m%d"))),
        ("ddt", _json_string(due_date.strftime("%Y%m%d"))),
        ("due", f"{units}.{ore:02d}"),
        ("cur", '"SEK"'),
        ("pt", _json_string(account_type)),
        ("acc", _json_string(digits)),
    ]
    return "{" + ",".join(f'"{key}":{value}' for key, value in fields) + "}"


def payment_code(view: DocumentView) -> PaymentCode | None:
    """The code a customer of this market scans to pay this document; None when nothing is to be paid.

    When the profile's account data do not fit the market's code (an IBAN that fails its check), the
    payment link is used instead: the document still goes out, with a code that opens its page.
    """
    if view.kind == "credit_note" or view.amount_due_minor <= 0:
        return None
    try:
        code = _bank_code(view)
    except InvalidPaymentCode:
        code = None
    if code is None and view.payment_link:
        code = PaymentCode("link", view.payment_link)
    return code


def _bank_code(view: DocumentView) -> PaymentCode | None:
    seller = view.seller
    if view.currency == "EUR" and seller.iban and view.amount_due_minor <= EPC_MAX_MINOR:
        payload = epc_payload(
            name=seller.legal_name,
            iban=seller.iban,
            bic=seller.bic,
            amount_minor=view.amount_due_minor,
            reference=view.kid or view.number,
        )
        return PaymentCode("epc", payload)
    due = view.due_date
    if seller.jurisdiction != "SE" or view.currency != "SEK" or due is None:
        return None
    account_type: Literal["BG", "PG"]
    if seller.bankgiro:
        account_type, account = "BG", seller.bankgiro
    elif seller.plusgiro:
        account_type, account = "PG", seller.plusgiro
    else:
        return None
    payload = swedish_invoice_payload(
        name=seller.legal_name,
        org_number=seller.org_number,
        account_type=account_type,
        account=account,
        reference=view.kid or view.number,
        invoice_date=min(view.issue_date, due),
        due_date=due,
        amount_minor=view.amount_due_minor,
    )
    return PaymentCode("uqr", payload)


@lru_cache(maxsize=2048)
def qr_svg(payload: str) -> str:
    """The QR code of payload as a small SVG (error correction M, mask 0, 4-module quiet zone, one path
    of horizontal runs on a white square), cached by payload."""
    code = segno.make(payload, error="m", mask=0, micro=False, boost_error=False)
    border = 4
    rows = code.matrix
    size = len(rows) + 2 * border
    path: list[str] = []
    for y, row in enumerate(rows):
        x = 0
        width = len(row)
        while x < width:
            if row[x]:
                start = x
                while x < width and row[x]:
                    x += 1
                path.append(f"M{start + border} {y + border}h{x - start}v1h{start - x}z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" '
        f'height="{size}" shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(path)}"/></svg>'
    )
