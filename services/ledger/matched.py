"""The matcher's PaymentMatched proposals, a batch at a time.

A bank file brings thousands of payments at once; one transaction each (a few hundred a second on the
embedded server) would make the ledger the bottleneck of every import. A batch is applied in one
transaction with the rules of the one-at-a-time path (services/ledger/proposals.py): each proposal is
checked, applied to its invoices as the proposals before it in the batch left them, or refused with
its reason, and its event id is recorded as processed. The reads are one query each (processed
markers, payments by key, invoices by id; in slices of 100 ids, `in_slices`), the writes one command
per collection. Should the batch
transaction fail for a reason that does not pass by itself, the caller applies its proposals one at
a time, so that one bad proposal never holds back the others.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from pymongo import UpdateOne
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from services.common.bus import processed_among, record_processed_many
from services.common.errors import InvalidArgument, Unavailable
from services.common.events import Event, PaymentMatched
from services.common.mongo import Doc, Session, in_slices
from services.common.outbox import add_to_outbox
from services.ledger.changes import Changes, credit_changed
from services.ledger.documents import Ctx
from services.ledger.metrics import PAYMENTS_APPLIED, PROPOSALS
from services.ledger.payments import (
    Payment,
    PaymentPlan,
    UnknownTarget,
    credit_reason,
    payment_doc,
    plan_payment,
)
from services.ledger.proposals import (
    PROPOSALS_CONSUMER,
    REFUSALS,
    check_payment_matched,
    first_invoice_id,
    payment_of,
    reason_of,
    rejection,
)
from services.ledger.store import ConcurrentChange

log = logging.getLogger(__name__)

# Proposals per transaction (the consumer's batch): ~2,500 documents written per transaction.
MAX_BATCH: Final = 500
# Documents per write command inside the batch's transaction (`_Batch._write`).
WRITE_SLICE: Final = 100
# What applying a payment reads of an invoice. The history stays on the server (entries are pushed),
# and so do the lines.
_INVOICE_FIELDS: Final = dict.fromkeys(
    (
        "tenant_id",
        "kind",
        "invoice_number",
        "kid",
        "customer_id",
        "customer_number",
        "customer_kind",
        "currency",
        "issue_date",
        "due_date",
        "gross_minor",
        "charges_minor",
        "paid_minor",
        "credited_minor",
        "written_off_minor",
        "overpaid_minor",
        "balance_minor",
        "status",
        "dunning_stage",
        "version",
        "language",
        "profile_version",
        "allocations",
    ),
    1,
)
_CUSTOMER_FIELDS: Final = {"tenant_id": 1, "number": 1, "credit_balances": 1, "version": 1}

Key = tuple[str, str]  # (tenant id, document id)
T = TypeVar("T")


def passes_by_itself(exc: BaseException) -> bool:
    """An error that is not the batch's fault (the database away, a timeout, a conflict the server
    asks to retry): the batch comes again as it is, rather than one proposal at a time."""
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError | OSError | Unavailable):
        return True
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


@dataclass(frozen=True)
class Outcome:
    event: PaymentMatched
    # "applied", "duplicate" or "rejected:<REASON>".
    outcome: str


class MatchedBatch:
    """Applies PaymentMatched proposals, many in one transaction."""

    def __init__(self, changes: Changes) -> None:
        self._changes = changes

    async def apply(self, items: Sequence[tuple[Ctx, PaymentMatched]]) -> list[Outcome]:
        """Apply the proposals not applied before, in order, in one transaction. Raises when the
        transaction fails: the caller applies them one at a time then (or, when the error passes by
        itself, has the batch delivered again)."""
        unique: dict[str, tuple[Ctx, PaymentMatched]] = {}
        for ctx, event in items:
            unique.setdefault(event.id, (ctx, event))
        done: set[str] = set()
        for chunk in in_slices(list(unique)):
            done |= await processed_among(self._changes.store.db, PROPOSALS_CONSUMER, chunk)
        todo = [item for event_id, item in unique.items() if event_id not in done]
        if not todo:
            return []
        outcomes = await self._changes.run(lambda s: _Batch(self._changes, s, todo).apply())
        for o in outcomes:
            PROPOSALS.add(1, {"type": o.event.type, "outcome": o.outcome})
            if o.outcome == "applied":
                PAYMENTS_APPLIED.add(1, {"method": o.event.data.method})
        return outcomes


@dataclass
class _Batch:
    """One attempt at a batch's transaction: the invoices and customers as the proposals so far left
    them, and everything to write at the end."""

    changes: Changes
    s: Session
    items: Sequence[tuple[Ctx, PaymentMatched]]
    read: dict[Key, Doc] = field(default_factory=dict)
    invoices: dict[Key, Doc] = field(default_factory=dict)
    # Invoices whose amounts changed (written on condition of the version read), and history
    # entries to push (payments and refusals).
    changed: set[Key] = field(default_factory=set)
    history: dict[Key, list[Doc]] = field(default_factory=lambda: defaultdict(list))
    # The histories read for the stale check (only of invoices credited after a proposal's version).
    histories: dict[Key, list[Doc]] = field(default_factory=dict)
    customers: dict[str, Doc | None] = field(default_factory=dict)
    credits: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    # Credit balance changes per customer: its version moves once for each, as one at a time.
    credit_changes: Counter[str] = field(default_factory=Counter)
    keys: set[Key] = field(default_factory=set)
    payments: list[Doc] = field(default_factory=list)
    entries: list[Doc] = field(default_factory=list)
    events: list[tuple[Event, str]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    async def apply(self) -> list[Outcome]:
        store = self.changes.store
        first = self.items[0][0]
        await record_processed_many(
            store.db, self.s, PROPOSALS_CONSUMER, [e.id for _, e in self.items], first.now
        )
        proposals: list[tuple[Ctx, PaymentMatched, Payment | InvalidArgument]] = []
        for ctx, event in self.items:
            try:
                check_payment_matched(event.data)
            except InvalidArgument as exc:
                proposals.append((ctx, event, exc))
            else:
                proposals.append((ctx, event, payment_of(event)))
        await self._read_invoices(proposals)
        await self._read_payment_keys(proposals)
        await self._read_customers(proposals)
        for ctx, event, payment in proposals:
            if isinstance(payment, InvalidArgument):
                self._reject(ctx, event, "INVALID_PROPOSAL", payment.message)
            elif (ctx.tenant.id, payment.idempotency_key) in self.keys:
                # The same payment id came in another event: applied already (idempotent by payment).
                log.info("payment %s from event %s was applied before", payment.payment_id, event.id)
                self.outcomes.append(Outcome(event, "duplicate"))
            else:
                await self._apply(ctx, event, payment)
        await self._write()
        return self.outcomes

    async def _read_invoices(self, proposals: Sequence[tuple[Ctx, PaymentMatched, object]]) -> None:
        """Every invoice the batch names, by `_id` alone (point lookups on any server; in slices of
        100 ids: the embedded server matches each document it finds against the whole `$in` list, 0.11
        ms a document at 100 ids and 0.32 ms at 500); another tenant's invoice is not found."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for ctx, event, _ in proposals:
            wanted[ctx.tenant.id].update(a.invoice_id for a in event.data.allocations)
        ids = sorted({i for ids in wanted.values() for i in ids})
        for chunk in in_slices(ids):
            # At most one document per id: with the limit the server closes the cursor at once (a
            # cursor left open costs a getMore that returns nothing).
            found = self.changes.store.invoices.find(
                {"_id": {"$in": chunk}},
                projection=_INVOICE_FIELDS,
                limit=len(chunk),
                batch_size=len(chunk),
                session=self.s,
            )
            async for doc in found:
                if doc["_id"] in wanted.get(doc["tenant_id"], ()):
                    key = (doc["tenant_id"], doc["_id"])
                    self.read[key] = self.invoices[key] = doc
        # A proposal based on an older version is refused if the invoice was credited since: that
        # needs the history, read only for invoices with something credited that a proposal saw older.
        stale = {
            key
            for ctx, event, payment in proposals
            if isinstance(payment, Payment)
            for invoice_id, version in payment.based_on_versions
            if (key := (ctx.tenant.id, invoice_id)) in self.read
            and self.read[key]["version"] > version
            and self.read[key].get("credited_minor", 0)
        }
        if stale:
            found = self.changes.store.invoices.find(
                {"_id": {"$in": sorted(i for _, i in stale)}}, projection={"history": 1}, session=self.s
            )
            histories = {doc["_id"]: doc.get("history", []) async for doc in found}
            for key in stale:
                self.histories[key] = histories.get(key[1], [])
                self.invoices[key] = {**self.invoices[key], "history": self.histories[key]}

    async def _read_payment_keys(self, proposals: Sequence[tuple[Ctx, PaymentMatched, object]]) -> None:
        """The payments stored already under the batch's keys (on the unique index, 100 keys a query)."""
        keys: dict[str, list[str]] = defaultdict(list)
        for ctx, _, payment in proposals:
            if isinstance(payment, Payment):
                keys[ctx.tenant.id].append(payment.idempotency_key)
        for tenant_id, tenant_keys in keys.items():
            for some in in_slices(tenant_keys):
                found = self.changes.store.payments.find(
                    {"tenant_id": tenant_id, "idempotency_key": {"$in": some}},
                    projection={"idempotency_key": 1},
                    session=self.s,
                )
                self.keys.update([(tenant_id, d["idempotency_key"]) async for d in found])

    async def _read_customers(self, proposals: Sequence[tuple[Ctx, PaymentMatched, object]]) -> None:
        """The customers whose credit balance a proposal may change (more than its invoices owe now),
        in one query; one the batch's own payments make over-paid is read when it comes to that."""
        wanted: set[str] = set()
        for ctx, event, payment in proposals:
            if not isinstance(payment, Payment):
                continue
            invoices = [self.invoices.get((ctx.tenant.id, a.invoice_id)) for a in event.data.allocations]
            owed = sum(inv["balance_minor"] for inv in invoices if inv is not None)
            if payment.amount_minor > owed:
                customers = {inv["customer_id"] for inv in invoices if inv is not None}
                wanted.add(payment.customer_id or (customers.pop() if len(customers) == 1 else ""))
        wanted.discard("")
        if wanted:
            found = self.changes.store.customers.find(
                {"_id": {"$in": sorted(wanted)}}, projection=_CUSTOMER_FIELDS, session=self.s
            )
            self.customers.update({d["_id"]: d async for d in found})

    async def _customer(self, tenant_id: str, customer_id: str) -> Doc | None:
        if customer_id not in self.customers:
            self.customers[customer_id] = await self.changes.store.customers.find_one(
                {"_id": customer_id}, projection=_CUSTOMER_FIELDS, session=self.s
            )
        doc = self.customers[customer_id]
        return doc if doc is not None and doc["tenant_id"] == tenant_id else None

    async def _apply(self, ctx: Ctx, event: PaymentMatched, payment: Payment) -> None:
        tenant_id = ctx.tenant.id
        try:
            plan = plan_payment(ctx, payment, lambda invoice_id: self.invoices.get((tenant_id, invoice_id)))
            customer = None
            if plan.unallocated:
                customer = await self._customer(tenant_id, plan.payer)
                if customer is None:
                    raise UnknownTarget(f"no customer {plan.payer}", reason="UNKNOWN_CUSTOMER")
        except REFUSALS as exc:
            self._reject(ctx, event, reason_of(exc), exc.message)
            return
        self._keep(ctx, payment, plan)
        if customer is not None:
            self._credit(ctx, customer, payment, plan)
        self.keys.add((tenant_id, payment.idempotency_key))
        self.outcomes.append(Outcome(event, "applied"))

    def _keep(self, ctx: Ctx, payment: Payment, plan: PaymentPlan) -> None:
        for _, after in plan.changed:
            key = (ctx.tenant.id, after["_id"])
            # The new history entry is pushed at the end; the invoice carries on without it.
            self.history[key].append(after.pop("history")[-1])
            if key in self.histories:
                after["history"] = self.histories[key]
            self.invoices[key] = after
            self.changed.add(key)
        self.events.extend(plan.events)
        self.entries.extend(plan.entries)
        self.payments.append(payment_doc(ctx, payment, plan))

    def _credit(self, ctx: Ctx, customer: Doc, payment: Payment, plan: PaymentPlan) -> None:
        currency = payment.currency
        balances = customer.setdefault("credit_balances", {})
        balances[currency] = balances.get(currency, 0) + plan.unallocated
        self.credits[customer["_id"]][currency] += plan.unallocated
        self.credit_changes[customer["_id"]] += 1
        self.events.append(
            credit_changed(ctx, customer, currency, plan.unallocated, credit_reason(payment.payment_id))
        )

    def _reject(self, ctx: Ctx, event: PaymentMatched, reason: str, detail: str) -> None:
        invoice_id = first_invoice_id(event)
        key = (ctx.tenant.id, invoice_id)
        announced, entry = rejection(ctx, event, invoice_id, reason, detail, self.invoices.get(key))
        if entry is not None:
            self.history[key].append(entry)
        self.events.append(announced)
        self.outcomes.append(Outcome(event, f"rejected:{reason}"))

    async def _write(self) -> None:
        """Each collection's writes, WRITE_SLICE documents a command: one statement of a whole batch
        (500 invoice updates, over a second of the embedded server's time on a quiet machine) can
        outlast its transaction lifetime on a busy one (5 s in `fordring up`, counted from the
        statement's start); the server then aborts the transaction and every retry alike."""
        store, s = self.changes.store, self.s
        now = self.items[0][0].now
        for payments in _slices(self.payments):
            await store.payments.insert_many(payments, ordered=False, session=s)
        updates = []
        for key in self.changed | set(self.history):
            change: Doc = {}
            if key in self.changed:
                before, after = self.read[key], self.invoices[key]
                change["$set"] = {
                    k: v for k, v in after.items() if k not in ("_id", "history") and before.get(k) != v
                }
            if self.history.get(key):
                change["$push"] = {"history": {"$each": self.history[key]}}
            # Point updates on `_id` alone: the tenant was checked on the document read, and the
            # snapshot transaction refuses the write (a write conflict: the batch is tried again) if
            # anyone changed the invoice since. A filter with more fields costs the embedded server a
            # planning pass per document.
            updates.append(UpdateOne({"_id": key[1]}, change))
        for some in _slices(updates):
            result = await store.invoices.bulk_write(some, ordered=False, session=s)
            if result.matched_count != len(some):
                raise ConcurrentChange(f"{len(some) - result.matched_count} of the batch's invoices")
        if self.credits:
            await store.customers.bulk_write(
                [
                    UpdateOne(
                        {"_id": customer_id},
                        {
                            "$inc": {
                                **{f"credit_balances.{c}": amount for c, amount in by_currency.items()},
                                "version": self.credit_changes[customer_id],
                            },
                            "$set": {"updated_at": now},
                        },
                    )
                    for customer_id, by_currency in self.credits.items()
                ],
                ordered=False,
                session=s,
            )
        for entries in _slices(self.entries):
            await store.add_journal(s, entries)
        for events in _slices(self.events):
            await add_to_outbox(store.db, s, events)


def _slices(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), WRITE_SLICE):
        yield items[start : start + WRITE_SLICE]
