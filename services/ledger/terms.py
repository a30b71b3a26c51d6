"""`fordring.ledger.v1.InvoiceTermsService`: customer service gives a customer more time.

A later due date is agreed before the invoice falls due (open or part-paid, due today or later): an
overdue invoice is past that point (its status cannot go back to open, and dunning has begun to
count). The change is written with its history entry ("due_date_changed", a new version) and
DueDateChanged in one transaction; dunning and the dispatcher take the new date from the event's
invoice summary, like any other change. Idempotent by key.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import grpc
from fordring.ledger.v1 import terms_pb2 as pb
from fordring.ledger.v1 import terms_pb2_grpc

from services.common.clock import Clock
from services.common.errors import AlreadyExists, FailedPrecondition, Violations
from services.common.events import DueDateChanged, DueDateChangedData
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.common.text import check_text
from services.ledger.changes import Changes, invoice_event
from services.ledger.convert import invoice_to_pb
from services.ledger.documents import Ctx, changed_invoice, request_ctx, summary
from services.ledger.domain.invoice import MAX_TEXT, check_length
from services.ledger.domain.status import InvoiceStatus
from services.ledger.payments import MAX_KEY, request_hash

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["InvoiceTermsService"].full_name
# More time, not a new contract: at most this far after the current due date.
MAX_EXTENSION_DAYS: Final = 366
_MOVABLE: Final = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PART_PAID})


async def change_due_date(
    changes: Changes, ctx: Ctx, *, invoice_id: str, due: str, reason: str, key: str
) -> Doc:
    v = Violations()
    new_due: date | None = None
    try:
        new_due = date.fromisoformat(due)
    except ValueError:
        v.add("due_date", "an ISO date (YYYY-MM-DD)")
    if not invoice_id:
        v.add("invoice_id", "required")
    if not key.strip():
        v.add("idempotency_key", "required")
    check_length(key, "idempotency_key", MAX_KEY, v)
    check_text(reason, "reason", MAX_TEXT, v, multiline=True)
    v.raise_if_any()
    assert new_due is not None
    fingerprint = request_hash({"due_date": due, "reason": reason})
    invoice = await changes.resolve_invoice(ctx, invoice_id=invoice_id)

    def replayed(inv: Doc) -> Doc | None:
        done = (inv.get("due_date_changes") or {}).get(key)
        if done is None:
            return None
        if done != fingerprint:
            raise AlreadyExists(f"idempotency key {key!r} was already used for another due date")
        return inv

    if (again := replayed(invoice)) is not None:
        return again

    async def work(s: Session) -> Doc:
        inv = await changes.load(s, ctx, invoice["_id"])
        if (again := replayed(inv)) is not None:
            return again
        before = date.fromisoformat(inv["due_date"])
        if inv["kind"] != "invoice" or InvoiceStatus(inv["status"]) not in _MOVABLE or before < ctx.today:
            raise FailedPrecondition(
                f"the due date of a {inv['status']} invoice cannot be moved (only before it falls due)",
                reason="DUE_DATE_FIXED",
            )
        if not before < new_due <= before.fromordinal(before.toordinal() + MAX_EXTENSION_DAYS):
            raise FailedPrecondition(
                f"the new due date must be after {before} and at most {MAX_EXTENSION_DAYS} days after it",
                reason="DUE_DATE_OUT_OF_RANGE",
            )
        event_id = new_id()
        new = changed_invoice(
            inv,
            ctx,
            event_id=event_id,
            type_="due_date_changed",
            text=f"due date moved from {before} to {new_due}" + (f": {reason}" if reason else ""),
            due_date=new_due.isoformat(),
            due_date_changes={**(inv.get("due_date_changes") or {}), key: fingerprint},
        )
        data = DueDateChangedData(invoice=summary(new), due_date_before=before.isoformat())
        await changes.save(
            s, inv, new, events=[invoice_event(ctx, event_id, inv["_id"], DueDateChanged, data)]
        )
        return new

    async with changes.key_lock(ctx.tenant.id, "due-date", key):
        return await changes.run(work)


class InvoiceTermsApi(terms_pb2_grpc.InvoiceTermsServiceServicer):
    def __init__(self, changes: Changes, clock: Clock) -> None:
        self._changes = changes
        self._clock = clock

    async def ChangeDueDate(  # noqa: N802 - gRPC method name
        self, request: pb.ChangeDueDateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ChangeDueDateResponse:
        ctx = request_ctx(self._clock)
        doc = await change_due_date(
            self._changes,
            ctx,
            invoice_id=request.invoice_id,
            due=request.due_date,
            reason=request.reason,
            key=request.idempotency_key,
        )
        return pb.ChangeDueDateResponse(invoice=invoice_to_pb(doc))
