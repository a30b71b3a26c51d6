"""How the ledger changes: each change writes the invoice (with its history entry), the journal
postings and the outgoing events in one MongoDB transaction."""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel

from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.common.events import (
    CUSTOMER_TOPIC,
    INVOICE_TOPIC,
    CustomerCreditChanged,
    CustomerCreditChangedData,
    Event,
)
from services.common.ids import new_id
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import add_to_outbox
from services.ledger.documents import Ctx
from services.ledger.store import ConcurrentChange, LedgerStore

T = TypeVar("T")
_ATTEMPTS = 5


def invoice_event(
    ctx: Ctx, event_id: str, subject: str, event_type: Callable[..., Event], data: BaseModel
) -> tuple[Event, str]:
    """An event about an invoice (`PaymentApplied`, `InvoiceOverdue`, …) and its topic.
    `event_id` is the id of the history entry it announces."""
    return _envelope(ctx, event_id, subject, event_type, data), INVOICE_TOPIC


def customer_event(
    ctx: Ctx, customer_id: str, event_type: Callable[..., Event], data: BaseModel
) -> tuple[Event, str]:
    """An event about a customer (`CustomerUpserted`, `CustomerCreditChanged`) and its topic."""
    return _envelope(ctx, new_id(), customer_id, event_type, data), CUSTOMER_TOPIC


def _envelope(
    ctx: Ctx, event_id: str, subject: str, event_type: Callable[..., Event], data: BaseModel
) -> Event:
    return event_type(id=event_id, tenant_id=ctx.tenant.id, subject=subject, occurred_at=ctx.now, data=data)


def credit_changed(ctx: Ctx, customer: Doc, currency: str, amount: int, reason: str) -> tuple[Event, str]:
    """CustomerCreditChanged: the customer's credit balance (as it is after the change) moved by `amount`."""
    data = CustomerCreditChangedData(
        customer_id=customer["_id"],
        customer_number=customer["number"],
        currency=currency,
        credit_balance_minor=int(customer["credit_balances"][currency]),
        change_minor=amount,
        reason=reason,
    )
    return customer_event(ctx, customer["_id"], CustomerCreditChanged, data)


class Changes:
    def __init__(self, store: LedgerStore, on_commit: Callable[[], None]) -> None:
        self.store = store
        self._on_commit = on_commit
        self._series_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Weak: a key's lock lives only while a call holds or waits for it.
        self._key_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def series_lock(self, tenant_id: str, series: str) -> asyncio.Lock:
        """Serialises the writers of one numbering series in this replica."""
        return self._series_locks[f"{tenant_id}:{series}"]

    async def run(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """One transaction, retried when an invoice changed under us (optimistic concurrency)."""
        for _ in range(_ATTEMPTS):
            try:
                result = await in_transaction(self.store.client, work)
            except ConcurrentChange:
                continue
            self._on_commit()
            return result
        raise FailedPrecondition(
            "the invoice kept changing while we wrote; try again", reason="CONCURRENT_CHANGE"
        )

    async def load(self, session: Session, ctx: Ctx, invoice_id: str) -> Doc:
        doc = await self.store.invoice_by_id(ctx.tenant.id, invoice_id, session=session)
        if doc is None:
            raise NotFound(f"no invoice {invoice_id}")
        return doc

    async def resolve_invoice(self, ctx: Ctx, *, invoice_id: str = "", invoice_number: str = "") -> Doc:
        ref = {"invoice_id": invoice_id} if invoice_id else {"invoice_number": invoice_number}
        if not (invoice_id or invoice_number):
            raise InvalidArgument([FieldViolation("invoice_ref", "give invoice_id or invoice_number")])
        doc = await self.store.invoice(ctx.tenant.id, **ref)
        if doc is None:
            raise NotFound(f"no invoice {invoice_id or invoice_number}")
        return doc

    async def save(
        self,
        session: Session,
        before: Doc,
        after: Doc,
        *,
        journal: Sequence[Doc] = (),
        events: Sequence[tuple[Event, str]] = (),
    ) -> None:
        """Replace the invoice if nobody changed it since `before` was read, then `record` the rest."""
        await self.store.replace_invoice(session, after, before["version"])
        await self.record(session, journal=journal, events=events)

    async def record(
        self, session: Session, *, journal: Sequence[Doc] = (), events: Sequence[tuple[Event, str]] = ()
    ) -> None:
        """Journal postings and outgoing events, in the caller's transaction."""
        await self.store.add_journal(session, journal)
        await add_to_outbox(self.store.db, session, events)

    async def credit_customer(
        self, session: Session, ctx: Ctx, inv: Doc, amount: int, reason: str
    ) -> tuple[Event, str]:
        """Add to the credit balance of the invoice's customer, in the invoice's currency."""
        return await self.credit_payer(session, ctx, inv["customer_id"], inv["currency"], amount, reason)

    async def credit_payer(
        self, session: Session, ctx: Ctx, customer_id: str, currency: str, amount: int, reason: str
    ) -> tuple[Event, str]:
        """Add to a customer's credit balance (of this tenant); returns the event to record."""
        customer = await self.store.change_credit_balance(
            session, ctx.tenant.id, customer_id, currency, amount, ctx.now
        )
        return credit_changed(ctx, customer, currency, amount, reason)

    def key_lock(self, tenant_id: str, kind: str, key: str) -> asyncio.Lock:
        """Serialises, in this replica, the calls that carry one idempotency key: a retry arriving
        while the first call is still writing waits for it and answers with its result."""
        name = f"{tenant_id}:{kind}:{key}"
        lock = self._key_locks.get(name)
        if lock is None:
            lock = self._key_locks[name] = asyncio.Lock()
        return lock
