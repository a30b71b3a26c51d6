"""The e-mail (subject, plain text) and the SMS of a document, in the customer's language.

An SMS is one message of 160 GSM-7 septets where the wording allows: the longest wording that fits
is taken, then shorter ones; the payment link is never cut. Characters outside GSM-7 in a name are
replaced by their base letter where one exists ("ń" becomes "n", "Ł" "L"), since one such character
would make the whole message UCS-2, with 70 characters a part.
"""

from __future__ import annotations

import unicodedata

from services.renderer.domain.formatting import (
    check_document,
    document_title,
    dunning_legal,
    long_date,
    money,
    payment_box,
    short_date,
)
from services.renderer.domain.model import MESSAGE_KINDS, DocumentView
from services.renderer.domain.texts import text

SMS_LIMIT = 160  # septets in one GSM-7 message
# GSM 03.38 basic character set (one septet each) and its extension table (two septets: escape + char).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
# Letters with no Unicode decomposition to a GSM-7 base letter.
_SPELLED = {
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Œ": "OE",
    "œ": "oe",
    "Þ": "Th",
    "þ": "th",
    "\u0131": "i",  # dotless i
    "\u2013": "-",  # en dash
}


def gsm7_septets(message: str) -> int | None:
    """How many septets message takes in GSM-7, or None if a character is not in GSM-7."""
    count = 0
    for char in message:
        if char in GSM7_BASIC:
            count += 1
        elif char in GSM7_EXTENSION:
            count += 2
        else:
            return None
    return count


def _gsm7_friendly(value: str) -> str:
    """value with each non-GSM-7 character replaced by its base letter, where that is GSM-7."""
    out: list[str] = []
    for char in " ".join(value.split()):
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            out.append(char)
            continue
        base = _SPELLED.get(char) or unicodedata.normalize("NFKD", char)[:1]
        out.append(base if base[:1] in GSM7_BASIC else char)
    return "".join(out)


def _values(view: DocumentView) -> dict[str, str]:
    language = view.language
    amount_minor = view.gross_minor if view.kind == "credit_note" else view.amount_due_minor
    due = view.due_date
    return {
        "number": view.number,
        "seller": view.seller.legal_name,
        "title": document_title(view),
        "amount": money(amount_minor, view.currency, language),
        "due_date": short_date(due, language) if due is not None else "",
        "reference": view.kid,
        "credited": view.credits.number if view.credits is not None else "",
        "link": view.payment_link,
    }


def wording(view: DocumentView) -> str:
    """Whose texts a document takes: its kind's, but a nudge sent on or before the due date says the
    invoice falls due, not that it fell due."""
    if view.kind == "nudge" and view.due_date is not None and view.issue_date <= view.due_date:
        return "nudge_early"
    return view.kind


def email_subject(view: DocumentView) -> str:
    """ "Faktura 10023 fra Fjordline Energi AS"."""
    check_document(view)
    values = _values(view)
    return text(f"email.subject.{view.kind}", view.language, **values)


def email_text(view: DocumentView) -> str:
    """The plain-text body: greeting, what and how much, how to pay, the link, the law's words for a
    reminder or notice, the signature. A nudge is the message itself: nothing is attached."""
    check_document(view)
    language = view.language
    values = _values(view)
    values["due_date"] = long_date(view.due_date, language) if view.due_date is not None else ""
    parts = [text("email.greeting", language, name=view.buyer.name)]
    if view.dunning is not None and view.kind in ("reminder", "collection_notice"):
        # A reminder or notice sent by e-mail says all the law asks of it in the e-mail itself.
        parts.append(dunning_legal(view))
    else:
        parts.append(text(f"email.lead.{wording(view)}", language, **values))
    box = payment_box(view)
    if box is not None:
        rows = [box.amount, *([box.due] if box.due else []), *([box.reference] if box.reference else [])]
        rows.extend(box.accounts)
        parts.append("\n".join(f"{row.label}: {row.value}" for row in rows))
    if view.payment_link:
        link_label = "label.view_online" if view.kind == "credit_note" else "label.pay_online"
        parts.append(f"{text(link_label, language)}: {view.payment_link}")
    if view.offers:
        parts.append(text("email.offer.automatic_payment", language))
    if view.kind not in MESSAGE_KINDS:
        parts.append(text("email.attachment_note", language))
    parts.append(text("email.signature", language, seller=view.seller.legal_name))
    return "\n\n".join(parts) + "\n"


def sms_text(view: DocumentView) -> str:
    """One SMS with the payment link: the longest wording that fits 160 GSM-7 septets; if none fits,
    the shortest wording (sent as more than one part), the link always whole."""
    check_document(view)
    values = _values(view)
    values["seller"] = _gsm7_friendly(values["seller"])
    values["number"] = _gsm7_friendly(values["number"])
    lengths = ("long", "short", "shortest") if view.kid or view.kind != "invoice" else ("short", "shortest")
    candidates = [text(f"sms.{wording(view)}.{length}", view.language, **values) for length in lengths]
    for candidate in candidates:
        septets = gsm7_septets(candidate)
        if septets is not None and septets <= SMS_LIMIT:
            return candidate
    return candidates[-1]
