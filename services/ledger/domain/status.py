"""An invoice's status: derived from its amounts, due date and dunning stage, changed only along
the legal transitions below. Everything else about "what may happen to this invoice" lives here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum, StrEnum
from typing import Final

from services.common.errors import FailedPrecondition


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PART_PAID = "part_paid"
    PAID = "paid"
    OVERPAID = "overpaid"
    CREDITED = "credited"
    OVERDUE = "overdue"
    REMINDED = "reminded"
    COLLECTION_NOTICE = "collection_notice"
    IN_COLLECTION = "in_collection"
    WRITTEN_OFF = "written_off"


class DunningStage(IntEnum):
    NONE = 0
    REMINDED = 1
    COLLECTION_NOTICE = 2
    IN_COLLECTION = 3


S = InvoiceStatus
_SETTLED: Final = frozenset({S.PAID, S.OVERPAID, S.CREDITED, S.WRITTEN_OFF})
_ENDS: Final = frozenset({S.PAID, S.OVERPAID, S.CREDITED, S.WRITTEN_OFF})

# The legal transitions. Staying in the same status is always legal (an amount changed).
TRANSITIONS: Final[dict[InvoiceStatus, frozenset[InvoiceStatus]]] = {
    S.OPEN: frozenset({S.PART_PAID, S.OVERDUE} | _ENDS),
    S.PART_PAID: frozenset({S.OVERDUE} | _ENDS),
    S.OVERDUE: frozenset({S.REMINDED, S.COLLECTION_NOTICE} | _ENDS),
    S.REMINDED: frozenset({S.COLLECTION_NOTICE} | _ENDS),
    S.COLLECTION_NOTICE: frozenset({S.IN_COLLECTION} | _ENDS),
    S.IN_COLLECTION: frozenset(_ENDS),
    # A paid invoice can still be credited (the money becomes the customer's credit balance),
    # and receive more money (then it is overpaid).
    S.PAID: frozenset({S.OVERPAID, S.CREDITED}),
    S.OVERPAID: frozenset({S.CREDITED}),
    S.CREDITED: frozenset(),
    S.WRITTEN_OFF: frozenset(),
}


class IllegalTransition(FailedPrecondition):
    def __init__(self, current: InvoiceStatus, new: InvoiceStatus) -> None:
        super().__init__(f"an invoice cannot go from {current} to {new}", reason="ILLEGAL_TRANSITION")
        self.current = current
        self.new = new


def check_transition(current: InvoiceStatus, new: InvoiceStatus) -> None:
    if new != current and new not in TRANSITIONS[current]:
        raise IllegalTransition(current, new)


@dataclass(frozen=True)
class Position:
    """The money on one invoice, in minor units."""

    gross: int
    charges: int = 0
    paid: int = 0
    credited: int = 0
    written_off: int = 0
    # Money paid to this invoice beyond what it owed (moved to the customer's credit balance).
    overpaid: int = 0

    @property
    def owed(self) -> int:
        return self.gross + self.charges

    @property
    def balance(self) -> int:
        return max(0, self.owed - self.paid - self.credited - self.written_off)

    @property
    def left_to_credit(self) -> int:
        return self.gross - self.credited


def derive_status(
    position: Position,
    *,
    due_date: date,
    today: date,
    dunning_stage: DunningStage,
    is_credit_note: bool = False,
) -> InvoiceStatus:
    """The one rule for what an invoice's status is."""
    if is_credit_note:
        return S.CREDITED
    if position.balance == 0:
        if position.credited > 0 and position.credited >= position.gross:
            return S.CREDITED
        if position.written_off > 0:
            return S.WRITTEN_OFF
        return S.OVERPAID if position.overpaid > 0 else S.PAID
    if dunning_stage >= DunningStage.IN_COLLECTION:
        return S.IN_COLLECTION
    if dunning_stage == DunningStage.COLLECTION_NOTICE:
        return S.COLLECTION_NOTICE
    if dunning_stage == DunningStage.REMINDED:
        return S.REMINDED
    if due_date < today:
        return S.OVERDUE
    if position.paid > 0 or position.credited > 0:
        return S.PART_PAID
    return S.OPEN


def next_status(
    current: InvoiceStatus,
    position: Position,
    *,
    due_date: date,
    today: date,
    dunning_stage: DunningStage,
) -> InvoiceStatus:
    """Derive the status after a change and check the move is legal."""
    new = derive_status(position, due_date=due_date, today=today, dunning_stage=dunning_stage)
    check_transition(current, new)
    return new


def status_after_return(
    current: InvoiceStatus,
    position: Position,
    *,
    due_date: date,
    today: date,
    dunning_stage: DunningStage,
) -> InvoiceStatus:
    """The status after the bank returned a payment: derived again from what is still paid, so a paid
    invoice is open, overdue or reminded again (its dunning stage kept), and an over-paid one paid.

    The one way back from paid: the money never arrived. A credited or written-off invoice is never
    re-opened here; its claim ended on its own grounds (the caller refuses to return payments there).
    """
    new = derive_status(position, due_date=due_date, today=today, dunning_stage=dunning_stage)
    closed = (S.CREDITED, S.WRITTEN_OFF)
    if new != current and (current in closed or new in closed):
        raise IllegalTransition(current, new)
    return new


def is_settled(status: InvoiceStatus) -> bool:
    return status in _SETTLED


def check_can_receive_payment(status: InvoiceStatus) -> None:
    """Money is never applied to a credited or written-off claim: it goes to manual handling."""
    if status in (S.CREDITED, S.WRITTEN_OFF):
        raise FailedPrecondition(
            f"the invoice is {status}; a payment cannot be applied to it", reason=f"INVOICE_{status.upper()}"
        )


def check_can_credit(status: InvoiceStatus, position: Position, amount: int) -> None:
    if status in (S.CREDITED, S.WRITTEN_OFF):
        raise FailedPrecondition(
            f"the invoice is {status}; nothing is left to credit", reason=f"INVOICE_{status.upper()}"
        )
    if amount > position.left_to_credit:
        raise FailedPrecondition(
            f"the credit note ({amount}) exceeds what is left to credit ({position.left_to_credit})",
            reason="CREDIT_EXCEEDS_INVOICE",
        )


def check_can_write_off(status: InvoiceStatus, position: Position) -> None:
    if is_settled(status) or position.balance == 0:
        raise FailedPrecondition(
            f"the invoice is {status}; there is nothing to write off", reason="NOTHING_TO_WRITE_OFF"
        )


DUNNING_ACTIONS: Final = (
    "nudge",
    "reminder",
    "collection_notice",
    "collection_handoff",
    "late_interest",
    "compensation",
)


def dunning_stage_after(action: str, current: DunningStage) -> DunningStage:
    """The stage an applied action leaves the invoice at (a nudge, interest and compensation leave it
    where it was)."""
    return {
        "reminder": max(current, DunningStage.REMINDED),
        "collection_notice": max(current, DunningStage.COLLECTION_NOTICE),
        "collection_handoff": DunningStage.IN_COLLECTION,
    }.get(action, current)


def dunning_rejection(
    action: str,
    *,
    status: InvoiceStatus,
    version: int,
    based_on_version: int,
    stage: DunningStage,
    balance: int,
) -> tuple[str, str] | None:
    """Why a proposed dunning action must not be applied, as (reason code, detail); None = apply it.

    A proposal based on an older version is stale: the invoice changed (often: it was paid) after
    the dunning service looked at it. This is how a reminder never reaches a customer who just paid.
    """
    if action not in DUNNING_ACTIONS:
        return "UNKNOWN_ACTION", f"unknown dunning action {action!r}"
    if is_settled(status) or balance == 0:
        return "INVOICE_SETTLED", f"the invoice is {status}"
    if based_on_version != version:
        return "STALE", f"based on version {based_on_version}, the invoice is at version {version}"
    if status in (S.OPEN, S.PART_PAID) and action != "nudge":
        # A nudge may come before the due date (to customers who paid late before).
        return "NOT_OVERDUE", "the invoice is not overdue"
    if action == "nudge" and stage > DunningStage.NONE:
        # A nudge is the friendly word before the first reminder, never a softer step after one.
        return "STAGE_PASSED", f"a nudge comes before reminders; the invoice is at stage {stage.name.lower()}"
    if action == "collection_handoff" and stage < DunningStage.COLLECTION_NOTICE:
        return "NO_COLLECTION_NOTICE", "a claim is handed to collection only after a collection notice"
    # The stage the action itself stands for, not max(it, stage): a reminder after the notice is refused.
    if action in ("reminder", "collection_notice") and dunning_stage_after(action, DunningStage.NONE) < stage:
        return "STAGE_PASSED", f"the invoice is already at dunning stage {stage.name.lower()}"
    if stage >= DunningStage.IN_COLLECTION and action != "late_interest":
        return "IN_COLLECTION", "the claim is with the collection agency"
    return None


def is_compensation(charge_kind: str) -> bool:
    """Whether a charge line is the fixed B2B compensation ("compensation", "reminder_compensation")."""
    return charge_kind == "compensation" or charge_kind.endswith("_compensation")


def charge_rejection(
    action: str,
    *,
    fee: int,
    interest: int,
    compensation: int,
    customer_kind: str,
    compensation_charged: bool,
) -> tuple[str, str] | None:
    """Why the amounts a dunning action proposes must not be charged, as (reason code, detail);
    None = charge them. The action itself is judged by `dunning_rejection` first."""
    if action == "nudge" and (fee or interest or compensation):
        return "NUDGE_CHARGES", "a nudge charges no fee, interest or compensation"
    if compensation and customer_kind != "business":
        # NO: forsinkelsesrenteloven § 3a (standardkompensasjon); SE: lag (2013:7) (förseningsersättning).
        return "COMPENSATION_FROM_CONSUMER", "the fixed compensation is charged to businesses only"
    if compensation and compensation_charged:
        # A fixed amount per claim, once (the dunning service subtracts fees already charged).
        return "COMPENSATION_CHARGED", "the fixed compensation was charged on this claim already"
    return None
