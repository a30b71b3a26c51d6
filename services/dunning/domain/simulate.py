"""Dry run: what a policy would do to a set of invoices over a period, before anyone switches it on.

Each invoice is replayed from the start of the period: the policy's steps are decided (`decide`) at the
moments they fall due, and the invoice's real payments (a past period) reduce it on their dates, so a
customer who paid before a step reached them counts as spared, not reminded. Holds are left out (they
are the day's facts, not the policy's); the law's notes on fees and amounts are counted per rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Final

from services.dunning.domain.calendar import TIMEZONES
from services.dunning.domain.interest import RateTable
from services.dunning.domain.policy import Policy
from services.dunning.domain.schedule import InvoiceState, TakenStep, decide

_MAX_ROUNDS: Final = 40


@dataclass
class StepTotals:
    count: int = 0
    fees_minor: int = 0
    interest_minor: int = 0
    compensation_minor: int = 0


@dataclass
class SimulationReport:
    invoices: int = 0
    # (step kind, first channel hint) → totals
    steps: dict[tuple[str, str], StepTotals] = field(default_factory=dict)
    handed_off: int = 0
    spared_by_payment: int = 0
    # rule id → (how many times, one message)
    notes: dict[str, tuple[int, str]] = field(default_factory=dict)

    def add(self, kind: str, channel: str, fee: int, interest: int, compensation: int) -> None:
        totals = self.steps.setdefault((kind, channel), StepTotals())
        totals.count += 1
        totals.fees_minor += fee
        totals.interest_minor += interest
        totals.compensation_minor += compensation


def simulate(
    invoices: Iterable[InvoiceState],
    policy: Policy,
    start: datetime,
    until: datetime,
    *,
    start_at_due: bool = False,
    forward: bool = False,
    rates: RateTable | None = None,
) -> SimulationReport:
    """Replay `policy` over `invoices` from `start` (or each one's due date, `start_at_due`) to `until`.

    A past period (`forward=False`): each invoice's `payments` are its real ones (those after the
    moment replayed have not happened yet) and its history is ignored: the policy starts from nothing,
    showing what it would have done. Forward: the open invoices as they are now (balance, steps
    taken), no payments assumed."""
    report = SimulationReport()
    tz = TIMEZONES[policy.jurisdiction]
    notes: Counter[str] = Counter()
    messages: dict[str, str] = {}
    for invoice in invoices:
        report.invoices += 1
        now = datetime.combine(invoice.due_date, time(0), tzinfo=tz) if start_at_due else start.astimezone(tz)
        history: list[TakenStep] = list(invoice.history) if forward else []
        charged = 0
        for _ in range(_MAX_ROUNDS):
            if now > until:
                break
            today = now.date()
            paid = [p for p in invoice.payments if p.paid_on <= today]
            paid_sum = sum(p.amount_minor for p in paid)
            if forward:
                balance = invoice.balance_minor + charged
            else:
                balance = invoice.principal_minor + charged - paid_sum
            state = replace(
                invoice,
                status=_status(balance, today > invoice.due_date, paid_sum),
                balance_minor=balance,
                payments=tuple(paid),
                history=tuple(history),
                stage=invoice.stage if forward else 0,
                interest_charged_minor=invoice.interest_charged_minor if forward else 0,
            )
            decision = decide(state, policy, now, rates=rates)
            if decision.outcome == "done":
                # Paid late, but before the policy's next step reached the customer.
                if decision.reason == "paid" and today > invoice.due_date:
                    report.spared_by_payment += 1
                break
            step = decision.step
            if step is None:
                break
            if decision.outcome == "waiting":
                nxt = step.at
                # A payment before the step would spare it: look again the day it is paid.
                paid_before = [p.paid_on for p in invoice.payments if today < p.paid_on < nxt.date()]
                if paid_before:
                    nxt = datetime.combine(min(paid_before), time(0), tzinfo=tz)
                now = max(nxt, now + timedelta(minutes=1))
                continue
            # Due (holds are not simulated).
            channel = step.channels[0] if step.channels else ""
            report.add(step.kind, channel, step.fee_minor, step.interest_minor, step.compensation_minor)
            for note in step.notes:
                notes[note.rule_id] += 1
                messages.setdefault(note.rule_id, note.message)
            charged += step.fee_minor + step.interest_minor + step.compensation_minor
            history.append(
                TakenStep(step.kind, today, step.deadline, step.fee_minor, step.compensation_minor)
            )
            if step.kind == "collection_handoff":
                report.handed_off += 1
                break
            now += timedelta(minutes=1)
    report.notes = {rule: (count, messages[rule]) for rule, count in notes.items()}
    return report


def _status(balance: int, past_due: bool, paid: int) -> str:
    if balance <= 0:
        return "paid"
    if past_due:
        return "overdue"
    return "part_paid" if paid else "open"
