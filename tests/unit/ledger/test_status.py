"""Invoice status: the transition table, the one derivation rule, and what may happen to an invoice."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.errors import FailedPrecondition
from services.ledger.domain import journal
from services.ledger.domain.status import (
    DUNNING_ACTIONS,
    TRANSITIONS,
    DunningStage,
    IllegalTransition,
    InvoiceStatus,
    Position,
    charge_rejection,
    check_can_credit,
    check_can_receive_payment,
    check_can_write_off,
    check_transition,
    derive_status,
    dunning_rejection,
    dunning_stage_after,
    is_compensation,
    is_settled,
    next_status,
)

S = InvoiceStatus
ALL = list(InvoiceStatus)
SETTLED = {S.PAID, S.OVERPAID, S.CREDITED, S.WRITTEN_OFF}
UNSETTLED = [s for s in ALL if s not in SETTLED]
DUE = date(2026, 3, 1)
BEFORE_DUE = DUE - timedelta(days=3)
AFTER_DUE = DUE + timedelta(days=1)

# The specification, written out independently of the module: each status and where it may go.
LEGAL: dict[InvoiceStatus, set[InvoiceStatus]] = {
    S.OPEN: {S.PART_PAID, S.OVERDUE, *SETTLED},
    S.PART_PAID: {S.OVERDUE, *SETTLED},
    S.OVERDUE: {S.REMINDED, S.COLLECTION_NOTICE, *SETTLED},
    S.REMINDED: {S.COLLECTION_NOTICE, *SETTLED},
    S.COLLECTION_NOTICE: {S.IN_COLLECTION, *SETTLED},
    S.IN_COLLECTION: set(SETTLED),
    S.PAID: {S.OVERPAID, S.CREDITED},
    S.OVERPAID: {S.CREDITED},
    S.CREDITED: set(),
    S.WRITTEN_OFF: set(),
}
PAIRS = [(a, b) for a in ALL for b in ALL]
LEGAL_PAIRS = [(a, b) for a, b in PAIRS if a == b or b in LEGAL[a]]
ILLEGAL_PAIRS = [(a, b) for a, b in PAIRS if (a, b) not in LEGAL_PAIRS]


def reachable_from(start: InvoiceStatus) -> set[InvoiceStatus]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in TRANSITIONS[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def derive(
    position: Position, *, today: date = BEFORE_DUE, stage: DunningStage = DunningStage.NONE
) -> InvoiceStatus:
    return derive_status(position, due_date=DUE, today=today, dunning_stage=stage)


# --- the transition table -----------------------------------------------------------------------


def test_table_covers_every_status_and_matches_the_specification() -> None:
    assert set(TRANSITIONS) == set(InvoiceStatus)
    assert {status: set(targets) for status, targets in TRANSITIONS.items()} == LEGAL


def test_every_pair_is_classified() -> None:
    assert len(PAIRS) == len(InvoiceStatus) ** 2 == 100
    assert len(LEGAL_PAIRS) + len(ILLEGAL_PAIRS) == 100


@pytest.mark.parametrize(("current", "new"), LEGAL_PAIRS, ids=[f"{a}->{b}" for a, b in LEGAL_PAIRS])
def test_legal_transition_passes(current: InvoiceStatus, new: InvoiceStatus) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(("current", "new"), ILLEGAL_PAIRS, ids=[f"{a}->{b}" for a, b in ILLEGAL_PAIRS])
def test_illegal_transition_raises(current: InvoiceStatus, new: InvoiceStatus) -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition(current, new)
    error = caught.value
    assert isinstance(error, FailedPrecondition)
    assert error.reason == "ILLEGAL_TRANSITION"
    assert (error.current, error.new) == (current, new)
    assert str(current) in error.message
    assert str(new) in error.message


@pytest.mark.parametrize("status", ALL)
def test_staying_put_is_always_legal(status: InvoiceStatus) -> None:
    check_transition(status, status)


@pytest.mark.parametrize("status", [S.CREDITED, S.WRITTEN_OFF])
def test_credited_and_written_off_are_final(status: InvoiceStatus) -> None:
    assert reachable_from(status) == {status}


def test_every_status_is_reachable_from_open() -> None:
    assert reachable_from(S.OPEN) == set(InvoiceStatus)


def test_dunning_never_goes_backwards() -> None:
    assert S.OVERDUE not in reachable_from(S.REMINDED)
    assert S.REMINDED not in reachable_from(S.COLLECTION_NOTICE)
    assert S.COLLECTION_NOTICE not in reachable_from(S.IN_COLLECTION)
    assert S.OPEN not in reachable_from(S.PART_PAID)


def test_collection_needs_a_notice_first() -> None:
    for status in (S.OPEN, S.PART_PAID, S.OVERDUE, S.REMINDED):
        with pytest.raises(IllegalTransition):
            check_transition(status, S.IN_COLLECTION)


# --- is_settled and Position --------------------------------------------------------------------


@pytest.mark.parametrize("status", ALL)
def test_is_settled(status: InvoiceStatus) -> None:
    assert is_settled(status) is (status in SETTLED)


def test_position_amounts() -> None:
    position = Position(gross=1000, charges=35, paid=300, credited=200, written_off=0, overpaid=0)
    assert position.owed == 1035
    assert position.balance == 535
    assert position.left_to_credit == 800


def test_position_balance_is_clamped_at_zero() -> None:
    assert Position(gross=1000, paid=1500, overpaid=500).balance == 0
    assert Position(gross=1000, paid=1000, credited=1000).balance == 0


# --- derive_status, one concrete position per status --------------------------------------------


def test_derive_open() -> None:
    assert derive(Position(gross=1250)) == S.OPEN


def test_derive_open_on_the_due_date() -> None:
    assert derive(Position(gross=1250), today=DUE) == S.OPEN


def test_derive_part_paid() -> None:
    assert derive(Position(gross=1250, paid=250)) == S.PART_PAID


def test_derive_part_paid_by_a_partial_credit() -> None:
    assert derive(Position(gross=1250, credited=250)) == S.PART_PAID


def test_derive_paid() -> None:
    assert derive(Position(gross=1250, paid=1250)) == S.PAID


def test_derive_paid_with_charges() -> None:
    assert derive(Position(gross=1250, charges=35, paid=1285), stage=DunningStage.REMINDED) == S.PAID


def test_derive_paid_after_a_partial_credit() -> None:
    assert derive(Position(gross=1250, paid=1000, credited=250)) == S.PAID


def test_derive_overpaid() -> None:
    assert derive(Position(gross=1250, paid=1250, overpaid=100)) == S.OVERPAID


def test_derive_credited() -> None:
    assert derive(Position(gross=1250, credited=1250)) == S.CREDITED


def test_derive_credited_after_payment_moved_to_customer_credit() -> None:
    assert derive(Position(gross=1250, paid=1250, credited=1250, overpaid=1250)) == S.CREDITED


def test_derive_credited_wins_over_dunning_stage() -> None:
    position = Position(gross=1250, credited=1250)
    assert derive(position, today=AFTER_DUE, stage=DunningStage.IN_COLLECTION) == S.CREDITED


def test_derive_credit_note_is_always_credited() -> None:
    position = Position(gross=500, credited=500)
    status = derive_status(
        position, due_date=DUE, today=AFTER_DUE, dunning_stage=DunningStage.NONE, is_credit_note=True
    )
    assert status == S.CREDITED


def test_derive_overdue() -> None:
    assert derive(Position(gross=1250), today=AFTER_DUE) == S.OVERDUE


def test_derive_overdue_wins_over_part_paid() -> None:
    assert derive(Position(gross=1250, paid=250), today=AFTER_DUE) == S.OVERDUE


def test_derive_reminded() -> None:
    assert (
        derive(Position(gross=1250, charges=35), today=AFTER_DUE, stage=DunningStage.REMINDED) == S.REMINDED
    )


def test_derive_collection_notice() -> None:
    position = Position(gross=1250, charges=70)
    assert derive(position, today=AFTER_DUE, stage=DunningStage.COLLECTION_NOTICE) == S.COLLECTION_NOTICE


def test_derive_in_collection() -> None:
    position = Position(gross=1250, charges=70, paid=100)
    assert derive(position, today=AFTER_DUE, stage=DunningStage.IN_COLLECTION) == S.IN_COLLECTION


def test_derive_written_off() -> None:
    position = Position(gross=1250, paid=250, written_off=1000)
    assert derive(position, today=AFTER_DUE, stage=DunningStage.IN_COLLECTION) == S.WRITTEN_OFF


def test_derive_written_off_wins_over_overpaid() -> None:
    assert derive(Position(gross=1250, written_off=1250, overpaid=10)) == S.WRITTEN_OFF


def test_derive_covers_every_status() -> None:
    seen = {
        derive(Position(gross=1)),
        derive(Position(gross=2, paid=1)),
        derive(Position(gross=1, paid=1)),
        derive(Position(gross=1, paid=1, overpaid=1)),
        derive(Position(gross=1, credited=1)),
        derive(Position(gross=1), today=AFTER_DUE),
        derive(Position(gross=1), today=AFTER_DUE, stage=DunningStage.REMINDED),
        derive(Position(gross=1), today=AFTER_DUE, stage=DunningStage.COLLECTION_NOTICE),
        derive(Position(gross=1), today=AFTER_DUE, stage=DunningStage.IN_COLLECTION),
        derive(Position(gross=1, written_off=1)),
    }
    assert seen == set(InvoiceStatus)


# --- next_status --------------------------------------------------------------------------------


def test_next_status_follows_a_legal_move() -> None:
    after = next_status(
        S.OPEN,
        Position(gross=1000, paid=400),
        due_date=DUE,
        today=BEFORE_DUE,
        dunning_stage=DunningStage.NONE,
    )
    assert after == S.PART_PAID


def test_next_status_refuses_an_illegal_move() -> None:
    # A credited invoice that somehow owes money again must not silently reopen.
    with pytest.raises(IllegalTransition) as caught:
        next_status(
            S.CREDITED, Position(gross=1000), due_date=DUE, today=BEFORE_DUE, dunning_stage=DunningStage.NONE
        )
    assert (caught.value.current, caught.value.new) == (S.CREDITED, S.OPEN)


# --- properties ---------------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=10**9)
days = st.integers(min_value=-400, max_value=400)
stages = st.sampled_from(DunningStage)


@st.composite
def positions(draw: st.DrawFn) -> Position:
    return Position(
        gross=draw(st.integers(min_value=1, max_value=10**9)),
        charges=draw(amounts),
        paid=draw(amounts),
        credited=draw(amounts),
        written_off=draw(amounts),
        overpaid=draw(amounts),
    )


REACHABLE_FROM_OPEN = reachable_from(S.OPEN)
# The status of an unpaid, overdue invoice at each dunning stage.
STATUS_AT_STAGE = {
    DunningStage.NONE: S.OVERDUE,
    DunningStage.REMINDED: S.REMINDED,
    DunningStage.COLLECTION_NOTICE: S.COLLECTION_NOTICE,
    DunningStage.IN_COLLECTION: S.IN_COLLECTION,
}


@given(positions(), days, stages, st.booleans())
def test_derived_status_is_reachable_from_open(
    position: Position, offset: int, stage: DunningStage, credit_note: bool
) -> None:
    status = derive_status(
        position,
        due_date=DUE,
        today=DUE + timedelta(days=offset),
        dunning_stage=stage,
        is_credit_note=credit_note,
    )
    assert status in REACHABLE_FROM_OPEN


@given(positions())
def test_balance_is_never_negative(position: Position) -> None:
    assert position.balance >= 0
    assert position.balance == max(
        0, position.owed - position.paid - position.credited - position.written_off
    )


@given(positions(), days, stages)
def test_settled_status_means_zero_balance_and_back(
    position: Position, offset: int, stage: DunningStage
) -> None:
    status = derive_status(position, due_date=DUE, today=DUE + timedelta(days=offset), dunning_stage=stage)
    assert is_settled(status) == (position.balance == 0)


@given(positions(), days, stages)
def test_dunning_stage_decides_the_status_of_an_unpaid_invoice(
    position: Position, offset: int, stage: DunningStage
) -> None:
    derived = derive_status(position, due_date=DUE, today=DUE + timedelta(days=offset), dunning_stage=stage)
    if position.balance and stage != DunningStage.NONE:
        assert derived == STATUS_AT_STAGE[stage]


# --- what may happen to an invoice --------------------------------------------------------------


@pytest.mark.parametrize("status", [s for s in ALL if s not in (S.CREDITED, S.WRITTEN_OFF)])
def test_payment_can_be_received(status: InvoiceStatus) -> None:
    check_can_receive_payment(status)


@pytest.mark.parametrize(
    ("status", "reason"), [(S.CREDITED, "INVOICE_CREDITED"), (S.WRITTEN_OFF, "INVOICE_WRITTEN_OFF")]
)
def test_payment_refused_on_a_closed_claim(status: InvoiceStatus, reason: str) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_can_receive_payment(status)
    assert caught.value.reason == reason


@pytest.mark.parametrize("status", [s for s in ALL if s not in (S.CREDITED, S.WRITTEN_OFF)])
def test_credit_allowed_up_to_what_is_left(status: InvoiceStatus) -> None:
    position = Position(gross=1000, paid=1000 if status in (S.PAID, S.OVERPAID) else 0, credited=300)
    check_can_credit(status, position, 700)
    check_can_credit(status, position, 1)


@pytest.mark.parametrize(
    ("status", "reason"), [(S.CREDITED, "INVOICE_CREDITED"), (S.WRITTEN_OFF, "INVOICE_WRITTEN_OFF")]
)
def test_credit_refused_on_a_closed_claim(status: InvoiceStatus, reason: str) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_can_credit(status, Position(gross=1000), 1)
    assert caught.value.reason == reason


def test_credit_refused_beyond_what_is_left() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_can_credit(S.PART_PAID, Position(gross=1000, credited=300), 701)
    assert caught.value.reason == "CREDIT_EXCEEDS_INVOICE"
    assert "700" in caught.value.message


def test_charges_cannot_be_credited() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_can_credit(S.REMINDED, Position(gross=1000, charges=35), 1035)
    assert caught.value.reason == "CREDIT_EXCEEDS_INVOICE"


@pytest.mark.parametrize("status", UNSETTLED)
def test_write_off_allowed_with_a_balance(status: InvoiceStatus) -> None:
    check_can_write_off(status, Position(gross=1000, paid=100))


@pytest.mark.parametrize("status", sorted(SETTLED))
def test_write_off_refused_when_settled(status: InvoiceStatus) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_can_write_off(status, Position(gross=1000, paid=100))
    assert caught.value.reason == "NOTHING_TO_WRITE_OFF"


def test_write_off_refused_without_a_balance() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        check_can_write_off(S.OVERDUE, Position(gross=1000, paid=1000))
    assert caught.value.reason == "NOTHING_TO_WRITE_OFF"


# --- dunning ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "current", "after"),
    [
        ("reminder", DunningStage.NONE, DunningStage.REMINDED),
        ("reminder", DunningStage.REMINDED, DunningStage.REMINDED),
        ("reminder", DunningStage.COLLECTION_NOTICE, DunningStage.COLLECTION_NOTICE),
        ("collection_notice", DunningStage.NONE, DunningStage.COLLECTION_NOTICE),
        ("collection_notice", DunningStage.REMINDED, DunningStage.COLLECTION_NOTICE),
        ("collection_notice", DunningStage.IN_COLLECTION, DunningStage.IN_COLLECTION),
        ("collection_handoff", DunningStage.COLLECTION_NOTICE, DunningStage.IN_COLLECTION),
        ("late_interest", DunningStage.REMINDED, DunningStage.REMINDED),
        ("compensation", DunningStage.NONE, DunningStage.NONE),
        ("nudge", DunningStage.NONE, DunningStage.NONE),
        ("something_else", DunningStage.REMINDED, DunningStage.REMINDED),
    ],
)
def test_dunning_stage_after(action: str, current: DunningStage, after: DunningStage) -> None:
    assert dunning_stage_after(action, current) == after


def reject(
    action: str,
    status: InvoiceStatus = S.OVERDUE,
    *,
    stage: DunningStage = DunningStage.NONE,
    version: int = 4,
    based_on: int = 4,
    balance: int = 1000,
) -> str | None:
    rejection = dunning_rejection(
        action, status=status, version=version, based_on_version=based_on, stage=stage, balance=balance
    )
    return None if rejection is None else rejection[0]


R, CN, IC = DunningStage.REMINDED, DunningStage.COLLECTION_NOTICE, DunningStage.IN_COLLECTION


@pytest.mark.parametrize(
    ("action", "status", "stage"),
    [
        ("reminder", S.OVERDUE, DunningStage.NONE),
        ("reminder", S.REMINDED, R),  # the second reminder the law allows
        ("collection_notice", S.OVERDUE, DunningStage.NONE),
        ("collection_notice", S.REMINDED, R),
        ("collection_handoff", S.COLLECTION_NOTICE, CN),
        ("late_interest", S.OVERDUE, DunningStage.NONE),
        ("late_interest", S.IN_COLLECTION, IC),
        ("compensation", S.REMINDED, R),
        ("nudge", S.OVERDUE, DunningStage.NONE),
    ],
)
def test_dunning_applied(action: str, status: InvoiceStatus, stage: DunningStage) -> None:
    assert reject(action, status, stage=stage) is None


@pytest.mark.parametrize(
    ("action", "status", "stage", "reason"),
    [
        ("reminder", S.OVERDUE, DunningStage.NONE, None),
        ("refund", S.OVERDUE, DunningStage.NONE, "UNKNOWN_ACTION"),
        ("", S.OVERDUE, DunningStage.NONE, "UNKNOWN_ACTION"),
        ("reminder", S.OPEN, DunningStage.NONE, "NOT_OVERDUE"),
        ("late_interest", S.PART_PAID, DunningStage.NONE, "NOT_OVERDUE"),
        ("collection_handoff", S.OVERDUE, DunningStage.NONE, "NO_COLLECTION_NOTICE"),
        ("collection_handoff", S.REMINDED, R, "NO_COLLECTION_NOTICE"),
        ("reminder", S.COLLECTION_NOTICE, CN, "STAGE_PASSED"),
        ("reminder", S.IN_COLLECTION, IC, "STAGE_PASSED"),
        ("collection_notice", S.IN_COLLECTION, IC, "STAGE_PASSED"),
        ("collection_handoff", S.IN_COLLECTION, IC, "IN_COLLECTION"),
        ("compensation", S.IN_COLLECTION, IC, "IN_COLLECTION"),
        # A nudge: before any reminder; also before the due date (the early nudge to a customer who
        # paid late before).
        ("nudge", S.OPEN, DunningStage.NONE, None),
        ("nudge", S.PART_PAID, DunningStage.NONE, None),
        ("nudge", S.REMINDED, R, "STAGE_PASSED"),
        ("nudge", S.COLLECTION_NOTICE, CN, "STAGE_PASSED"),
        ("nudge", S.IN_COLLECTION, IC, "STAGE_PASSED"),
    ],
)
def test_dunning_rejected(
    action: str, status: InvoiceStatus, stage: DunningStage, reason: str | None
) -> None:
    assert reject(action, status, stage=stage) == reason


@pytest.mark.parametrize("action", DUNNING_ACTIONS)
def test_stale_proposal_is_rejected(action: str) -> None:
    rejection = dunning_rejection(
        action, status=S.REMINDED, version=7, based_on_version=6, stage=R, balance=1000
    )
    assert rejection is not None
    assert rejection[0] == "STALE"
    assert "6" in rejection[1]
    assert "7" in rejection[1]


@pytest.mark.parametrize("status", sorted(SETTLED))
@pytest.mark.parametrize("action", DUNNING_ACTIONS)
def test_settled_invoice_is_never_dunned(action: str, status: InvoiceStatus) -> None:
    assert reject(action, status, balance=0) == "INVOICE_SETTLED"
    # Settled wins over stale: the customer who just paid is told nothing about versions.
    assert reject(action, status, balance=0, based_on=1) == "INVOICE_SETTLED"


@pytest.mark.parametrize("action", DUNNING_ACTIONS)
def test_zero_balance_is_never_dunned(action: str) -> None:
    assert reject(action, S.OVERDUE, balance=0) == "INVOICE_SETTLED"


@given(
    st.sampled_from([*DUNNING_ACTIONS, "bogus"]),
    stages,
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=10_000),
)
def test_an_applied_dunning_action_moves_the_status_legally(
    action: str, stage: DunningStage, version: int, based_on: int, balance: int
) -> None:
    status = STATUS_AT_STAGE[stage] if balance else S.PAID
    rejection = dunning_rejection(
        action, status=status, version=version, based_on_version=based_on, stage=stage, balance=balance
    )
    if rejection is None:
        assert balance > 0
        assert version == based_on
        assert action in DUNNING_ACTIONS
        after = dunning_stage_after(action, stage)
        assert after >= stage
        check_transition(status, STATUS_AT_STAGE[after])
    else:
        assert rejection[0] in {
            "UNKNOWN_ACTION",
            "INVOICE_SETTLED",
            "STALE",
            "NO_COLLECTION_NOTICE",
            "STAGE_PASSED",
            "IN_COLLECTION",
        }


def charges(
    action: str,
    *,
    fee: int = 0,
    interest: int = 0,
    compensation: int = 0,
    customer_kind: str = "business",
    charged: bool = False,
) -> str | None:
    rejection = charge_rejection(
        action,
        fee=fee,
        interest=interest,
        compensation=compensation,
        customer_kind=customer_kind,
        compensation_charged=charged,
    )
    return None if rejection is None else rejection[0]


@pytest.mark.parametrize(
    ("fee", "interest", "compensation", "reason"),
    [
        (0, 0, 0, None),
        (3500, 0, 0, "NUDGE_CHARGES"),
        (0, 1, 0, "NUDGE_CHARGES"),
        (0, 0, 47_000, "NUDGE_CHARGES"),
    ],
)
def test_a_nudge_charges_nothing(fee: int, interest: int, compensation: int, reason: str | None) -> None:
    assert charges("nudge", fee=fee, interest=interest, compensation=compensation) == reason


def test_the_fixed_compensation_only_from_a_business_and_once() -> None:
    assert charges("reminder", fee=3500, compensation=43_500) is None
    assert charges("collection_notice", compensation=47_000) is None
    assert charges("compensation", compensation=47_000) is None
    assert charges("reminder", compensation=43_500, customer_kind="consumer") == "COMPENSATION_FROM_CONSUMER"
    assert charges("reminder", fee=3500, customer_kind="consumer") is None
    assert charges("collection_notice", compensation=47_000, charged=True) == "COMPENSATION_CHARGED"
    assert charges("collection_notice", fee=3500, charged=True) is None


def test_which_charge_lines_are_the_compensation() -> None:
    assert is_compensation("reminder_compensation")
    assert is_compensation("compensation")
    assert not is_compensation("reminder_fee")
    assert not is_compensation("late_interest_interest")


# --- a whole life: random operations, applied as the ledger applies them ------------------------


@dataclass
class Invoice:
    status: InvoiceStatus = S.OPEN
    position: Position = dataclasses.field(default_factory=lambda: Position(gross=10_000))
    stage: DunningStage = DunningStage.NONE
    version: int = 1
    today: date = DUE - timedelta(days=14)

    def change(self, **amounts: int) -> None:
        self.position = dataclasses.replace(self.position, **amounts)
        self.status = next_status(
            self.status, self.position, due_date=DUE, today=self.today, dunning_stage=self.stage
        )
        self.version += 1


def _pay(invoice: Invoice, amount: int) -> None:
    if invoice.status in (S.CREDITED, S.WRITTEN_OFF):
        with pytest.raises(FailedPrecondition):
            check_can_receive_payment(invoice.status)
        return
    pos = invoice.position
    applied = min(amount, pos.balance)
    postings = journal.payment_received(applied, amount - applied)
    assert sum(p.debit for p in postings) == sum(p.credit for p in postings) == amount
    invoice.change(paid=pos.paid + applied, overpaid=pos.overpaid + amount - applied)


def _credit(invoice: Invoice, amount: int) -> None:
    pos = invoice.position
    try:
        check_can_credit(invoice.status, pos, amount)
    except FailedPrecondition:
        assert invoice.status in (S.CREDITED, S.WRITTEN_OFF) or amount > pos.left_to_credit
        return
    to_customer_credit = max(0, amount - pos.balance)
    postings = journal.credit_note_issued(
        amount * 4 // 5, amount - amount * 4 // 5, to_customer_credit=to_customer_credit
    )
    assert all(p.debit >= 0 and p.credit >= 0 for p in postings)
    invoice.change(credited=pos.credited + amount, overpaid=pos.overpaid + to_customer_credit)


def _write_off(invoice: Invoice, _: int) -> None:
    pos = invoice.position
    try:
        check_can_write_off(invoice.status, pos)
    except FailedPrecondition:
        return
    invoice.change(written_off=pos.written_off + pos.balance)


def _days_pass(invoice: Invoice, amount: int) -> None:
    invoice.today += timedelta(days=amount % 40)
    # The daily overdue sweep runs on even amounts; otherwise the next change finds the invoice late.
    if amount % 2 == 0 and invoice.status in (S.OPEN, S.PART_PAID) and invoice.today > DUE:
        invoice.change()


def _dunning(action: str) -> Callable[[Invoice, int], None]:
    def apply(invoice: Invoice, fee: int) -> None:
        rejection = dunning_rejection(
            action,
            status=invoice.status,
            version=invoice.version,
            based_on_version=invoice.version,
            stage=invoice.stage,
            balance=invoice.position.balance,
        )
        if rejection is not None:
            return
        invoice.stage = dunning_stage_after(action, invoice.stage)
        invoice.change(charges=invoice.position.charges + fee % 100)

    return apply


OPERATIONS: dict[str, Callable[[Invoice, int], None]] = {
    "pay": _pay,
    "credit": _credit,
    "write_off": _write_off,
    "days_pass": _days_pass,
    **{action: _dunning(action) for action in DUNNING_ACTIONS},
}


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(OPERATIONS)), st.integers(min_value=1, max_value=12_000)),
        max_size=20,
    )
)
def test_any_life_of_an_invoice_moves_only_along_legal_transitions(steps: list[tuple[str, int]]) -> None:
    invoice = Invoice()
    for name, amount in steps:
        before = invoice.status
        OPERATIONS[name](invoice, amount)
        assert invoice.position.balance >= 0
        assert is_settled(invoice.status) == (invoice.position.balance == 0)
        assert invoice.position.credited <= invoice.position.gross
        if before in (S.CREDITED, S.WRITTEN_OFF):
            assert invoice.status == before


def test_a_claim_goes_the_whole_way_to_collection_and_is_paid() -> None:
    invoice = Invoice()
    seen = [invoice.status]
    steps = [
        ("reminder", 35),  # refused: not overdue yet
        ("pay", 4_000),
        ("days_pass", 20),
        ("reminder", 35),
        ("reminder", 35),  # the second reminder
        ("collection_notice", 35),
        ("reminder", 35),  # refused: the notice is out
        ("collection_handoff", 0),
        ("late_interest", 42),
        ("pay", 6_000 + 3 * 35 + 42),
    ]
    for name, amount in steps:
        OPERATIONS[name](invoice, amount)
        seen.append(invoice.status)
    assert seen == [
        S.OPEN,
        S.OPEN,
        S.PART_PAID,
        S.OVERDUE,
        S.REMINDED,
        S.REMINDED,
        S.COLLECTION_NOTICE,
        S.COLLECTION_NOTICE,
        S.IN_COLLECTION,
        S.IN_COLLECTION,
        S.PAID,
    ]
    assert invoice.position.charges == 3 * 35 + 42
    assert invoice.position.balance == 0
    assert invoice.position.overpaid == 0
