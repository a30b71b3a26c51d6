"""A case is the dunning view of one invoice (a document in `cases`): what the ledger said of it last,
what reduced it and when, the steps proposed and applied, and what holds it. These functions turn
the ledger's summaries into case fields and a case into the pure domain's `InvoiceState` and `Holds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final

from services.common.clock import parse_iso_date
from services.common.events import InvoiceSummary
from services.common.mongo import Doc
from services.dunning.domain.calendar import BusinessCalendar
from services.dunning.domain.interest import PartPayment
from services.dunning.domain.policy import STAGE
from services.dunning.domain.schedule import (
    BankFiles,
    DebitInFlight,
    Decision,
    Holds,
    InvoiceState,
    Pause,
    PendingPayment,
    TakenStep,
)

# The ledger's statuses after which there is nothing to dun.
SETTLED: Final = frozenset({"paid", "overpaid", "credited", "written_off"})
# Business days after the due date until a debit's outcome is in the bank files.
DEBIT_SETTLES_IN: Final = 3
# Steps the ledger refused do not count; proposed ones do (the next waits for them).
_COUNTED: Final = frozenset({"proposed", "applied"})


def summary_fields(tenant_id: str, s: InvoiceSummary) -> Doc:
    """The ledger's state of the invoice, as the case keeps it."""
    return {
        "tenant_id": tenant_id,
        "number": s.invoice_number,
        "customer_id": s.customer_id,
        "customer_number": s.customer_number,
        "customer_kind": s.customer_kind,
        "currency": s.currency,
        "issue_date": s.issue_date,
        "due_date": s.due_date,
        "gross_minor": s.gross_minor,
        "charges_minor": s.charges_minor,
        "paid_minor": s.paid_minor,
        "credited_minor": s.credited_minor,
        "balance_minor": s.balance_minor,
        "status": s.status,
        "stage": s.dunning_stage,
        "version": s.version,
        "language": s.language,
        # SE: a påminnelseavgift agreed when the debt arose (None: the tenant's policy decides).
        "fee_agreed": s.reminder_fee_agreed,
    }


def is_known(case: Mapping[str, Any]) -> bool:
    """A case made by a payment or a pause before the invoice's events arrived has no version yet."""
    return "version" in case and "due_date" in case


def unanswered_since(case: Mapping[str, Any]) -> datetime | None:
    """When the oldest proposal the ledger has not answered yet (applied or refused) was made; None
    when every proposal was answered."""
    times = [s["at"] for s in case.get("steps", {}).values() if s.get("state") == "proposed" and s.get("at")]
    return min(times) if times else None


def taken_steps(case: Mapping[str, Any]) -> list[Doc]:
    """The steps that count (proposed or applied), oldest first."""
    steps = [s for s in case.get("steps", {}).values() if s.get("state") in _COUNTED]
    return sorted(steps, key=lambda s: (s["on"], s.get("index", 0)))


def invoice_state(case: Mapping[str, Any]) -> InvoiceState:
    due = parse_iso_date(case["due_date"])
    reductions: list[PartPayment] = []
    principal = int(case["gross_minor"])
    for credit in case.get("credits", {}).values():
        on = parse_iso_date(credit["on"])
        if on <= due:
            principal -= int(credit["amount"])
        else:
            reductions.append(PartPayment(on, int(credit["amount"])))
    reductions.extend(
        PartPayment(parse_iso_date(p["on"]), int(p["amount"])) for p in case.get("payments", {}).values()
    )
    history = tuple(
        TakenStep(
            kind=s["kind"],
            taken_on=parse_iso_date(s["on"]),
            deadline=parse_iso_date(s["deadline"]) if s.get("deadline") else None,
            fee_minor=int(s.get("fee", 0)),
            compensation_minor=int(s.get("compensation", 0)),
        )
        for s in taken_steps(case)
        if s["kind"] in STAGE
    )
    return InvoiceState(
        invoice_id=case["_id"],
        version=int(case["version"]),
        status=case["status"],
        customer_kind=case["customer_kind"],
        due_date=due,
        principal_minor=max(0, principal),
        balance_minor=int(case["balance_minor"]),
        payments=tuple(sorted(reductions, key=lambda p: p.paid_on)),
        stage=int(case.get("stage", 0)),
        history=history,
        interest_charged_minor=sum(int(s.get("interest", 0)) for s in taken_steps(case)),
        fee_agreed=case.get("fee_agreed"),
    )


def settled_by(due: date, calendar: BusinessCalendar) -> date:
    """When a debit drawn on the due date is in the bank files, money or failure: three business days
    after the draw (AvtaleGiro's and eFaktura's payments are booked and reported by then)."""
    day = calendar.on_or_after(due)
    for _ in range(DEBIT_SETTLES_IN):
        day = calendar.on_or_after(day + timedelta(days=1))
    return day


def holds_of(
    cases: list[Mapping[str, Any]], bank_files: BankFiles | None, calendar: BusinessCalendar | None = None
) -> Holds:
    """The holds on a batch of cases, from what each case keeps (payments not applied, pauses,
    AvtaleGiro/eFaktura debits the dispatcher delivered)."""
    payments: dict[str, list[str]] = {}
    statuses: dict[str, str] = {}
    pauses: list[Pause] = []
    debits: list[DebitInFlight] = []
    for case in cases:
        if calendar is not None and case.get("debits") and case.get("due_date"):
            due = parse_iso_date(case["due_date"])
            debits.extend(
                DebitInFlight(case["_id"], d["channel"], due, settled_by(due, calendar), delivery_id)
                for delivery_id, d in case["debits"].items()
            )
        for payment_id, status in case.get("pending", {}).items():
            payments.setdefault(payment_id, []).append(case["_id"])
            statuses[payment_id] = status
        for pause_id, p in case.get("pauses", {}).items():
            pauses.append(
                Pause(case["_id"], p.get("reason", ""), p.get("kind", "pause"), p.get("until"), pause_id)
            )
    return Holds(
        payments=(
            PendingPayment(pid, tuple(ids), "review" if statuses[pid] == "review" else "unapplied")
            for pid, ids in payments.items()
        ),
        pauses=pauses,
        debits=debits,
        bank_files=bank_files,
    )


def decision_fields(decision: Decision, now: datetime) -> Doc:
    """What the case keeps of its last decision (GetCase, ListHeld)."""
    step = decision.step
    fields: Doc = {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "detail": decision.detail,
        "next_step": step.kind if step is not None else "",
        "next_at": step.at if step is not None and decision.outcome == "waiting" else None,
        "decided_at": now,
    }
    return fields


def held_doc(decision: Decision, since: datetime) -> Doc:
    step = decision.step
    return {
        "since": since,
        "step": step.kind if step is not None else "",
        "holds": [
            {"kind": h.kind, "reason": h.reason, "reference": h.reference, "until": h.until}
            for h in decision.holds
        ],
    }


def local_date(at: datetime, tz: Any) -> date:
    return at.astimezone(tz).date()
