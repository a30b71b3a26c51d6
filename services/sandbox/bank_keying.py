"""KIDs as payers mistype them (one wrong digit, two adjacent digits swapped, a digit missing or one
too many), which KIDs lie one such error from a typed reference, and Norwegian account numbers."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Final, Literal

from services.sandbox.bank_scenarios import BankInvoice

KeyingError = Literal["wrong_digit", "adjacent_swap", "missing_digit", "extra_digit"]
KEYING_ERRORS: Final[tuple[KeyingError, ...]] = (
    "wrong_digit",
    "adjacent_swap",
    "missing_digit",
    "extra_digit",
)


def variants(kid: str, error: KeyingError) -> Iterator[str]:
    """Every way of mistyping `kid` by one keying error of the kind."""
    digits = "0123456789"
    if error == "wrong_digit":
        for i, d in itertools.product(range(len(kid)), digits):
            if d != kid[i]:
                yield kid[:i] + d + kid[i + 1 :]
    elif error == "adjacent_swap":
        for i in range(len(kid) - 1):
            if kid[i] != kid[i + 1]:
                yield kid[:i] + kid[i + 1] + kid[i] + kid[i + 2 :]
    elif error == "missing_digit":
        if len(kid) > 4:
            for i in range(len(kid)):
                yield kid[:i] + kid[i + 1 :]
    else:
        for i, d in itertools.product(range(len(kid) + 1), digits):
            yield kid[:i] + d + kid[i:]


def one_keying_error(typed: str, kid: str) -> bool:
    """True when `typed` is `kid` with exactly one wrong, swapped, missing or extra digit."""
    n, m = len(typed), len(kid)
    if n == m:
        diff = [i for i in range(n) if typed[i] != kid[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and typed[diff[0]] == kid[diff[1]]
            and typed[diff[1]] == kid[diff[0]]
        )
    if n == m - 1:
        return any(typed == kid[:i] + kid[i + 1 :] for i in range(m))
    if n == m + 1:
        return any(kid == typed[:i] + typed[i + 1 :] for i in range(n))
    return False


def _deletions(text: str) -> set[str]:
    return {text[:i] + text[i + 1 :] for i in range(len(text))}


class KidIndex:
    """Every invoice's KID, and which KIDs lie one keying error from a typed reference: each KID is
    filed under its one-digit deletions (the matcher's symmetric-delete lookup, in a plain dict)."""

    def __init__(self, invoices: Sequence[BankInvoice]) -> None:
        self._by_kid = {i.kid: i for i in invoices if i.kid}
        self._by_deletion: dict[str, list[BankInvoice]] = defaultdict(list)
        for invoice in self._by_kid.values():
            for key in _deletions(invoice.kid):
                self._by_deletion[key].append(invoice)

    def get(self, kid: str) -> BankInvoice | None:
        return self._by_kid.get(kid)

    def near(self, typed: str) -> list[BankInvoice]:
        found: dict[str, BankInvoice] = {}
        deletions = _deletions(typed)
        for key in (typed, *deletions):
            for invoice in self._by_deletion.get(key, ()):
                found[invoice.kid] = invoice
        for key in deletions:  # one digit extra: the typed reference less one digit is the KID
            exact = self._by_kid.get(key)
            if exact is not None:
                found[exact.kid] = exact
        return [i for kid, i in sorted(found.items()) if one_keying_error(typed, kid)]


def norwegian_account(rng: random.Random) -> str:
    """A valid Norwegian BBAN: a bank's 4-digit code, 6 digits, a MOD11 check digit."""
    weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    while True:
        body = f"{rng.choice(('1503', '1607', '3000', '9710', '1254', '1822', '6011', '1644'))}"
        body += f"{rng.randrange(1_000_000):06d}"
        check = (11 - sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11) % 11
        if check != 10:
            return body + str(check)


def norwegian_iban(account: str) -> str:
    """The IBAN of a Norwegian BBAN (ISO 13616: check digits by MOD 97-10); other text unchanged."""
    if not (len(account) == 11 and account.isdigit()):
        return account
    check = 98 - int(account + "232400") % 97  # N = 23, O = 24
    return f"NO{check:02d}{account}"
