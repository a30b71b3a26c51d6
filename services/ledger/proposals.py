"""Proposals from the matcher (PaymentMatched) and the dunning service (DunningActionTaken).

A proposal is applied in the transaction that records it as processed; one the invoice's state
does not allow is rejected, never applied blindly.
"""

from __future__ import annotations

import logging
from typing import Final

from pymongo.errors import DuplicateKeyError

from services.common.bus import record_processed
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from services.common.events import (
    ChargeAdded,
    ChargeAddedData,
    DunningActionTaken,
    DunningActionTakenData,
    Event,
    PayerAccountLearned,
    PaymentMatched,
    PaymentMatchedData,
    PaymentReversed,
    ProposalRejected,
    ProposalRejectedData,
)
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import Ctx, changed_invoice, history_entry, journal_entry, position_of, summary
from services.ledger.domain import journal
from services.ledger.domain.status import (
    DunningStage,
    InvoiceStatus,
    charge_rejection,
    dunning_rejection,
    dunning_stage_after,
    is_compensation,
)
from services.ledger.metrics import PAYMENTS_APPLIED, PROPOSALS
from services.ledger.payments import Payment, PaymentExists, apply_payment, check_payment, request_hash

log = logging.getLogger(__name__)

PROPOSALS_CONSUMER: Final = "ledger"
_HISTORY_TYPE: Final = {
    "nudge": "nudged",
    "reminder": "reminded",
    "collection_notice": "collection_notice",
    "collection_handoff": "collection_handoff",
    "late_interest": "interest_added",
    "compensation": "compensation_added",
}


def check_payment_matched(data: PaymentMatchedData) -> None:
    """The same checks as RecordPayment: a proposal is money too."""
    v = Violations()
    check_payment(
        v,
        key=data.payment_id,
        amount_minor=data.amount_minor,
        currency=data.currency,
        paid_on=data.paid_on,
        allocations=[a.amount_minor for a in data.allocations],
        reference=data.reference,
        payer_account=data.payer_account,
        amount_field="amount_minor",
        currency_field="currency",
    )
    if not data.allocations and not data.customer_id:
        v.add("customer_id", "required when nothing is allocated (the money becomes credit balance)")
    v.raise_if_any()


def payment_of(event: PaymentMatched) -> Payment:
    """The payment a PaymentMatched proposes (idempotent by the matcher's payment id)."""
    data = event.data
    return Payment(
        payment_id=data.payment_id,
        idempotency_key=f"matcher:{data.payment_id}",
        fingerprint=request_hash([data.model_dump()]),
        amount_minor=data.amount_minor,
        currency=data.currency,
        paid_on=data.paid_on,
        method=data.method,
        targets=tuple((a.invoice_id, a.amount_minor) for a in data.allocations),
        customer_id=data.customer_id,
        reference=data.reference,
        payer_account=data.payer_account,
        source_event_id=event.id,
        based_on_versions=tuple(
            (a.invoice_id, a.based_on_version) for a in data.allocations if a.based_on_version is not None
        ),
    )


def first_invoice_id(event: PaymentMatched) -> str:
    """The invoice a refusal of the proposal is recorded on: the first it names."""
    return event.data.allocations[0].invoice_id if event.data.allocations else ""


def reason_of(exc: Exception) -> str:
    """The reason code a refused proposal is announced with (FailedPrecondition and the ledger's
    own refusals carry one)."""
    return str(getattr(exc, "reason", type(exc).__name__.upper()))


REFUSALS: Final = (FailedPrecondition, NotFound, InvalidArgument)


async def apply_payment_matched(changes: Changes, ctx: Ctx, event: PaymentMatched) -> None:
    """One proposal in its own transaction (the batch path, services/ledger/matched.py, falls back to
    this one event at a time)."""
    data = event.data
    invoice_id = first_invoice_id(event)
    try:
        check_payment_matched(data)
    except InvalidArgument as exc:
        await _reject(changes, ctx, event, invoice_id, "INVALID_PROPOSAL", exc.message)
        PROPOSALS.add(1, {"type": event.type, "outcome": "rejected:INVALID_PROPOSAL"})
        return
    payment = payment_of(event)

    async def work(s: Session) -> None:
        await record_processed(changes.store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
        await apply_payment(changes, s, ctx, payment)

    try:
        await changes.run(work)
    except (DuplicateKeyError, PaymentExists):
        # The same payment id came in another event: it is applied already (idempotent by payment).
        log.info("payment %s from event %s was applied before", data.payment_id, event.id)
        PROPOSALS.add(1, {"type": event.type, "outcome": "duplicate"})
    except REFUSALS as exc:
        reason = reason_of(exc)
        await _reject(changes, ctx, event, invoice_id, reason, exc.message)
        PROPOSALS.add(1, {"type": event.type, "outcome": f"rejected:{reason}"})
    else:
        PROPOSALS.add(1, {"type": event.type, "outcome": "applied"})
        PAYMENTS_APPLIED.add(1, {"method": data.method})


async def apply_dunning_action(changes: Changes, ctx: Ctx, event: DunningActionTaken) -> None:
    async def work(s: Session) -> str:
        data = event.data
        await record_processed(changes.store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
        inv = await changes.store.invoice_by_id(ctx.tenant.id, data.invoice_id, session=s)
        if inv is None:
            await add_rejection(
                changes,
                s,
                ctx,
                event,
                data.invoice_id,
                "UNKNOWN_INVOICE",
                f"no invoice {data.invoice_id}",
                None,
            )
            return "rejected:UNKNOWN_INVOICE"
        stage = DunningStage(inv.get("dunning_stage", 0))
        pos = position_of(inv)
        rejection = dunning_rejection(
            data.action,
            status=InvoiceStatus(inv["status"]),
            version=inv["version"],
            based_on_version=data.based_on_version,
            stage=stage,
            balance=pos.balance,
        ) or charge_rejection(
            data.action,
            fee=data.fee_minor,
            interest=data.interest_minor,
            compensation=data.compensation_minor,
            customer_kind=inv.get("customer_kind", ""),
            compensation_charged=any(is_compensation(c["kind"]) for c in inv.get("charges", [])),
        )
        if rejection is not None:
            await add_rejection(changes, s, ctx, event, inv["_id"], *rejection, inv)
            return f"rejected:{rejection[0]}"
        charges, entries = _charges(ctx, inv, data)
        added = sum(c["amount_minor"] for c in charges)
        event_id = new_id()
        new = changed_invoice(
            inv,
            ctx,
            event_id=event_id,
            type_=_HISTORY_TYPE[data.action],
            text=f"{data.action.replace('_', ' ')}"
            + (f", {added} {inv['currency']} added" if added else "")
            + (f", deadline {data.deadline}" if data.deadline else ""),
            charges=[*inv.get("charges", []), *charges],
            charges_minor=pos.charges + added,
            dunning_stage=int(dunning_stage_after(data.action, stage)),
        )
        charged = ChargeAddedData(
            invoice=summary(new),
            action_id=data.action_id,
            action=data.action,
            charge_minor=added,
            source_event_id=event.id,
            deadline=data.deadline,
            description=data.description,
            # The step's hints, for the renderer and the dispatcher: how to reach the customer, and
            # the interest the document states (what it charges of it is among the charges).
            channels=data.channels,
            payment_link=data.payment_link,
            interest_to_date_minor=data.interest_to_date_minor,
            offers=data.offers,
        )
        await changes.save(
            s,
            inv,
            new,
            journal=entries,
            events=[invoice_event(ctx, event_id, inv["_id"], ChargeAdded, charged)],
        )
        return "applied"

    outcome = await changes.run(work)
    PROPOSALS.add(1, {"type": event.type, "outcome": outcome, "action": event.data.action})


def _charges(ctx: Ctx, inv: Doc, data: DunningActionTakenData) -> tuple[list[Doc], list[Doc]]:
    """The fee, the interest and the fixed compensation a dunning action adds (those not zero), each
    a charge line of its own with its journal entry (the compensation is income like a fee)."""
    charges: list[Doc] = []
    entries: list[Doc] = []
    step = data.action.replace("_", " ")
    for kind, amount, interest, description in (
        ("fee", data.fee_minor, False, data.description or step),
        ("interest", data.interest_minor, True, data.description or step),
        # Named apart from the step's description, which is the fee's ("Purregebyr").
        ("compensation", data.compensation_minor, False, "fixed compensation"),
    ):
        if amount:
            charges.append(
                {
                    "id": new_id(),
                    "kind": _charge_kind(data.action, kind),
                    "amount_minor": amount,
                    "description": description,
                    "added_at": ctx.now,
                    "action_id": data.action_id,
                }
            )
            entries.append(
                journal_entry(
                    ctx,
                    invoice_id=inv["_id"],
                    kind=f"{kind}_added",
                    currency=inv["currency"],
                    ref=data.action_id,
                    postings=journal.charge_added(amount, interest=interest),
                )
            )
    return charges, entries


def _charge_kind(action: str, kind: str) -> str:
    """ "reminder_fee", "collection_notice_interest", "reminder_compensation"; the compensation action's
    own line is plain "compensation"."""
    return kind if action == kind else f"{action}_{kind}"


async def _reject(
    changes: Changes, ctx: Ctx, event: Event, invoice_id: str, reason: str, detail: str
) -> None:
    async def work(s: Session) -> None:
        await record_processed(changes.store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
        # Only this tenant's invoice: a proposal naming another tenant's invoice is refused without
        # touching it (the refusal names the id, never the other invoice's state).
        inv = await changes.store.invoice_by_id(ctx.tenant.id, invoice_id, session=s) if invoice_id else None
        await add_rejection(changes, s, ctx, event, invoice_id, reason, detail, inv)

    await changes.run(work)


async def add_rejection(
    changes: Changes,
    s: Session,
    ctx: Ctx,
    event: Event,
    invoice_id: str,
    reason: str,
    detail: str,
    inv: Doc | None,
) -> None:
    rejected, entry = rejection(ctx, event, invoice_id, reason, detail, inv)
    if inv is not None and entry is not None:
        await changes.store.invoices.update_one({"_id": inv["_id"]}, {"$push": {"history": entry}}, session=s)
    await changes.record(s, events=[rejected])


def rejection(
    ctx: Ctx, event: Event, invoice_id: str, reason: str, detail: str, inv: Doc | None
) -> tuple[tuple[Event, str], Doc | None]:
    """A proposal is never applied blindly: the refusal is announced, and kept in the invoice's
    history (when the invoice is this tenant's). Returns the event and the history entry."""
    log.info("rejected %s %s for invoice %s: %s", event.type, event.id, invoice_id, detail)
    rejection_id = new_id()
    data = ProposalRejectedData(
        proposal_event_id=event.id,
        proposal_type=event.type,
        invoice_id=invoice_id,
        reason=reason,
        detail=detail,
        current_version=inv["version"] if inv else None,
        current_status=inv["status"] if inv else None,
        # The matcher finds its payment by this id (a return's: the bank's debit).
        payment_id=event.data.payment_id
        if isinstance(event, PaymentMatched | PaymentReversed | PayerAccountLearned)
        else "",
    )
    # About an invoice of this tenant, or else about the proposal itself (an id the proposer named
    # may be another tenant's, and nothing is announced about that one).
    subject = inv["_id"] if inv is not None else event.id
    rejected = invoice_event(ctx, rejection_id, subject, ProposalRejected, data)
    if inv is None:
        return rejected, None
    entry = history_entry(
        ctx,
        event_id=rejection_id,
        type_="proposal_rejected",
        before=inv["status"],
        after=inv["status"],
        version=inv["version"],
        text=f"{event.type} not applied: {reason} ({detail})",
    )
    return rejected, entry
