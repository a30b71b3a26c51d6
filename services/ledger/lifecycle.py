"""What happens to an invoice as time passes or collection ends: overdue, written off."""

from __future__ import annotations

import logging
from datetime import date

from services.common.errors import AlreadyExists, FordringError, Violations
from services.common.events import (
    InvoiceOverdue,
    InvoiceOverdueData,
    InvoiceWrittenOff,
    InvoiceWrittenOffData,
)
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.common.text import check_text
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import Ctx, changed_invoice, journal_entry, position_of, summary
from services.ledger.domain import journal
from services.ledger.domain.invoice import MAX_TEXT, check_length
from services.ledger.domain.status import InvoiceStatus, check_can_write_off
from services.ledger.metrics import INVOICES_OVERDUE
from services.ledger.payments import MAX_KEY, request_hash

log = logging.getLogger(__name__)


async def write_off(
    changes: Changes, ctx: Ctx, *, invoice_id: str, invoice_number: str, key: str, reason: str
) -> tuple[Doc, bool]:
    """Write off what is left to pay; returns the invoice and whether it was written off now.

    Idempotent by key: a retry (even many at once) gets the invoice as written off; the same key with
    another reason is refused.
    """
    v = Violations()
    if not key.strip():
        v.add("idempotency_key", "required")
    check_length(key, "idempotency_key", MAX_KEY, v)
    if not reason.strip():
        v.add("reason", "required")
    check_text(reason, "reason", MAX_TEXT, v, multiline=True)
    v.raise_if_any()
    fingerprint = request_hash({"key": key, "reason": reason})
    invoice = await changes.resolve_invoice(ctx, invoice_id=invoice_id, invoice_number=invoice_number)
    replayed = _replay_write_off(invoice, key, fingerprint)
    if replayed is not None:
        return replayed, False

    async def work(s: Session) -> tuple[Doc, bool]:
        inv = await changes.load(s, ctx, invoice["_id"])
        replayed = _replay_write_off(inv, key, fingerprint)
        if replayed is not None:
            return replayed, False
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
            write_off_hash=fingerprint,
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
        return new, True

    async with changes.key_lock(ctx.tenant.id, "write-off", invoice["_id"]):
        return await changes.run(work)


def _replay_write_off(inv: Doc, key: str, fingerprint: str) -> Doc | None:
    """The invoice, when this key wrote it off; a refusal when the key came with another reason."""
    if inv.get("write_off_key") != key:
        return None
    if inv.get("write_off_hash", fingerprint) != fingerprint:
        raise AlreadyExists(f"idempotency key {key!r} was already used to write off with another reason")
    return inv


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
