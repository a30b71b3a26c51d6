"""What happens to an invoice as time passes or collection ends: overdue, written off."""

from __future__ import annotations

import logging
from datetime import date

from services.common.errors import FordringError, Violations
from services.common.events import (
    InvoiceOverdue,
    InvoiceOverdueData,
    InvoiceWrittenOff,
    InvoiceWrittenOffData,
)
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import Ctx, changed_invoice, journal_entry, position_of, summary
from services.ledger.domain import journal
from services.ledger.domain.status import InvoiceStatus, check_can_write_off
from services.ledger.metrics import INVOICES_OVERDUE

log = logging.getLogger(__name__)


async def write_off(
    changes: Changes, ctx: Ctx, *, invoice_id: str, invoice_number: str, key: str, reason: str
) -> tuple[Doc, bool]:
    """Write off what is left to pay; returns the invoice and whether it was written off now."""
    v = Violations()
    if not key.strip():
        v.add("idempotency_key", "required")
    if not reason.strip():
        v.add("reason", "required")
    v.raise_if_any()
    invoice = await changes.resolve_invoice(ctx, invoice_id=invoice_id, invoice_number=invoice_number)
    if invoice.get("write_off_key") == key:
        return invoice, False

    async def work(s: Session) -> Doc:
        inv = await changes.load(s, ctx, invoice["_id"])
        pos = position_of(inv)
        check_can_write_off(InvoiceStatus(inv["status"]), pos)
        event_id = new_id()
        new = changed_invoice(
            inv,
            ctx,
            event_id=event_id,
            type_="written_off",
            text=f"{pos.balance} {inv['currency']} written off: {reason}",
            written_off_minor=pos.written_off + pos.balance,
            write_off_key=key,
        )
        entry = journal_entry(
            ctx,
            invoice_id=inv["_id"],
            kind="written_off",
            currency=inv["currency"],
            postings=journal.written_off(pos.balance),
        )
        data = InvoiceWrittenOffData(invoice=summary(new), amount_minor=pos.balance, reason=reason)
        event = invoice_event(ctx, event_id, inv["_id"], InvoiceWrittenOff, data)
        await changes.save(s, inv, new, journal=[entry], events=[event])
        return new

    return await changes.run(work), True


async def mark_overdue(changes: Changes, ctx: Ctx, invoice_id: str) -> bool:
    """Move one invoice past its due date to overdue (announced, so dunning can start)."""

    async def work(s: Session) -> bool:
        inv = await changes.load(s, ctx, invoice_id)
        if inv["status"] not in (InvoiceStatus.OPEN, InvoiceStatus.PART_PAID):
            return False
        if date.fromisoformat(inv["due_date"]) >= ctx.today:
            return False
        event_id = new_id()
        new = changed_invoice(
            inv,
            ctx,
            event_id=event_id,
            type_="overdue",
            text=f"not paid by the due date {inv['due_date']}",
        )
        data = InvoiceOverdueData(invoice=summary(new))
        await changes.save(
            s, inv, new, events=[invoice_event(ctx, event_id, inv["_id"], InvoiceOverdue, data)]
        )
        return True

    try:
        moved = await changes.run(work)
    except FordringError:
        log.exception("could not mark %s overdue", invoice_id)
        return False
    if moved:
        INVOICES_OVERDUE.add(1)
    return moved
