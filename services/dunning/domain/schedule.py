"""The step decision: for one invoice, the next dunning step due now — with its fee, interest,
compensation and the deadline it gives — or why there is none (paid, not yet due, waiting for a
deadline or the sending window, held). A pure function of the invoice's state, its policy, the holds
and "now"; the service runs it over every open invoice and stores what it returns.

Never remind a payer: a step that is due is held while a payment naming the invoice is in the matcher's
review queue or received but not yet applied, while a dispute or pause is open, while an AvtaleGiro or
eFaktura debit is in flight, and until today's bank files are in (after the tenant's cut-off time). The
ledger's version check (`based_on_version`) closes the last race.

The law is applied again here on the real dates (the validator saw only the nominal timeline): no step
before the previous deadline has passed, no fee the law does not allow for this claim on this day — a
fee the law refuses is dropped (the step still goes) and the decision notes the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final, Literal

from services.dunning.domain import law
from services.dunning.domain.calendar import TIMEZONES, BusinessCalendar, calendar_for
from services.dunning.domain.interest import RATES, DayCount, PartPayment, RateTable, accrue
from services.dunning.domain.law import DebtorKind, Rule
from services.dunning.domain.policy import STAGE, Channel, Policy, Step, StepKind

_ONE_DAY: Final = timedelta(days=1)
# The ledger's statuses (services/ledger/domain/status.py) after which nothing is owed.
_PAID: Final = frozenset({"paid", "overpaid"})
_CLOSED: Final = frozenset({"credited", "written_off"})
_IN_COLLECTION: Final = 3  # DunningStage.IN_COLLECTION


@dataclass(frozen=True, slots=True)
class TakenStep:
    """A step already taken on the invoice, as the ledger applied it."""

    kind: StepKind
    taken_on: date
    deadline: date | None = None
    fee_minor: int = 0
    compensation_minor: int = 0


@dataclass(frozen=True, slots=True)
class InvoiceState:
    invoice_id: str
    version: int
    # The ledger's status (InvoiceStatus value).
    status: str
    customer_kind: DebtorKind
    due_date: date
    # The principal that fell due (gross less credit notes), and what is still open (with fees).
    principal_minor: int
    balance_minor: int
    # What reduced the principal, with dates (payments; credit notes after the due date).
    payments: tuple[PartPayment, ...] = ()
    # The ledger's DunningStage (0 none, 1 reminded, 2 collection notice, 3 in collection).
    stage: int = 0
    # The policy's steps taken, oldest first, with the deadlines they gave (from the ledger's dunning
    # actions): the next one is policy.steps[len(history)], never before the latest deadline has passed.
    history: tuple[TakenStep, ...] = ()
    interest_charged_minor: int = 0
    # SE: this customer's agreement on a påminnelseavgift; None: the tenant's terms
    # (Policy.reminder_fee_agreed) decide.
    fee_agreed: bool | None = None


HoldKind = Literal[
    "payment_in_review", "payment_unapplied", "dispute", "pause", "debit_in_flight", "bank_files_pending"
]


@dataclass(frozen=True, slots=True)
class Hold:
    kind: HoldKind
    reason: str
    # When to look again (None: when the hold is lifted: the payment decided, the pause resumed …).
    until: datetime | None = None
    # What it comes from: a payment id, a pause's id, a debit's reference.
    reference: str = ""


@dataclass(frozen=True, slots=True)
class PendingPayment:
    """A payment the matcher announced (PaymentReceived) that is not applied yet: in its review queue, or
    matched but the ledger has not applied it. It holds every invoice it may pay."""

    payment_id: str
    candidate_invoice_ids: tuple[str, ...]
    status: Literal["review", "unapplied"] = "review"


@dataclass(frozen=True, slots=True)
class Pause:
    """An open dispute or pause on an invoice (DunningService.Pause), until resumed or `until`."""

    invoice_id: str
    reason: str
    kind: Literal["dispute", "pause"] = "pause"
    until: datetime | None = None
    pause_id: str = ""


@dataclass(frozen=True, slots=True)
class DebitInFlight:
    """An AvtaleGiro or eFaktura debit of the invoice that is drawn on `draw_on`; it holds the invoice
    through `settled_by` (when its money or its failure is in the bank files) unless removed earlier."""

    invoice_id: str
    channel: Literal["avtalegiro", "efaktura"]
    draw_on: date
    settled_by: date
    reference: str = ""


@dataclass(frozen=True, slots=True)
class BankFiles:
    """The tenant's bank files: steps wait each business day until `cutoff` (local time) and until that
    day's files are in; on other days until the last business day's are."""

    cutoff: time
    last_import_on: date | None


class Holds:
    """Everything that may hold a step, indexed by invoice for the decision loop (build once per run)."""

    __slots__ = ("_debits", "_pauses", "_payments", "bank_files")

    def __init__(
        self,
        payments: Iterable[PendingPayment] = (),
        pauses: Iterable[Pause] = (),
        debits: Iterable[DebitInFlight] = (),
        bank_files: BankFiles | None = None,
    ) -> None:
        self._payments: dict[str, list[PendingPayment]] = {}
        for payment in payments:
            for invoice_id in dict.fromkeys(payment.candidate_invoice_ids):
                self._payments.setdefault(invoice_id, []).append(payment)
        self._pauses: dict[str, list[Pause]] = {}
        for pause in pauses:
            self._pauses.setdefault(pause.invoice_id, []).append(pause)
        self._debits: dict[str, list[DebitInFlight]] = {}
        for debit in debits:
            self._debits.setdefault(debit.invoice_id, []).append(debit)
        self.bank_files = bank_files

    def for_invoice(self, invoice_id: str, local_now: datetime) -> list[Hold]:
        """The holds on one invoice at `local_now` (in the jurisdiction's time zone), bank files left out."""
        today = local_now.date()
        found = [
            Hold("payment_in_review", f"payment {p.payment_id} in review may pay it", None, p.payment_id)
            if p.status == "review"
            else Hold(
                "payment_unapplied", f"payment {p.payment_id} received, not yet applied", None, p.payment_id
            )
            for p in self._payments.get(invoice_id, ())
        ]
        found.extend(
            Hold(pause.kind, pause.reason, pause.until, pause.pause_id)
            for pause in self._pauses.get(invoice_id, ())
            if pause.until is None or pause.until > local_now
        )
        found.extend(
            Hold(
                "debit_in_flight",
                f"{debit.channel} debit drawn on {debit.draw_on}, settled by {debit.settled_by}",
                datetime.combine(debit.settled_by + _ONE_DAY, time(0), tzinfo=local_now.tzinfo),
                debit.reference,
            )
            for debit in self._debits.get(invoice_id, ())
            if today <= debit.settled_by
        )
        return found

    def bank_files_hold(self, local_now: datetime, calendar: BusinessCalendar) -> Hold | None:
        files = self.bank_files
        if files is None:
            return None
        today = local_now.date()
        if calendar.is_business_day(today):
            if local_now.time() < files.cutoff:
                return Hold(
                    "bank_files_pending",
                    f"today's bank files are awaited until the cut-off at {files.cutoff:%H:%M}",
                    datetime.combine(today, files.cutoff, tzinfo=local_now.tzinfo),
                )
            expected = today
        else:
            expected = calendar.before(today)
        if files.last_import_on is None or files.last_import_on < expected:
            return Hold("bank_files_pending", f"the bank files of {expected} are not in")
        return None


NO_HOLDS: Final = Holds()

Outcome = Literal["due", "held", "waiting", "done"]
Reason = Literal[
    "step_due",
    "held",
    "not_due",
    "waiting_for_offset",
    "waiting_for_deadline",
    "waiting_for_window",
    "paid",
    "closed",
    "handed_off",
    "policy_complete",
]


@dataclass(frozen=True, slots=True)
class Note:
    """Why an amount or a date differs from the policy's: the rule, and what it did."""

    rule_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.message}"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    index: int
    kind: StepKind
    # When it is due: now for a due step, the earliest moment for a waiting one (in local time).
    at: datetime
    channels: tuple[Channel, ...]
    payment_link: bool
    # The amounts and deadline, for a due or held step (a waiting one has none yet).
    fee_minor: int = 0
    # Interest accrued from the day after the due date through the day it is sent.
    interest_to_date_minor: int = 0
    # What it charges: interest to date less what earlier steps charged (when the step charges interest).
    interest_minor: int = 0
    compensation_minor: int = 0
    deadline: date | None = None
    show_interest: bool = False
    notes: tuple[Note, ...] = ()

    @property
    def stage(self) -> int:
        return STAGE[self.kind]


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: Reason
    invoice_id: str
    based_on_version: int
    step: PlannedStep | None = None
    holds: tuple[Hold, ...] = ()
    detail: str = ""

    @property
    def next_check(self) -> datetime | None:
        """When to decide again (None: only when something about the invoice changes)."""
        if self.outcome == "waiting" and self.step is not None:
            return self.step.at
        if self.outcome == "held":
            untils = [h.until for h in self.holds if h.until is not None]
            return min(untils) if len(untils) == len(self.holds) else None
        return None


def decide(
    invoice: InvoiceState,
    policy: Policy,
    now: datetime,
    holds: Holds = NO_HOLDS,
    *,
    calendar: BusinessCalendar | None = None,
    rates: RateTable | None = None,
    day_count: DayCount = "act/365",
) -> Decision:
    """The next step for `invoice` under `policy` at `now` (aware), or why there is none."""
    if now.tzinfo is None:
        raise ValueError("decide needs a timezone-aware now")
    if invoice.customer_kind != policy.debtor_kind:
        raise ValueError(f"a {policy.debtor_kind} policy for a {invoice.customer_kind}'s invoice")
    jurisdiction = policy.jurisdiction
    iid, version = invoice.invoice_id, invoice.version
    if invoice.status in _PAID or (invoice.balance_minor <= 0 and invoice.status not in _CLOSED):
        return Decision("done", "paid", iid, version, detail=f"the invoice is {invoice.status}, nothing owed")
    if invoice.status in _CLOSED:
        return Decision("done", "closed", iid, version, detail=f"the invoice is {invoice.status}")
    history = invoice.history
    last = history[-1] if history else None
    taken_stage = STAGE[last.kind] if last else 0
    if max(invoice.stage, taken_stage) >= _IN_COLLECTION or invoice.status == "in_collection":
        return Decision("done", "handed_off", iid, version, detail="the claim is with the collection agency")
    steps = policy.steps
    index = len(history)
    # A stage never goes back. The ledger ahead of the history (a stage set by hand, a policy changed):
    # the steps up to its stage are passed over.
    if invoice.stage > taken_stage:
        while index < len(steps) and STAGE[steps[index].kind] <= invoice.stage:
            index += 1
    else:
        while index < len(steps) and STAGE[steps[index].kind] < taken_stage:
            index += 1
    if index >= len(steps):
        return Decision("done", "policy_complete", iid, version, detail="every step of the policy is taken")
    step = steps[index]

    due = invoice.due_date
    last_deadline = max((t.deadline for t in history if t.deadline is not None), default=None)
    if step.offset_from == "due_date" or last is None:
        base = due
    elif step.offset_from == "previous_step" or last.deadline is None:
        base = last.taken_on
    else:
        base = last.deadline + _ONE_DAY
    scheduled = base + timedelta(days=step.offset_days)
    if last_deadline is not None and scheduled <= last_deadline:
        scheduled = last_deadline + _ONE_DAY
    if step.kind != "nudge" and scheduled <= due:
        scheduled = due + _ONE_DAY

    calendar = calendar or calendar_for(jurisdiction)
    tz = TIMEZONES[jurisdiction]
    local_now = now.astimezone(tz)
    today = local_now.date()
    at = policy.sending_window.next_opening(
        local_now, tz, scheduled, calendar if "print" in step.channels else None
    )
    if at > local_now:
        reason: Reason = "waiting_for_window"
        if today <= due and scheduled > due:
            reason = "not_due"
        elif last_deadline is not None and today <= last_deadline:
            reason = "waiting_for_deadline"
        elif today < scheduled:
            reason = "waiting_for_offset"
        planned = PlannedStep(index, step.kind, at, step.channels, step.payment_link)
        return Decision(
            "waiting", reason, iid, version, planned, detail=f"{step.kind} from {at:%Y-%m-%d %H:%M}"
        )

    planned = _amounts(invoice, policy, step, index, today, local_now, calendar, rates, day_count)
    found = holds.for_invoice(iid, local_now)
    bank = holds.bank_files_hold(local_now, calendar)
    if bank is not None:
        found.append(bank)
    if found:
        return Decision(
            "held", "held", iid, version, planned, tuple(found), "; ".join(h.reason for h in found)
        )
    return Decision("due", "step_due", iid, version, planned)


def _amounts(
    invoice: InvoiceState,
    policy: Policy,
    step: Step,
    index: int,
    today: date,
    local_now: datetime,
    calendar: BusinessCalendar,
    rates: RateTable | None,
    day_count: DayCount,
) -> PlannedStep:
    notes: list[Note] = []
    fee = _fee(invoice, policy, step, today, notes)
    compensation = _compensation(invoice, policy, step, fee, notes) if step.charge_compensation else 0
    to_date = charged = 0
    if step.show_interest or step.charge_interest:
        table = rates or RATES[policy.jurisdiction]
        accrual = accrue(
            invoice.principal_minor, invoice.due_date, today, table, invoice.payments, day_count=day_count
        )
        to_date = accrual.minor
        if step.charge_interest:
            charged = max(0, to_date - invoice.interest_charged_minor)
        if not accrual.complete:
            notes.append(Note(_interest_rule(policy).id, "no rate is known for some days: they bear none"))
        elif not accrual.confirmed:
            notes.append(Note(_interest_rule(policy).id, "an unconfirmed or carried-forward rate was used"))
    deadline = (
        calendar.on_or_after(today + timedelta(days=step.deadline_days)) if step.deadline_days else None
    )
    return PlannedStep(
        index,
        step.kind,
        local_now,
        step.channels,
        step.payment_link,
        fee,
        to_date,
        charged,
        compensation,
        deadline,
        step.show_interest,
        tuple(notes),
    )


def _interest_rule(policy: Policy) -> Rule:
    return law.NO_INTEREST if policy.jurisdiction == "NO" else law.SE_INTEREST_MARGIN


def _fee(invoice: InvoiceState, policy: Policy, step: Step, today: date, notes: list[Note]) -> int:
    if not step.has_fee or step.kind not in ("reminder", "collection_notice"):
        return 0
    kind: law.FeeKind = "reminder" if step.kind == "reminder" else "collection_notice"
    rule = law.fee_rule(policy.jurisdiction, kind)
    cap = rule.value_on(invoice.due_date) or 0
    fee = cap if step.fee_minor == "legal_max" else min(int(step.fee_minor), cap)
    if isinstance(step.fee_minor, int) and fee < step.fee_minor:
        notes.append(
            Note(
                rule.id,
                f"the fee is at most {law.amount(cap, policy.jurisdiction)} for a claim due on "
                f"{invoice.due_date}",
            )
        )
    if fee == 0:
        return 0
    refusal = (
        _norwegian_fee_refusal(invoice, kind, today)
        if policy.jurisdiction == "NO"
        else _swedish_fee_refusal(invoice, policy, kind)
    )
    if refusal is not None:
        notes.append(Note(refusal[0].id, f"no fee: {refusal[1]}"))
        return 0
    return fee


def _norwegian_fee_refusal(invoice: InvoiceState, kind: law.FeeKind, today: date) -> tuple[Rule, str] | None:
    days_rule = law.NO_NOTICE_FEE_DAYS if kind == "collection_notice" else law.NO_REMINDER_FEE_DAYS
    days = (today - invoice.due_date).days
    if days < days_rule.periods[0].value:
        return days_rule, f"sent {days} days after the due date"
    fees = [t for t in invoice.history if t.fee_minor > 0]
    notices = sum(1 for t in fees if t.kind == "collection_notice")
    if kind == "collection_notice" and notices >= law.NO_NOTICE_FEES_PER_CLAIM.periods[0].value:
        return law.NO_NOTICE_FEES_PER_CLAIM, "the claim has had its inkassovarsel fee"
    if len(fees) >= law.NO_FEES_PER_CLAIM.periods[0].value:
        return law.NO_FEES_PER_CLAIM, f"the claim has had {len(fees)} fees"
    if any(t.compensation_minor > 0 for t in invoice.history):
        return law.NO_COMPENSATION, "the standardkompensasjon charged covers the fees"
    if fees:
        first = fees[-1]
        least = law.NO_SECOND_FEE.periods[0].value
        if (
            first.deadline is None
            or (first.deadline - first.taken_on).days < least
            or today <= first.deadline
        ):
            return (
                law.NO_SECOND_FEE,
                f"the {first.kind} of {first.taken_on} set no missed {least}-day deadline",
            )
    return None


def _swedish_fee_refusal(invoice: InvoiceState, policy: Policy, kind: law.FeeKind) -> tuple[Rule, str] | None:
    if kind != "reminder":
        return None
    agreed = policy.reminder_fee_agreed if invoice.fee_agreed is None else invoice.fee_agreed
    if not agreed:
        return law.SE_REMINDER_FEE_AGREED, "no påminnelseavgift was agreed"
    reminders = sum(1 for t in invoice.history if t.kind == "reminder" and t.fee_minor > 0)
    if reminders >= law.SE_REMINDER_FEES_PER_CLAIM.periods[0].value:
        return law.SE_REMINDER_FEES_PER_CLAIM, "the claim has had its påminnelseavgift"
    return None


def _compensation(invoice: InvoiceState, policy: Policy, step: Step, fee: int, notes: list[Note]) -> int:
    jurisdiction = policy.jurisdiction
    rule = law.compensation_rule(jurisdiction)
    if invoice.customer_kind != "business":
        business = law.NO_COMPENSATION_BUSINESS if jurisdiction == "NO" else law.SE_COMPENSATION_BUSINESS
        notes.append(Note(business.id, "no compensation from a consumer"))
        return 0
    if any(t.compensation_minor > 0 for t in invoice.history):
        notes.append(Note(law.COMPENSATION_ONCE.id, "the compensation was charged before"))
        return 0
    # The right arises with the right to interest: the day after the due date.
    period = law.compensation_period(jurisdiction, invoice.due_date + _ONE_DAY)
    if period is None:
        notes.append(Note(rule.id, f"no amount is known for a claim due on {invoice.due_date}: none charged"))
        return 0
    if not period.verified:
        notes.append(Note(rule.id, f"the amount {period.value} is unverified: {period.note or 'confirm it'}"))
    if jurisdiction == "SE":
        return period.value
    # NO: less the reminder fees already charged (this step's included).
    fees = sum(t.fee_minor for t in invoice.history) + fee
    return max(0, period.value - fees)


def decide_all(
    invoices: Iterable[InvoiceState],
    policies: Mapping[DebtorKind, Policy],
    now: datetime,
    holds: Holds = NO_HOLDS,
    *,
    rates: RateTable | None = None,
) -> list[Decision]:
    """decide() for a tenant's invoices in one jurisdiction, each under its debtor kind's policy."""
    return [decide(invoice, policies[invoice.customer_kind], now, holds, rates=rates) for invoice in invoices]
