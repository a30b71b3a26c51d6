"""Signed webhooks: what a provider posts back (receipts, bounces, callbacks) is authenticated with an
HMAC-SHA256 over the timestamp and the exact body, with a secret per provider.

Header `X-Fordring-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the scheme
Stripe and others use). A receiver refuses a signature that does not verify, a timestamp further than
`tolerance` from its clock (a replay of an old capture), and, by keeping each delivered event id,
the same event twice (a replay within the tolerance).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

SIGNATURE_HEADER = "X-Fordring-Signature"
DEFAULT_TOLERANCE = 300.0


class BadSignature(ValueError):
    """The webhook is not from the provider, or is too old: refuse it and change nothing."""


def sign(body: bytes, secret: str, *, at: float | None = None) -> str:
    """The signature header's value for `body`, made at `at` (unix seconds; now by default)."""
    stamp = int(time.time() if at is None else at)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: Callable[[], float] = time.time,
) -> int:
    """The signed timestamp, or BadSignature (missing, malformed, wrong, or outside the tolerance)."""
    if not header:
        raise BadSignature(f"no {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        stamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise BadSignature("the signature has no timestamp t=") from None
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        raise BadSignature("the signature does not match the body")
    if abs(now() - stamp) > tolerance:
        raise BadSignature(
            f"the signature was made {int(now() - stamp)} s ago (tolerance {int(tolerance)} s)"
        )
    return stamp
