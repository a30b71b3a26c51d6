"""PaymentReversed: the bank returned a payment (a debit in a later bank file), and the ledger takes
back what that payment did.

Each invoice it paid owes again what it was given (its status derived anew: a paid invoice is open,
overdue or reminded again, its dunning stage kept), the part that became credit balance is taken
from the payer's credit balance, and the journal reverses the original postings. Applied once per
payment: the same reversal again, or a second one of the same payment, changes nothing.

A payment is taken back automatically only while the invoices it paid stand as it left them in
what was credited and written off: a credit note after a payment moved that money on (a refund
owed, a credit balance), a write-off closed the claim. Such a return is refused with the reason,
for an operator to book.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.bus import record_processed
from services.common.errors import FailedPrecondition
from services.common.events import (
    Event,
    PaymentReversed,
    PaymentReversedData,
    PaymentUnapplied,
    PaymentUnappliedData,
)
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import Ctx, changed_invoice, journal_entry, position_of, summary
from services.ledger.domain import journal
from services.ledger.domain.status import InvoiceStatus
from services.ledger.metrics import PROPOSALS
from services.ledger.payments import UnknownTarget
from services.ledger.proposals import PROPOSALS_CONSUMER, REFUSALS, add_rejection, reason_of
from services.ledger.store import ConcurrentChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReturnPlan:
    """What taking a payment back changes, computed from the payment and its invoices (no I/O)."""

    # (the invoice as it is, the invoice without the payment), in the payment's order.
    changed: tuple[tuple[Doc, Doc], ...]
    entries: tuple[Doc, ...]
    # PaymentUnapplied per invoice.
    events: tuple[tuple[Event, str], ...]
    # What the payment left as credit balance, taken from the payer's.
    taken_back: int
    payer: str


def plan_return(
    ctx: Ctx, payment: Doc, invoices: Mapping[str, Doc | None], data: PaymentReversedData, event_id: str
) -> ReturnPlan:
    """Take `payment` back from its invoices (this tenant's, as they are now). Raises a refusal with
    its reason (FailedPrecondition, UnknownTarget) when it cannot be taken back automatically."""
    payment_id, currency = payment["_id"], payment["currency"]
    if data.currency != currency:
        raise FailedPrecondition(
            f"the return is in {data.currency}, payment {payment_id} was in {currency}",
            reason="CURRENCY_MISMATCH",
        )
    if data.amount_minor != payment["amount_minor"]:
        raise FailedPrecondition(
            f"the return is {data.amount_minor} {currency}, payment {payment_id} was "
            f"{payment['amount_minor']} {currency}",
            reason="AMOUNT_MISMATCH",
        )
    why = data.reason or "no reason given"
    changed: list[tuple[Doc, Doc]] = []
    entries: list[Doc] = []
    events: list[tuple[Event, str]] = []
    for allocation in payment["allocations"]:
        inv = invoices.get(allocation["invoice_id"])
        if inv is None:
            raise UnknownTarget(f"no invoice {allocation['invoice_id']}", reason="UNKNOWN_INVOICE")
        _check_unchanged(inv, allocation, payment_id)
        applied, amount = allocation["applied_minor"], allocation["amount_minor"]
        pos = position_of(inv)
        history_id = new_id()
        new = changed_invoice(
            inv,
            ctx,
            event_id=history_id,
            type_="payment_returned",
            text=f"payment {payment_id} of {amount} {currency} returned by the bank: {why}"
            + (f"; {applied} {currency} owed again" if applied else ""),
            returned=True,
            paid_minor=pos.paid - applied,
            overpaid_minor=pos.overpaid - (amount - applied),
            allocations=[
                {**a, "reversed_at": ctx.now, "reversal_payment_id": data.payment_id}
                if a["payment_id"] == payment_id
                else a
                for a in inv.get("allocations", [])
            ],
        )
        changed.append((inv, new))
        if applied:
            entries.append(
                journal_entry(
                    ctx,
                    invoice_id=inv["_id"],
                    kind="payment_returned",
                    currency=currency,
                    ref=payment_id,
                    postings=journal.payment_returned(applied, 0),
                )
            )
        unapplied = PaymentUnappliedData(
            payment_id=payment_id,
            invoice=summary(new),
            amount_minor=amount,
            reason=why,
            source_event_id=event_id,
        )
        events.append(invoice_event(ctx, history_id, inv["_id"], PaymentUnapplied, unapplied))
    taken_back = int(payment.get("unallocated_minor", 0))
    payer = str(payment.get("customer_id", ""))
    if taken_back:
        entries.append(
            journal_entry(
                ctx,
                invoice_id="",
                customer_id=payer,
                kind="payment_returned",
                currency=currency,
                ref=payment_id,
                postings=journal.payment_returned(0, taken_back),
            )
        )
    return ReturnPlan(tuple(changed), tuple(entries), tuple(events), taken_back, payer)


def _check_unchanged(inv: Doc, allocation: Doc, payment_id: str) -> None:
    number = inv["invoice_number"]
    if not any(
        a["payment_id"] == payment_id and not a.get("reversed_at") for a in inv.get("allocations", [])
    ):
        raise FailedPrecondition(
            f"invoice {number} holds no payment {payment_id}", reason="PAYMENT_NOT_ON_INVOICE"
        )
    status = InvoiceStatus(inv["status"])
    if status == InvoiceStatus.WRITTEN_OFF or inv.get("written_off_minor", 0) != allocation.get(
        "invoice_written_off_minor", 0
    ):
        raise FailedPrecondition(
            f"invoice {number} was written off after the payment: an operator books its return",
            reason="INVOICE_WRITTEN_OFF",
        )
    if status == InvoiceStatus.CREDITED or inv.get("credited_minor", 0) != allocation.get(
        "invoice_credited_minor", 0
    ):
        raise FailedPrecondition(
            f"invoice {number} was credited after the payment: an operator books its return",
            reason="INVOICE_CREDITED",
        )


async def apply_payment_reversed(changes: Changes, ctx: Ctx, event: PaymentReversed) -> None:
    data = event.data
    store = changes.store

    async def work(s: Session) -> str:
        await record_processed(store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
        payment = await store.payments.find_one({"_id": data.reverses_payment_id}, session=s)
        if payment is None or payment["tenant_id"] != ctx.tenant.id:
            detail = f"no payment {data.reverses_payment_id}"
            return await _refuse(changes, s, ctx, event, "", "UNKNOWN_PAYMENT", detail, None)
        invoices = {
            a["invoice_id"]: await store.invoice_by_id(ctx.tenant.id, a["invoice_id"], session=s)
            for a in payment["allocations"]
        }
        first_id = payment["allocations"][0]["invoice_id"] if payment["allocations"] else ""
        first = invoices.get(first_id)
        reversed_by = payment.get("reversal_payment_id")
        if reversed_by == data.payment_id:
            log.info("return %s of payment %s was applied before", data.payment_id, payment["_id"])
            return "duplicate"
        if reversed_by:
            detail = f"payment {payment['_id']} was returned already (by {reversed_by})"
            return await _refuse(changes, s, ctx, event, first_id, "ALREADY_REVERSED", detail, first)
        try:
            plan = plan_return(ctx, payment, invoices, data, event.id)
        except REFUSALS as exc:
            return await _refuse(changes, s, ctx, event, first_id, reason_of(exc), exc.message, first)
        for before, after in plan.changed:
            await store.replace_invoice(s, after, before["version"])
        events = list(plan.events)
        if plan.taken_back:
            # Taken back even when the credit was used meanwhile (refunded, or set against another
            # claim): the balance then goes below zero, and that is the honest record. The money behind
            # the credit never arrived, so the customer owes it; clamping at zero would hide that debt,
            # and undoing whatever the credit paid would rewrite decisions made in good faith.
            events.append(
                await changes.credit_payer(
                    s,
                    ctx,
                    plan.payer,
                    payment["currency"],
                    -plan.taken_back,
                    f"payment {payment['_id']} returned by the bank",
                )
            )
        marked = await store.payments.update_one(
            {"_id": payment["_id"], "reversal_payment_id": {"$exists": False}},
            {
                "$set": {
                    "reversed_at": ctx.now,
                    "reversal_payment_id": data.payment_id,
                    "reversal_event_id": event.id,
                    "reversed_on": data.paid_on,
                    "reversal_reason": data.reason,
                }
            },
            session=s,
        )
        if marked.matched_count != 1:
            raise ConcurrentChange(payment["_id"])
        await changes.record(s, journal=plan.entries, events=events)
        return "applied"

    outcome = await changes.run(work)
    PROPOSALS.add(1, {"type": event.type, "outcome": outcome})


async def _refuse(
    changes: Changes,
    s: Session,
    ctx: Ctx,
    event: Event,
    invoice_id: str,
    reason: str,
    detail: str,
    inv: Doc | None,
) -> str:
    await add_rejection(changes, s, ctx, event, invoice_id, reason, detail, inv)
    return f"rejected:{reason}"
