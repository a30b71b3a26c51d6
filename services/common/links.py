"""The invoice's own page: a short link that names one invoice, cannot be guessed, and expires.

`/i/<invoice id, base64url>.<expiry>.<signature>`: the expiry is a Unix time in base 36, and the
signature an HMAC of the invoice id and the expiry with the deployment's link secret, so a link
cannot be made for another invoice nor made to last longer. The renderer prints them on documents,
e-mails and SMS; the portal checks them.

Links printed before they had an expiry (`<invoice id>.<signature>`) still work: the portal honours
them for a fixed time after the invoice's issue date (FORDRING_LEGACY_LINK_DAYS, 400 days), since
the link itself says nothing of when it was printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

_SIGNATURE_BYTES = 9


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def _signature(secret: str, message: str) -> str:
    return _b64(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES])


def _ident(invoice_id: str) -> str:
    try:
        return _b64(uuid.UUID(invoice_id).bytes)
    except ValueError:
        return _b64(invoice_id.encode())


def invoice_token(invoice_id: str, secret: str, *, expires: datetime | None = None) -> str:
    """The link's token; without `expires`, one of the old kind (kept for what was printed before)."""
    if expires is None:
        return f"{_ident(invoice_id)}.{_signature(secret, invoice_id)}"
    expiry = _base36(int(expires.timestamp()))
    return f"{_ident(invoice_id)}.{expiry}.{_signature(secret, f'{invoice_id}.{expiry}')}"


def invoice_link(base_url: str, invoice_id: str, secret: str, *, expires: datetime | None = None) -> str:
    return f"{base_url.rstrip('/')}/i/{invoice_token(invoice_id, secret, expires=expires)}"


@dataclass(frozen=True)
class LinkToken:
    """A token whose signature is ours: the invoice, and when the link stops working (None: an old
    link without an expiry)."""

    invoice_id: str
    expires: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


def read_token(token: str, secret: str) -> LinkToken | None:
    """What a token says, or None when it is not one of ours (tampered, truncated, another secret)."""
    parts = token.split(".")
    if len(parts) not in (2, 3) or len(token) > 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        invoice_id = str(uuid.UUID(bytes=raw)) if len(raw) == 16 else raw.decode()
        expires = datetime.fromtimestamp(int(parts[1], 36), UTC) if len(parts) == 3 else None
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        return None
    if _ident(invoice_id) != parts[0]:
        return None
    signed = invoice_id if expires is None else f"{invoice_id}.{parts[1]}"
    if not hmac.compare_digest(_signature(secret, signed), parts[-1]):
        return None
    return LinkToken(invoice_id, expires)


def invoice_from_token(token: str, secret: str) -> str | None:
    """The invoice id a token names, or None when the token is not one of ours (its expiry aside)."""
    found = read_token(token, secret)
    return found.invoice_id if found else None
