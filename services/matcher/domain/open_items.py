"""The matcher's picture of what is owed: one tenant's invoices (open and recently closed) with their
KID, number, customer and open amount, and the customers' known payer accounts and names.

`OpenItems` answers the matching questions in memory: by KID, by invoice number, by customer, by
payer account or name, by amount, and which KIDs lie within one keying error of a typed reference.
The keying-error lookup is a symmetric-delete index: every KID is filed under each of its one-digit
deletions, a typed reference looks up itself and its own deletions, and what comes back is checked
by a true edit check. Deleting one digit from both sides meets for a wrong digit (same position)
and two adjacent digits swapped (either of them); a missing digit meets the KID's deletion, an
extra digit meets the KID itself.

The deletion keys are kept packed, one 64-bit integer each (38 bits of the key's hash, 26 bits of
the item's slot), sorted in an `array` and searched by bisection: about 8 bytes per key instead of
the ~100 of a dict entry with its string. A hash collision only adds a candidate the edit check
then refuses. Items added after the last packing go into a small dict beside it; the whole is
re-packed when that grows past a quarter of the packed part.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

# Statuses in which an invoice takes no more money: a payment referring to one is the customer's credit.
CLOSED_STATUSES: Final = frozenset({"paid", "overpaid", "credited", "written_off"})

KeyingError = Literal["wrong_digit", "adjacent_swap", "missing_digit", "extra_digit"]

_SLOT_BITS: Final = 26
_SLOT_MASK: Final = (1 << _SLOT_BITS) - 1
_KEY_MASK: Final = (1 << (64 - _SLOT_BITS)) - 1
_RUN: Final = 1 << 16  # keys sorted per run before the runs are merged (bounds the build's peak memory)


@dataclass(frozen=True, slots=True)
class OpenItem:
    invoice_id: str
    invoice_number: str
    kid: str
    customer_id: str
    customer_number: str
    currency: str
    open_minor: int
    # The ledger's status: "open", "part_paid", "overdue", "reminded", "collection_notice",
    # "in_collection" (money is still owed) or one of CLOSED_STATUSES.
    status: str
    due_date: date | None
    version: int
    # What the invoice asked for in all (gross + charges); 0 when unknown. For a closed invoice it is
    # the amount a late or second payment of it would carry.
    total_minor: int = 0

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES and self.open_minor > 0


@dataclass(frozen=True, slots=True)
class KidCandidate:
    """An item whose KID is one keying error away from what was typed."""

    item: OpenItem
    error: KeyingError
    # The position (0-based, in the item's KID) of the wrong, first swapped, missing or extra digit.
    position: int


def keying_error(typed: str, kid: str) -> tuple[KeyingError, int] | None:
    """The one keying error that turns kid into typed, with its position; None for none or more."""
    n, m = len(typed), len(kid)
    if n == m:
        first = next((i for i in range(n) if typed[i] != kid[i]), -1)
        if first < 0:
            return None
        if typed[first + 1 :] == kid[first + 1 :]:
            return "wrong_digit", first
        second = first + 1
        if (
            second < n
            and typed[first] == kid[second]
            and typed[second] == kid[first]
            and typed[second + 1 :] == kid[second + 1 :]
        ):
            return "adjacent_swap", first
        return None
    if n == m - 1:
        first = next((i for i in range(n) if typed[i] != kid[i]), n)
        return ("missing_digit", first) if typed[first:] == kid[first + 1 :] else None
    if n == m + 1:
        first = next((i for i in range(m) if typed[i] != kid[i]), m)
        return ("extra_digit", first) if typed[first + 1 :] == kid[first:] else None
    return None


def _deletions(text: str) -> set[str]:
    return {text[:i] + text[i + 1 :] for i in range(len(text))}


def _key(text: str) -> int:
    return hash(text) & _KEY_MASK


_ACCOUNT_NOISE: Final = re.compile(r"[\s.\-]")
_NORWEGIAN_IBAN: Final = re.compile(r"NO\d{2}(\d{11})")


def normalise_account(account: str) -> str:
    """An account number as compared: no spaces, dots or dashes, upper case, a Norwegian IBAN as its BBAN."""
    compact = _ACCOUNT_NOISE.sub("", account).upper()
    match = _NORWEGIAN_IBAN.fullmatch(compact)
    return match.group(1) if match else compact


_NAME_NOISE: Final = re.compile(r"[^\w]+")
# Legal-form words that a bank may or may not print with the name.
_LEGAL_FORMS: Final = frozenset(
    {"as", "asa", "ans", "da", "nuf", "sa", "ab", "hb", "kb", "ek", "for", "oy", "oyj", "aps", "ltd", "inc"}
)


def normalise_name(name: str) -> str:
    """A payer's or customer's name as compared: case, accents' forms, punctuation, word order and
    legal-form words ("AS", "AB") do not matter ("HANSEN OLA" == "Ola Hansen")."""
    text = unicodedata.normalize("NFKC", name).casefold().replace("&", " og ")
    words = [w for w in _NAME_NOISE.sub(" ", text).split() if w not in _LEGAL_FORMS]
    return " ".join(sorted(words))


class OpenItems:
    """One tenant's open-item index. Not thread-safe: one writer (the projection) at a time."""

    def __init__(
        self,
        items: Iterable[OpenItem] = (),
        *,
        payer_accounts: Mapping[str, Iterable[str]] | None = None,
        payer_names: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self._slots: list[OpenItem | None] = []
        self._slot_of: dict[str, int] = {}
        self._by_kid: dict[str, int] = {}
        self._by_number: dict[str, int] = {}
        self._open_by_customer: dict[str, set[int]] = {}
        self._open_by_amount: dict[int, int | list[int]] = {}
        self._accounts: dict[str, set[str]] = {}
        self._names: dict[str, set[str]] = {}
        self._packed: array[int] = array("Q")
        self._overlay: dict[str, list[int]] = {}
        self._dead = 0
        self.kid_lengths: set[int] = set()
        for item in items:
            self._insert(item, index_deletions=False)
        self._pack()
        for customer_id, accounts in (payer_accounts or {}).items():
            for account in accounts:
                self.add_payer_account(customer_id, account)
        for customer_id, names in (payer_names or {}).items():
            for name in names:
                self.add_payer_name(customer_id, name)

    # --- changes -------------------------------------------------------------------------------

    def add(self, item: OpenItem) -> None:
        if item.invoice_id in self._slot_of:
            raise ValueError(f"invoice {item.invoice_id} is already in the open items")
        self._insert(item, index_deletions=True)
        self._maybe_repack()

    def update(self, item: OpenItem) -> bool:
        """Replace the invoice's item; False (nothing changed) when the stored one has a newer version."""
        slot = self._slot_of.get(item.invoice_id)
        if slot is None:
            raise KeyError(item.invoice_id)
        old = self._slots[slot]
        assert old is not None
        if item.version < old.version:
            return False
        self._unindex(slot, old)
        self._slots[slot] = item
        self._index(slot, item)
        if item.kid != old.kid:
            self._add_to_overlay(slot, item.kid)
            self._maybe_repack()
        return True

    def put(self, item: OpenItem) -> bool:
        """Add or update; False when a newer version is already stored."""
        if item.invoice_id in self._slot_of:
            return self.update(item)
        self.add(item)
        return True

    def remove(self, invoice_id: str) -> None:
        slot = self._slot_of.pop(invoice_id, None)
        if slot is None:
            return
        old = self._slots[slot]
        assert old is not None
        self._unindex(slot, old)
        self._slots[slot] = None
        self._dead += 1
        self._maybe_repack()

    def add_payer_account(self, customer_id: str, account: str) -> None:
        key = normalise_account(account)
        if key:
            self._accounts.setdefault(key, set()).add(customer_id)

    def add_payer_name(self, customer_id: str, name: str) -> None:
        key = normalise_name(name)
        if key:
            self._names.setdefault(key, set()).add(customer_id)

    # --- questions ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, invoice_id: object) -> bool:
        return invoice_id in self._slot_of

    def __iter__(self) -> Iterator[OpenItem]:
        return (item for item in self._slots if item is not None)

    def get(self, invoice_id: str) -> OpenItem | None:
        slot = self._slot_of.get(invoice_id)
        return None if slot is None else self._slots[slot]

    def by_kid(self, kid: str) -> OpenItem | None:
        slot = self._by_kid.get(kid)
        return None if slot is None else self._slots[slot]

    def by_invoice_number(self, number: str) -> OpenItem | None:
        slot = self._by_number.get(number.strip().casefold())
        return None if slot is None else self._slots[slot]

    def open_items_of(self, customer_id: str) -> list[OpenItem]:
        """The customer's open items, oldest due first."""
        items = [self._live(slot) for slot in self._open_by_customer.get(customer_id, ())]
        return sorted(items, key=due_order)

    def open_with_amount(self, currency: str, amount_minor: int) -> list[OpenItem]:
        found = self._open_by_amount.get(amount_minor)
        if found is None:
            return []
        slots = [found] if isinstance(found, int) else found
        return [item for item in map(self._live, slots) if item.currency == currency]

    def customers_by_account(self, account: str) -> frozenset[str]:
        return frozenset(self._accounts.get(normalise_account(account), ()))

    def customers_by_name(self, name: str) -> frozenset[str]:
        return frozenset(self._names.get(normalise_name(name), ()))

    def kid_candidates(self, typed: str) -> list[KidCandidate]:
        """Items (open or closed) whose KID is exactly one keying error away from typed."""
        if not typed:
            return []
        deletions = _deletions(typed)
        slots: set[int] = set()
        for text in (typed, *deletions):
            slots.update(self._deletion_slots(text))
        for text in deletions:  # an extra digit: typed minus one digit is the KID itself
            slot = self._by_kid.get(text)
            if slot is not None:
                slots.add(slot)
        found = []
        for slot in slots:
            item = self._slots[slot]
            if item is None:
                continue
            error = keying_error(typed, item.kid)
            if error is not None:
                found.append(KidCandidate(item, error[0], error[1]))
        found.sort(key=lambda c: (c.item.kid, c.item.invoice_id))
        return found

    def memory_keys(self) -> int:
        """How many deletion keys are indexed (packed and overlay)."""
        return len(self._packed) + sum(len(v) for v in self._overlay.values())

    # --- internals ------------------------------------------------------------------------------

    def _live(self, slot: int) -> OpenItem:
        item = self._slots[slot]
        assert item is not None
        return item

    def _deletion_slots(self, text: str) -> Iterator[int]:
        key = _key(text)
        packed = self._packed
        i = bisect_left(packed, key << _SLOT_BITS)
        while i < len(packed) and packed[i] >> _SLOT_BITS == key:
            yield packed[i] & _SLOT_MASK
            i += 1
        yield from self._overlay.get(text, ())

    def _insert(self, item: OpenItem, *, index_deletions: bool) -> None:
        slot = len(self._slots)
        self._slots.append(item)
        self._slot_of[item.invoice_id] = slot
        self._index(slot, item)
        if index_deletions:
            self._add_to_overlay(slot, item.kid)

    def _index(self, slot: int, item: OpenItem) -> None:
        if item.kid:
            self._by_kid[item.kid] = slot
            self.kid_lengths.add(len(item.kid))
        if item.invoice_number:
            self._by_number[item.invoice_number.strip().casefold()] = slot
        if item.is_open:
            self._open_by_customer.setdefault(item.customer_id, set()).add(slot)
            found = self._open_by_amount.get(item.open_minor)
            if found is None:
                self._open_by_amount[item.open_minor] = slot
            elif isinstance(found, int):
                self._open_by_amount[item.open_minor] = [found, slot]
            else:
                found.append(slot)

    def _unindex(self, slot: int, item: OpenItem) -> None:
        if self._by_kid.get(item.kid) == slot:
            del self._by_kid[item.kid]
        number = item.invoice_number.strip().casefold()
        if self._by_number.get(number) == slot:
            del self._by_number[number]
        if item.is_open:
            of_customer = self._open_by_customer.get(item.customer_id)
            if of_customer is not None:
                of_customer.discard(slot)
                if not of_customer:
                    del self._open_by_customer[item.customer_id]
            found = self._open_by_amount.get(item.open_minor)
            if found == slot:
                del self._open_by_amount[item.open_minor]
            elif isinstance(found, list) and slot in found:
                found.remove(slot)
                if len(found) == 1:
                    self._open_by_amount[item.open_minor] = found[0]

    def _add_to_overlay(self, slot: int, kid: str) -> None:
        for text in _deletions(kid):
            self._overlay.setdefault(text, []).append(slot)

    def _maybe_repack(self) -> None:
        overlay = sum(len(v) for v in self._overlay.values())
        if overlay > max(4096, len(self._packed) // 4) or self._dead > max(1024, len(self._slots) // 4):
            self._repack()

    def _repack(self) -> None:
        live = [item for item in self._slots if item is not None]
        self._slots = []
        self._slot_of.clear()
        self._by_kid.clear()
        self._by_number.clear()
        self._open_by_customer.clear()
        self._open_by_amount.clear()
        self._dead = 0
        for item in live:
            self._insert(item, index_deletions=False)
        self._pack()

    def _pack(self) -> None:
        if len(self._slots) > _SLOT_MASK:
            raise OverflowError(f"at most {_SLOT_MASK} items per index")
        runs: list[array[int]] = []
        run: list[int] = []
        for slot, item in enumerate(self._slots):
            if item is None or not item.kid:
                continue
            run.extend((_key(text) << _SLOT_BITS) | slot for text in _deletions(item.kid))
            if len(run) >= _RUN:
                run.sort()
                runs.append(array("Q", run))
                run.clear()
        run.sort()
        runs.append(array("Q", run))
        self._packed = runs[0] if len(runs) == 1 else array("Q", heapq.merge(*runs))
        self._overlay = {}


def due_order(item: OpenItem) -> tuple[date, str, str]:
    """Oldest due first; no due date last; then by invoice number and id (a stable order)."""
    return (item.due_date or date.max, item.invoice_number.zfill(32), item.invoice_id)
