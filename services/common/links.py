"""The invoice's own page: a short link that names one invoice and cannot be guessed.

`/i/<invoice id, base64url>.<signature>`: the signature is an HMAC of the invoice id with the
deployment's link secret, so a link cannot be made for another invoice. The renderer prints it on
documents, e-mails and SMS; the portal checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

_SIGNATURE_BYTES = 9


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def invoice_token(invoice_id: str, secret: str) -> str:
    signature = hmac.new(secret.encode(), invoice_id.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    try:
        ident = _b64(uuid.UUID(invoice_id).bytes)
    except ValueError:
        ident = _b64(invoice_id.encode())
    return f"{ident}.{_b64(signature)}"


def invoice_link(base_url: str, invoice_id: str, secret: str) -> str:
    return f"{base_url.rstrip('/')}/i/{invoice_token(invoice_id, secret)}"


def invoice_from_token(token: str, secret: str) -> str | None:
    """The invoice id a token names, or None when the token is not one of ours."""
    ident, _, _ = token.partition(".")
    try:
        raw = base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4))
        invoice_id = str(uuid.UUID(bytes=raw)) if len(raw) == 16 else raw.decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return invoice_id if hmac.compare_digest(invoice_token(invoice_id, secret), token) else None
