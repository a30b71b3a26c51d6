"""Listing a tenant's invoices a page at a time, at a cost that does not grow with the tenant's size.

Every invoice and credit note carries `seq`, the tenant's own dense sequence (taken from a counter
in the transaction that writes it, so seq order is commit order). A page is read in windows of
seq values after the previous page's last one: `{tenant_id, <one equality>, seq: {$gt, $lte}}`, one
equality and one range on an index (tenant_id, <field>, seq). Such a query touches only the window,
on MongoDB and on the embedded server alike (whose planner fetches every match before applying a
limit, and uses a compound index only when the equalities are exactly its leading fields). The
other filters are applied to the window's documents; a window that yields too few grows fourfold.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.common.mongo import Doc
from services.ledger.store import LedgerStore

FIRST_WINDOW = 64


def encode_page_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode()


def decode_page_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not (text.startswith("s") and text[1:].isdigit()):
        raise ValueError("page_token is not one this server issued")
    return int(text[1:])


@dataclass(frozen=True)
class InvoiceFilter:
    statuses: Sequence[str] = ()
    customer_id: str = ""
    due_after: str = ""
    due_before: str = ""
    kind: str = ""
    # Invoices with something left to pay (a customer statement's open items).
    open_only: bool = False

    def primaries(self) -> list[Doc]:
        """The equality each window query uses (one query per status when several are asked for)."""
        if self.customer_id:
            return [{"customer_id": self.customer_id}]
        if self.statuses:
            return [{"status": s} for s in dict.fromkeys(self.statuses)]
        if self.kind or self.open_only:
            return [{"kind": self.kind or "invoice"}]
        return [{}]

    def predicate(self) -> Callable[[Doc], bool]:
        statuses = frozenset(self.statuses)

        def keep(doc: Doc) -> bool:
            due = doc.get("due_date", "")
            return (
                (not statuses or doc["status"] in statuses)
                and (not self.customer_id or doc["customer_id"] == self.customer_id)
                and (not self.kind or doc["kind"] == self.kind)
                and (not self.due_after or due >= self.due_after)
                and (not self.due_before or due <= self.due_before)
                and (not self.open_only or (doc["kind"] == "invoice" and doc["balance_minor"] > 0))
            )

        return keep

    @property
    def narrows(self) -> bool:
        """Whether the window's documents are filtered further (so a window may yield fewer)."""
        return bool(self.customer_id or self.statuses or self.kind or self.due_after or self.due_before) or (
            self.open_only
        )


async def list_invoices(
    store: LedgerStore, tenant_id: str, which: InvoiceFilter, *, after: int, limit: int
) -> list[Doc]:
    """Up to `limit` of the tenant's invoices matching `which`, in seq order, after seq `after`."""
    last = await store.last_seq(tenant_id)
    keep = which.predicate()
    window = max(2 * limit, FIRST_WINDOW) if which.narrows else limit
    found: list[Doc] = []
    low = after
    while len(found) < limit and low < last:
        high = min(low + window, last)
        # Each query returns at most `limit` (in seq order): past the last one it returned, the
        # window is not covered yet, and the next round starts there.
        covered = high
        batch: dict[str, Doc] = {}
        for primary in which.primaries():
            query = {"tenant_id": tenant_id, **primary, "seq": {"$gt": low, "$lte": high}}
            cursor = store.invoices.find(query, projection={"history": 0}).sort("seq", 1).limit(limit)
            docs = await cursor.to_list()
            if len(docs) == limit:
                covered = min(covered, docs[-1]["seq"])
            batch.update((d["_id"], d) for d in docs)
        matching = sorted((d for d in batch.values() if d["seq"] <= covered and keep(d)), key=seq_of)
        found.extend(matching[: limit - len(found)])
        if covered == high:
            window *= 4
        low = covered
    return found


def seq_of(doc: Doc) -> int:
    return int(doc["seq"])
