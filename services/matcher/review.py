"""ResolvePayment: an operator's decision on a payment in the review queue.

Allocating proposes the payment to the ledger like an automatic match would (PaymentMatched, method
"manual"), with PaymentResolved for dunning. When the payer's account belongs to no customer yet, it
is learned (PayerAccountLearned: the ledger records it on the customer, so the next payment from it
matches by itself). A refund closes the payment without touching the ledger. A payment is resolved
once: a second decision, or one on a payment not in review, is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from services.common.clock import Clock
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from services.common.events import (
    PAYMENT_TOPIC,
    Allocation,
    Event,
    PayerAccountLearned,
    PayerAccountLearnedData,
    PaymentMatched,
    PaymentMatchedData,
    PaymentResolved,
    PaymentResolvedData,
)
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import add_to_outbox
from services.common.text import check_text
from services.matcher.book import Book, Books
from services.matcher.domain.open_items import normalise_account
from services.matcher.importing import MAX_REFERENCE, Importer, claim
from services.matcher.store import OPEN_REVIEW, MatcherStore

MAX_NOTE: Final = 500
MAX_ALLOCATIONS: Final = 100


@dataclass(frozen=True)
class AllocationInput:
    invoice_id: str
    invoice_number: str
    amount_minor: int


@dataclass(frozen=True)
class Resolution:
    payment_id: str
    refund: bool
    allocations: tuple[AllocationInput, ...] = ()
    customer_number: str = ""
    learn_account: bool = True
    note: str = ""
    actor: str = ""


class Resolver:
    def __init__(
        self,
        store: MatcherStore,
        books: Books,
        importer: Importer,
        clock: Clock,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._books = books
        self._importer = importer
        self._clock = clock
        self._on_commit = on_commit

    async def resolve(self, tenant_id: str, r: Resolution) -> Doc:
        v = Violations()
        check_text(r.note, "note", MAX_NOTE, v, multiline=True)
        if not r.refund and not r.allocations and not r.customer_number:
            v.add("allocate", "give allocations, or a customer_number whose credit balance takes it all")
        if len(r.allocations) > MAX_ALLOCATIONS:
            v.add("allocate.allocations", f"at most {MAX_ALLOCATIONS}")
        for i, a in enumerate(r.allocations):
            if a.amount_minor <= 0:
                v.add(f"allocate.allocations[{i}].amount_minor", "must be positive")
            if not (a.invoice_id or a.invoice_number):
                v.add(f"allocate.allocations[{i}]", "give invoice_id or invoice_number")
        v.raise_if_any()
        payment = await self._store.payment(tenant_id, r.payment_id)
        if payment is None:
            raise NotFound(f"no payment {r.payment_id}")
        _check_open(payment)
        # One writer of the tenant's open amounts at a time: an import running now finishes first.
        async with self._importer.tenant_lease(tenant_id, wait=30.0):
            book = await self._books.of(tenant_id)
            async with book.lock:
                payment = await self._store.payment(tenant_id, r.payment_id)
                assert payment is not None
                _check_open(payment)
                try:
                    return await self._apply(tenant_id, payment, r, book)
                except BaseException:
                    self._books.drop(tenant_id)
                    raise

    async def _apply(self, tenant_id: str, payment: Doc, r: Resolution, book: Book) -> Doc:
        now = self._clock.now()
        pid = payment["_id"]
        events: list[tuple[Event, str]] = []
        update: Doc = {"resolved_by": r.actor, "note": r.note, "resolved_at": now, "decided_at": now}
        claims: dict[str, int] = {}
        if r.refund:
            update.update(status="refunded", method="manual", allocations=[], credit_minor=0)
            events.append((_resolved(tenant_id, pid, "refund", [], r.actor, now), PAYMENT_TOPIC))
        else:
            allocations, customer_id = self._allocations(book, payment, r)
            allocated = sum(a["amount_minor"] for a in allocations)
            credit = payment["amount_minor"] - allocated
            if credit and not customer_id:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            "allocate.customer_number",
                            f"{credit} of the payment is allocated to no invoice: name the customer whose "
                            "credit balance takes it",
                        )
                    ]
                )
            matched = PaymentMatched(
                tenant_id=tenant_id,
                subject=pid,
                occurred_at=now,
                data=PaymentMatchedData(
                    payment_id=pid,
                    amount_minor=payment["amount_minor"],
                    currency=payment["currency"],
                    paid_on=payment["paid_on"],
                    method="manual",
                    reference=(payment["reference"] or payment["free_text"])[:MAX_REFERENCE],
                    payer_account=payment["payer_account"][:64],
                    customer_id=customer_id,
                    allocations=[
                        Allocation(
                            invoice_id=a["invoice_id"],
                            amount_minor=a["amount_minor"],
                            based_on_version=a["version"],
                        )
                        for a in allocations
                    ],
                ),
            )
            invoice_ids = [a["invoice_id"] for a in allocations]
            events.append(
                (
                    _resolved(
                        tenant_id, pid, "allocated" if allocations else "credit", invoice_ids, r.actor, now
                    ),
                    PAYMENT_TOPIC,
                )
            )
            events.append((matched, PAYMENT_TOPIC))
            account = payment["payer_account"]
            learned = ""
            if (
                r.learn_account
                and account
                and customer_id
                and customer_id not in book.items.customers_by_account(account)
                and normalise_account(account)
            ):
                learned = account
                events.append(
                    (
                        PayerAccountLearned(
                            tenant_id=tenant_id,
                            subject=customer_id,
                            occurred_at=now,
                            data=PayerAccountLearnedData(
                                customer_id=customer_id, account=account, payment_id=pid
                            ),
                        ),
                        PAYMENT_TOPIC,
                    )
                )
            for a in allocations:
                claims[a["invoice_id"]] = claims.get(a["invoice_id"], 0) + a["amount_minor"]
            update.update(
                status="resolved",
                method="manual",
                confidence=1.0,
                allocations=[
                    {k: a[k] for k in ("invoice_id", "invoice_number", "amount_minor")} for a in allocations
                ],
                credit_minor=credit,
                customer_id=customer_id,
                customer_number=book.customer_numbers.get(customer_id, "") or r.customer_number,
                ledger_state="proposed",
                matched_event_id=matched.id,
                learned_account=learned,
                candidate_invoice_ids=invoice_ids,
            )

        async def work(s: Session) -> Doc | None:
            done = await self._store.payments.find_one_and_update(
                {"_id": pid, "status": {"$in": list(OPEN_REVIEW)}},
                {
                    "$unset": {"in_review": ""},
                    "$set": update,
                    "$push": {"evidence": f"resolved by {r.actor or 'an operator'}: {r.note}".rstrip(": ")},
                },
                session=s,
                return_document=True,
            )
            if done is None:
                return None
            for invoice_id, amount in claims.items():
                await self._store.items.update_one(
                    {"_id": invoice_id}, {"$set": {f"pending.{pid}": amount, "changed_at": now}}, session=s
                )
            if update.get("learned_account"):
                await self._store.customers.update_one(
                    {"_id": update["customer_id"]},
                    {"$addToSet": {"accounts": update["learned_account"]}, "$set": {"changed_at": now}},
                    session=s,
                )
            await add_to_outbox(self._store.db, s, events)
            return done

        done = await in_transaction(self._store.client, work)
        if done is None:
            raise FailedPrecondition(f"payment {pid} was decided meanwhile", reason="NOT_IN_REVIEW")
        for invoice_id, amount in claims.items():
            claim(book, invoice_id, amount)
        if update.get("learned_account"):
            book.items.add_payer_account(update["customer_id"], update["learned_account"])
        self._on_commit()
        return done

    def _allocations(self, book: Book, payment: Doc, r: Resolution) -> tuple[list[Doc], str]:
        v = Violations()
        out: list[Doc] = []
        customers: set[str] = set()
        left = payment["amount_minor"]
        for i, a in enumerate(r.allocations):
            item = (
                book.items.get(a.invoice_id)
                if a.invoice_id
                else book.items.by_invoice_number(a.invoice_number)
            )
            where = f"allocate.allocations[{i}]"
            if item is None:
                v.add(where, f"no invoice {a.invoice_id or a.invoice_number}")
                continue
            if item.currency != payment["currency"]:
                v.add(
                    where,
                    f"invoice {item.invoice_number} is in {item.currency}, "
                    f"the payment in {payment['currency']}",
                )
            if not item.is_open:
                v.add(where, f"invoice {item.invoice_number} is {item.status}: nothing is owed on it")
            elif a.amount_minor > item.open_minor:
                v.add(
                    f"{where}.amount_minor",
                    f"more than invoice {item.invoice_number} owes ({item.open_minor}); "
                    "leave the rest as credit",
                )
            left -= a.amount_minor
            customers.add(item.customer_id)
            out.append(
                {
                    "invoice_id": item.invoice_id,
                    "invoice_number": item.invoice_number,
                    "amount_minor": a.amount_minor,
                    "version": item.version,
                }
            )
        if left < 0:
            v.add("allocate.allocations", f"the allocations exceed the payment ({payment['amount_minor']})")
        customer_id = ""
        if r.customer_number:
            found = [cid for cid, number in book.customer_numbers.items() if number == r.customer_number]
            if not found:
                found = [i.customer_id for i in book.items if i.customer_number == r.customer_number][:1]
            if not found:
                v.add("allocate.customer_number", f"no customer {r.customer_number!r}")
            else:
                customer_id = found[0]
        elif len(customers) == 1:
            customer_id = next(iter(customers))
        v.raise_if_any()
        return out, customer_id


def _check_open(payment: Doc) -> None:
    if payment["status"] not in OPEN_REVIEW:
        raise FailedPrecondition(
            f"payment {payment['_id']} is {payment['status']}, not in review", reason="NOT_IN_REVIEW"
        )


def _resolved(
    tenant_id: str,
    pid: str,
    resolution: Literal["allocated", "credit", "refund"],
    invoice_ids: Sequence[str],
    actor: str,
    now: datetime,
) -> PaymentResolved:
    return PaymentResolved(
        tenant_id=tenant_id,
        subject=pid,
        occurred_at=now,
        data=PaymentResolvedData(
            payment_id=pid, resolution=resolution, invoice_ids=list(invoice_ids), actor=actor
        ),
    )
