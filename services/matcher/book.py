"""What is owed, as the matcher sees it: the projection of the ledger's invoices and customers in
the matcher's database, and each tenant's in-memory `OpenItems` built from it.

The consumers write the projection (`Projection`); an import or a resolution takes the tenant's
book (`Books.of`), which reads what changed since it last looked. An invoice's open amount in the
book is the ledger's balance less what this matcher proposed and the ledger has not applied yet
(`pending`), so two payments in one file never both take the same open amount.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from services.common.clock import Clock
from services.common.events import (
    CustomerUpserted,
    Event,
    InvoiceSummary,
    PaymentApplied,
    ProposalRejected,
)
from services.common.ledger_client import LedgerClient
from services.common.mongo import Doc, in_slices
from services.matcher.domain.open_items import OpenItem, OpenItems
from services.matcher.store import MatcherStore, review_key

log = logging.getLogger(__name__)

# A refresh reads what changed since the last one less this margin: a transaction that began before
# the last refresh and committed after it is still seen (its writes carry its start time).
_MARGIN: Final = timedelta(seconds=60)
# The whole book is read again this often (accounts a customer no longer has are forgotten then).
_REBUILD: Final = timedelta(hours=6)
_LEDGER_BATCH: Final = 500


def open_minor(doc: Doc) -> int:
    return max(0, int(doc["balance_minor"]) - sum(int(v) for v in (doc.get("pending") or {}).values()))


def item_of(doc: Doc) -> OpenItem:
    left = open_minor(doc)
    status = doc["status"]
    # Fully taken by proposals the ledger has not applied yet: as good as paid.
    if left == 0 and doc["balance_minor"] > 0 and status not in ("credited", "written_off"):
        status = "paid"
    due = doc.get("due_date") or ""
    return OpenItem(
        invoice_id=doc["_id"],
        invoice_number=doc["number"],
        kid=doc.get("kid", ""),
        customer_id=doc["customer_id"],
        customer_number=doc.get("customer_number", ""),
        currency=doc["currency"],
        open_minor=left,
        status=status,
        due_date=date.fromisoformat(due) if due else None,
        version=int(doc["version"]),
        total_minor=int(doc.get("total_minor", 0)),
    )


def item_fields(summary: InvoiceSummary) -> Doc:
    return {
        "tenant_id": "",  # filled by the caller
        "number": summary.invoice_number,
        "kid": summary.kid,
        "customer_id": summary.customer_id,
        "customer_number": summary.customer_number,
        "currency": summary.currency,
        "balance_minor": summary.balance_minor,
        "total_minor": summary.gross_minor + summary.charges_minor,
        "status": summary.status,
        "due_date": summary.due_date,
        "version": summary.version,
    }


@dataclass
class Book:
    tenant_id: str
    items: OpenItems
    # Changes up to here are in `items` (the projection's clock).
    watermark: datetime
    built_at: datetime
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Customer id → number, for what people read.
    customer_numbers: dict[str, str] = field(default_factory=dict)


class Books:
    """Each tenant's book, loaded on first use and kept current by reading the projection's changes."""

    def __init__(self, store: MatcherStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._books: dict[str, Book] = {}
        self._loading: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def loaded(self) -> Iterable[Book]:
        return self._books.values()

    def drop(self, tenant_id: str) -> None:
        """Forget the tenant's book (after a failed write left it ahead of the database)."""
        self._books.pop(tenant_id, None)

    async def of(self, tenant_id: str) -> Book:
        async with self._loading[tenant_id]:
            book = self._books.get(tenant_id)
            now = self._clock.now()
            if book is None or now - book.built_at > _REBUILD:
                book = await self._build(tenant_id)
                self._books[tenant_id] = book
            else:
                await self._refresh(book)
            return book

    async def _build(self, tenant_id: str) -> Book:
        started = self._clock.now()
        items = [item_of(d) async for d in self._store.items.find({"tenant_id": tenant_id}, projection=_ITEM)]
        accounts: dict[str, list[str]] = {}
        names: dict[str, list[str]] = {}
        numbers: dict[str, str] = {}
        async for c in self._store.customers.find({"tenant_id": tenant_id}):
            accounts[c["_id"]] = list(c.get("accounts", []))
            names[c["_id"]] = list(c.get("names", []))
            numbers[c["_id"]] = c.get("number", "")
        book = Book(
            tenant_id,
            OpenItems(items, payer_accounts=accounts, payer_names=names),
            watermark=started,
            built_at=started,
            customer_numbers=numbers,
        )
        log.info("book of tenant %s: %d items, %d customers", tenant_id, len(items), len(numbers))
        return book

    async def _refresh(self, book: Book) -> None:
        started = self._clock.now()
        since = book.watermark - _MARGIN
        query = {"tenant_id": book.tenant_id, "changed_at": {"$gte": since}}
        async for d in self._store.items.find(query, projection=_ITEM):
            book.items.put(item_of(d))
        async for c in self._store.customers.find(query):
            for account in c.get("accounts", []):
                book.items.add_payer_account(c["_id"], account)
            for name in c.get("names", []):
                book.items.add_payer_name(c["_id"], name)
            book.customer_numbers[c["_id"]] = c.get("number", "")
        book.watermark = started


_ITEM: Final = {
    "number": 1,
    "kid": 1,
    "customer_id": 1,
    "customer_number": 1,
    "currency": 1,
    "balance_minor": 1,
    "total_minor": 1,
    "status": 1,
    "due_date": 1,
    "version": 1,
    "pending": 1,
}


class Projection:
    """The consumers' side: the ledger's invoice and customer events into the projection, and the
    ledger's answers to this matcher's proposals (applied, rejected) onto the payments."""

    def __init__(self, store: MatcherStore, clock: Clock, ledger: LedgerClient) -> None:
        self._store = store
        self._clock = clock
        self._ledger = ledger

    async def on_invoice_batch(self, events: list[Event]) -> dict[str, Exception]:
        await self.apply_invoice_events(events)
        return {}

    async def on_invoice_event(self, event: Event) -> None:
        await self.apply_invoice_events([event])

    async def apply_invoice_events(self, events: Sequence[Event]) -> None:
        """Idempotent: versions order the invoice states, and the other changes are set, not added."""
        now = self._clock.now()
        latest: dict[str, tuple[str, InvoiceSummary]] = {}
        applied: dict[str, set[str]] = defaultdict(set)  # invoice id → payment ids the ledger applied
        rejected: list[ProposalRejected] = []
        for event in events:
            if isinstance(event, ProposalRejected):
                rejected.append(event)
                continue
            summary: Any = getattr(event.data, "invoice", None)
            if not isinstance(summary, InvoiceSummary) or summary.kind != "invoice":
                continue
            known = latest.get(summary.invoice_id)
            if known is None or known[1].version <= summary.version:
                latest[summary.invoice_id] = (event.tenant_id, summary)
            if isinstance(event, PaymentApplied):
                applied[summary.invoice_id].add(event.data.payment_id)
        ops: list[UpdateOne | UpdateMany] = []
        stored: dict[str, int] = {}
        for some in in_slices(list(latest)):
            async for d in self._store.items.find({"_id": {"$in": some}}, projection={"version": 1}):
                stored[d["_id"]] = d["version"]
        # One write per invoice: its newest state, and the claims the ledger has now applied.
        for invoice_id in {*latest, *applied}:
            change: Doc = {"$set": {"changed_at": now}}
            if invoice_id in latest:
                tenant_id, summary = latest[invoice_id]
                if stored.get(invoice_id, -1) <= summary.version:
                    change["$set"].update(item_fields(summary), tenant_id=tenant_id)
            if invoice_id in latest and invoice_id not in stored:
                change["$setOnInsert"] = {"pending": {}}
                ops.append(UpdateOne({"_id": invoice_id}, change, upsert=True))
                continue
            if invoice_id in applied:
                change["$unset"] = {f"pending.{pid}": "" for pid in applied[invoice_id]}
            if len(change["$set"]) > 1 or "$unset" in change:
                ops.append(UpdateOne({"_id": invoice_id}, change))
        if ops:
            await self._store.items.bulk_write(ops, ordered=False)
        paid = sorted({pid for pids in applied.values() for pid in pids})
        if paid:
            await self._store.payments.bulk_write(
                [
                    UpdateOne(
                        {"_id": pid, "ledger_state": "proposed"},
                        {"$set": {"ledger_state": "applied", "applied_at": now}},
                    )
                    for pid in paid
                ],
                ordered=False,
            )
        for event in rejected:
            await self._rejected(event, now)

    async def _rejected(self, event: ProposalRejected, now: datetime) -> None:
        data = event.data
        if data.proposal_type not in ("PaymentMatched", "PaymentReversed"):
            return
        # The ledger names the payment; an older ledger only the proposal (found without an index).
        payment = (
            await self._store.payments.find_one({"_id": data.payment_id})
            if data.payment_id
            else await self._store.payments.find_one({"matched_event_id": data.proposal_event_id})
        )
        if payment is not None and payment.get("matched_event_id") != data.proposal_event_id:
            return
        if (
            payment is None
            or payment["tenant_id"] != event.tenant_id
            or payment["ledger_state"] != "proposed"
        ):
            return
        what = "the return" if data.proposal_type == "PaymentReversed" else "the allocation"
        reason = f"the ledger refused {what} ({data.reason}): {data.detail}"
        await self._store.payments.update_one(
            {"_id": payment["_id"], "ledger_state": "proposed"},
            {
                "$set": {
                    "status": "rejected",
                    "ledger_state": "rejected",
                    "reason": reason,
                    "rejected_at": now,
                    "in_review": review_key(payment["sort_key"]),
                },
                "$push": {"evidence": reason},
            },
        )
        if data.proposal_type == "PaymentReversed" and payment.get("reverses_payment_id"):
            # The ledger did not take the original back: it stands as it was.
            original = await self._store.payments.find_one({"_id": payment["reverses_payment_id"]})
            if original is not None and original["status"] == "reversed":
                await self._store.payments.update_one(
                    {"_id": original["_id"], "status": "reversed"},
                    {"$set": {"status": original.get("status_before_return", "matched")}},
                )
        invoice_ids = [a["invoice_id"] for a in payment.get("allocations", [])]
        if invoice_ids:
            await self._store.items.update_many(
                {"_id": {"$in": invoice_ids}},
                {"$unset": {f"pending.{payment['_id']}": ""}, "$set": {"changed_at": now}},
            )
        log.warning("payment %s back in review: %s", payment["_id"], reason)

    async def on_customer_batch(self, events: list[Event]) -> dict[str, Exception]:
        await self.apply_customer_events(events)
        return {}

    async def on_customer_event(self, event: Event) -> None:
        await self.apply_customer_events([event])

    async def apply_customer_events(self, events: Sequence[Event]) -> None:
        """The ledger's customers by id (events carry no personal data; the accounts and names are
        read from the ledger), newer versions only."""
        wanted: dict[str, dict[str, int]] = defaultdict(dict)
        for event in events:
            if isinstance(event, CustomerUpserted):
                d = event.data
                wanted[event.tenant_id][d.customer_id] = max(
                    d.version, wanted[event.tenant_id].get(d.customer_id, 0)
                )
        for tenant_id, versions in wanted.items():
            ids = list(versions)
            stored: dict[str, int] = {}
            for some in in_slices(ids):
                async for doc in self._store.customers.find(
                    {"_id": {"$in": some}}, projection={"version": 1}
                ):
                    stored[doc["_id"]] = doc.get("version", 0)
            todo = [cid for cid in ids if stored.get(cid, -1) < versions[cid]]
            for start in range(0, len(todo), _LEDGER_BATCH):
                found = await self._ledger.customers(tenant_id, todo[start : start + _LEDGER_BATCH])
                await self.save_customers(tenant_id, [customer_doc(c) for c in found.values()])

    async def save_customers(self, tenant_id: str, docs: Sequence[Doc]) -> None:
        now = self._clock.now()
        ops = [
            UpdateOne(
                {
                    "_id": d["_id"],
                    "$or": [{"version": {"$lte": d["version"]}}, {"version": {"$exists": False}}],
                },
                {
                    "$set": {
                        "tenant_id": tenant_id,
                        "number": d["number"],
                        "names": d["names"],
                        "accounts": d["accounts"],
                        "version": d["version"],
                        "changed_at": now,
                    },
                },
                upsert=True,
            )
            for d in docs
        ]
        if ops:
            try:
                await self._store.customers.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                # An upsert that lost to a newer version stored meanwhile is a duplicate key: fine.
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise


def customer_doc(c: Any) -> Doc:
    """A ledger `Customer` message as the projection keeps it."""
    accounts = [*c.bank_accounts, *getattr(c, "learned_bank_accounts", ())]
    return {
        "_id": c.id,
        "number": c.number,
        "names": [c.name] if c.name else [],
        "accounts": [a for a in accounts if a],
        "version": int(c.version),
    }
