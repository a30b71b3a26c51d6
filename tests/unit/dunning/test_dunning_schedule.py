"""The step decision: which step is due when, with which fee, interest, compensation and deadline, and
every reason there is none — paid, not due, waiting for a deadline or the window, held."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.dunning.domain.interest import PartPayment
from services.dunning.domain.policy import Policy, Step, default_policy
from services.dunning.domain.schedule import (
    BankFiles,
    DebitInFlight,
    Decision,
    Holds,
    InvoiceState,
    Pause,
    PendingPayment,
    TakenStep,
    decide,
    decide_all,
)
from tests.unit.dunning.dunning_fixtures import at, invoice, taken, with_step, with_steps

NO_CONSUMER = default_policy("NO", "consumer")
NO_BUSINESS = default_policy("NO", "business")
SE_CONSUMER = default_policy("SE", "consumer")
SE_BUSINESS = default_policy("SE", "business")
DUE = date(2026, 11, 2)  # a Monday


def walk(state: InvoiceState, policy: Policy, days: int = 60, hour: int = 12) -> list[TakenStep]:
    """Decide once a day at `hour`, taking every due step as the ledger would apply it."""
    for n in range(days):
        day = state.due_date + timedelta(days=n - 1)
        decision = decide(state, policy, at(day, hour, jurisdiction=policy.jurisdiction))
        if decision.outcome == "due":
            step = decision.step
            assert step is not None
            done = TakenStep(step.kind, day, step.deadline, step.fee_minor, step.compensation_minor)
            state = replace(
                state,
                history=(*state.history, done),
                interest_charged_minor=state.interest_charged_minor + step.interest_minor,
                balance_minor=state.balance_minor
                + step.fee_minor
                + step.interest_minor
                + step.compensation_minor,
            )
    return list(state.history)


def test_norway_consumer_nudge_reminder_inkassovarsel_hand_off() -> None:
    assert walk(invoice(DUE), NO_CONSUMER) == [
        TakenStep("nudge", date(2026, 11, 5)),
        TakenStep("reminder", date(2026, 11, 16), date(2026, 11, 30), 3_500),
        TakenStep("collection_notice", date(2026, 12, 1), date(2026, 12, 15), 3_500),
        TakenStep("collection_handoff", date(2026, 12, 16)),
    ]


def test_the_amounts_of_the_inkassovarsel() -> None:
    history = (
        taken("nudge", date(2026, 11, 5)),
        taken("reminder", date(2026, 11, 16), date(2026, 11, 30), 3_500),
    )
    decision = decide(invoice(DUE, history=history), NO_CONSUMER, at(date(2026, 12, 1)))
    assert (decision.outcome, decision.reason) == ("due", "step_due")
    step = decision.step
    assert step is not None
    assert (step.kind, step.index, step.fee_minor, step.deadline, step.show_interest) == (
        "collection_notice",
        2,
        3_500,
        date(2026, 12, 15),
        True,
    )
    # 1000 kr at 12.5 % (carried forward from 2025: a placeholder, noted) for 29 days
    assert step.interest_to_date_minor == step.interest_minor == round(100_000 * 0.125 * 29 / 365)
    assert [n.rule_id for n in step.notes] == ["NO.interest.rate"]
    assert decision.based_on_version == 7
    charged_before = replace(invoice(DUE, history=history), interest_charged_minor=500)
    again = decide(charged_before, NO_CONSUMER, at(date(2026, 12, 1)))
    assert again.step is not None
    assert again.step.interest_minor == step.interest_to_date_minor - 500


def test_paid_or_closed_gets_nothing() -> None:
    # Paid an hour before the reminder would have gone.
    paid = invoice(DUE, status="paid", balance=0, history=(taken("nudge", date(2026, 11, 5)),))
    decision = decide(paid, NO_CONSUMER, at(date(2026, 11, 16), 9))
    assert (decision.outcome, decision.reason, decision.step) == ("done", "paid", None)
    assert decide(invoice(DUE, balance=0), NO_CONSUMER, at(date(2026, 11, 16))).reason == "paid"
    assert (
        decide(invoice(DUE, status="credited", balance=0), NO_CONSUMER, at(date(2026, 11, 16))).reason
        == "closed"
    )
    assert decide(invoice(DUE, status="written_off"), NO_CONSUMER, at(date(2026, 11, 16))).reason == "closed"


def test_not_yet_due() -> None:
    decision = decide(invoice(DUE, status="open"), NO_CONSUMER, at(date(2026, 10, 20)))
    assert (decision.outcome, decision.reason) == ("waiting", "not_due")
    assert decision.step is not None
    assert decision.step.kind == "nudge"
    assert decision.next_check == at(date(2026, 11, 5), 8)


def test_waiting_for_the_offset_and_for_the_deadline() -> None:
    nudged = invoice(DUE, history=(taken("nudge", date(2026, 11, 5)),))
    decision = decide(nudged, NO_CONSUMER, at(date(2026, 11, 10)))
    assert (decision.outcome, decision.reason, decision.next_check) == (
        "waiting",
        "waiting_for_offset",
        at(date(2026, 11, 16), 8),
    )
    reminded = invoice(
        DUE,
        history=(
            taken("nudge", date(2026, 11, 5)),
            taken("reminder", date(2026, 11, 16), date(2026, 11, 30), 3_500),
        ),
    )
    decision = decide(reminded, NO_CONSUMER, at(date(2026, 11, 30), 19))
    assert (decision.outcome, decision.reason, decision.next_check) == (
        "waiting",
        "waiting_for_deadline",
        at(date(2026, 12, 1), 8),
    )


def test_no_step_before_the_last_deadline_whatever_the_policy_says() -> None:
    eager = with_step(NO_CONSUMER, 2, offset_from="due_date", offset_days=20)  # unlawful, but stored before
    reminded = invoice(
        DUE,
        history=(
            taken("nudge", date(2026, 11, 5)),
            taken("reminder", date(2026, 11, 16), date(2026, 11, 30), 3_500),
        ),
    )
    decision = decide(reminded, eager, at(date(2026, 11, 25)))
    assert decision.reason == "waiting_for_deadline"
    assert decision.next_check == at(date(2026, 12, 1), 8)


def test_the_deadline_moves_to_the_next_business_day() -> None:
    # Reminder sent Friday 11 December: 14 days end on Christmas Day → Monday 28 December.
    due = date(2026, 11, 27)
    decision = decide(
        invoice(due, history=(taken("nudge", date(2026, 11, 30)),)), NO_CONSUMER, at(date(2026, 12, 11))
    )
    assert decision.step is not None
    assert decision.step.deadline == date(2026, 12, 28)
    # Swedish inkassokrav sent Friday 11 June 2027: 14 days end on midsommarafton (25 June) → Monday 28 June.
    history = (
        taken("nudge", date(2027, 5, 13)),
        taken("reminder", date(2027, 5, 27), date(2027, 6, 10)),
    )
    decision = decide(
        invoice(date(2027, 5, 10), history=history), SE_CONSUMER, at(date(2027, 6, 11), jurisdiction="SE")
    )
    assert decision.step is not None
    assert (decision.step.kind, decision.step.deadline) == ("collection_notice", date(2027, 6, 28))


def test_a_letter_waits_for_a_business_day_an_sms_does_not() -> None:
    due = date(2026, 11, 7)  # Saturday: the reminder's day 14 is a Saturday too
    history = (taken("nudge", date(2026, 11, 10)),)
    decision = decide(invoice(due, history=history), NO_CONSUMER, at(date(2026, 11, 21)))
    assert (decision.outcome, decision.reason, decision.next_check) == (
        "waiting",
        "waiting_for_window",
        at(date(2026, 11, 23), 8),
    )
    nudge = decide(invoice(date(2026, 11, 4)), NO_CONSUMER, at(date(2026, 11, 7)))  # Saturday
    assert nudge.outcome == "due"


def test_no_sms_at_night() -> None:
    decision = decide(invoice(DUE), NO_CONSUMER, at(date(2026, 11, 5), 22))
    assert (decision.outcome, decision.reason, decision.next_check) == (
        "waiting",
        "waiting_for_window",
        at(date(2026, 11, 6), 8),
    )
    assert decide(invoice(DUE), NO_CONSUMER, at(date(2026, 11, 5), 8)).outcome == "due"
    assert decide(invoice(DUE), NO_CONSUMER, at(date(2026, 11, 5), 7, 59)).outcome == "waiting"


NOW = at(date(2026, 11, 5), 12)


def held(holds: Holds, now: datetime = NOW) -> Decision:
    return decide(invoice(DUE), NO_CONSUMER, now, holds)


def test_a_payment_in_review_naming_the_invoice_holds_it() -> None:
    decision = held(Holds(payments=[PendingPayment("pay-1", ("inv-9", "inv-1"))]))
    assert (decision.outcome, decision.reason) == ("held", "held")
    assert [(h.kind, h.reference) for h in decision.holds] == [("payment_in_review", "pay-1")]
    assert decision.step is not None
    assert decision.step.kind == "nudge"
    assert decision.next_check is None  # until the payment is decided
    assert held(Holds(payments=[PendingPayment("pay-1", ("inv-9",))])).outcome == "due"
    unapplied = held(Holds(payments=[PendingPayment("pay-2", ("inv-1",), "unapplied")]))
    assert [h.kind for h in unapplied.holds] == ["payment_unapplied"]


def test_a_dispute_or_pause_holds_it_until_resumed_or_its_end() -> None:
    dispute = held(Holds(pauses=[Pause("inv-1", "customer disputes the amount", "dispute")]))
    assert [(h.kind, h.reason) for h in dispute.holds] == [("dispute", "customer disputes the amount")]
    until = at(date(2026, 11, 9), 8)
    paused = held(Holds(pauses=[Pause("inv-1", "agreed payment plan", until=until)]))
    assert paused.outcome == "held"
    assert paused.next_check == until
    assert held(Holds(pauses=[Pause("inv-1", "over", until=at(date(2026, 11, 4)))])).outcome == "due"


def test_a_debit_in_flight_holds_it_until_settled() -> None:
    debit = DebitInFlight("inv-1", "avtalegiro", date(2026, 11, 5), date(2026, 11, 6))
    decision = held(Holds(debits=[debit]))
    assert [h.kind for h in decision.holds] == ["debit_in_flight"]
    assert decision.next_check == datetime(2026, 11, 6, 23, tzinfo=UTC)  # midnight after settled_by, in Oslo
    assert held(Holds(debits=[debit]), at(date(2026, 11, 7))).outcome == "due"


def test_todays_bank_files_before_the_cut_off() -> None:
    files = BankFiles(cutoff=time(10), last_import_on=date(2026, 11, 4))
    early = held(Holds(bank_files=files), at(date(2026, 11, 5), 9))
    assert [h.kind for h in early.holds] == ["bank_files_pending"]
    assert early.next_check == at(date(2026, 11, 5), 10)
    late_and_missing = held(Holds(bank_files=files), at(date(2026, 11, 5), 11))
    assert late_and_missing.outcome == "held"
    assert late_and_missing.next_check is None
    arrived = replace(files, last_import_on=date(2026, 11, 5))
    assert held(Holds(bank_files=arrived), at(date(2026, 11, 5), 11)).outcome == "due"
    # On a Saturday the Friday's files are the last there are.
    saturday = at(date(2026, 11, 7), 12)
    friday = BankFiles(time(10), date(2026, 11, 6))
    assert (
        decide(invoice(date(2026, 11, 4)), NO_CONSUMER, saturday, Holds(bank_files=friday)).outcome == "due"
    )
    thursday = BankFiles(time(10), date(2026, 11, 5))
    assert (
        decide(invoice(date(2026, 11, 4)), NO_CONSUMER, saturday, Holds(bank_files=thursday)).outcome
        == "held"
    )


def test_every_hold_is_listed() -> None:
    holds = Holds(
        payments=[PendingPayment("pay-1", ("inv-1",))],
        pauses=[Pause("inv-1", "dispute", "dispute")],
        bank_files=BankFiles(time(10), None),
    )
    assert [h.kind for h in held(holds).holds] == ["payment_in_review", "dispute", "bank_files_pending"]


def test_a_waiting_step_is_not_held() -> None:
    decision = decide(invoice(DUE), NO_CONSUMER, at(date(2026, 11, 4)), Holds(pauses=[Pause("inv-1", "x")]))
    assert decision.outcome == "waiting"


@pytest.mark.parametrize(
    ("due", "day", "fee"),
    [
        (date(2020, 9, 15), date(2020, 10, 1), 7_000),
        (date(2020, 9, 30), date(2020, 10, 14), 7_000),
        (date(2020, 10, 1), date(2020, 10, 19), 3_500),
        (date(2024, 6, 3), date(2024, 6, 19), 3_500),
    ],
)
def test_the_fee_is_the_laws_for_the_claims_due_date(due: date, day: date, fee: int) -> None:
    legal_max = with_step(NO_CONSUMER, 1, fee_minor="legal_max")
    decision = decide(
        invoice(due, history=(taken("nudge", due + timedelta(days=3)),)), legal_max, at(day, 14)
    )
    assert decision.step is not None
    assert decision.step.fee_minor == fee


def test_a_fee_above_the_cap_is_cut_to_it() -> None:
    greedy = with_step(NO_CONSUMER, 1, fee_minor=9_900)  # stored unlawfully; the decision still obeys
    decision = decide(
        invoice(DUE, history=(taken("nudge", date(2026, 11, 5)),)), greedy, at(date(2026, 11, 16))
    )
    assert decision.step is not None
    assert decision.step.fee_minor == 3_500
    assert decision.step.notes[0].rule_id == "NO.reminder_fee.max"


def test_no_third_fee_section_1_3() -> None:
    history = (
        taken("reminder", date(2026, 11, 16), date(2026, 11, 30), 3_500),
        taken("reminder", date(2026, 12, 1), date(2026, 12, 15), 3_500),
    )
    # The default policy's notice is step 2: its fee is dropped, the step still goes.
    decision = decide(invoice(DUE, history=history), NO_CONSUMER, at(date(2026, 12, 16)))
    assert decision.step is not None
    assert (decision.step.kind, decision.step.fee_minor) == ("collection_notice", 0)
    assert "NO.fees.max_per_claim" in {n.rule_id for n in decision.step.notes}


def test_no_second_fee_without_a_missed_14_day_deadline() -> None:
    history = (
        taken("nudge", date(2026, 11, 5)),
        taken("reminder", date(2026, 11, 16), date(2026, 11, 23), 3_500),  # only 7 days
    )
    decision = decide(invoice(DUE, history=history), NO_CONSUMER, at(date(2026, 11, 24)))
    assert decision.step is not None
    assert decision.step.fee_minor == 0
    assert "NO.fees.second_after_missed_deadline" in {n.rule_id for n in decision.step.notes}


def test_no_fee_before_day_14() -> None:
    early = with_step(NO_CONSUMER, 1, offset_days=10)
    decision = decide(
        invoice(DUE, history=(taken("nudge", date(2026, 11, 5)),)), early, at(date(2026, 11, 12))
    )
    assert decision.step is not None
    assert decision.step.fee_minor == 0
    assert "NO.reminder_fee.days_after_due" in {n.rule_id for n in decision.step.notes}


def test_swedish_reminder_fee_only_when_agreed() -> None:
    with_fee = Policy.model_validate(
        {**with_step(SE_CONSUMER, 1, fee_minor=6_000).model_dump(), "reminder_fee_agreed": True}
    )
    history = (taken("nudge", date(2026, 11, 5)),)
    now = at(date(2026, 11, 16), jurisdiction="SE")

    def fee(state: InvoiceState, policy: Policy) -> int:
        step = decide(state, policy, now).step
        assert step is not None
        return step.fee_minor

    assert fee(invoice(DUE, history=history), with_fee) == 6_000
    assert fee(invoice(DUE, history=history, fee_agreed=False), with_fee) == 0
    unagreed = with_step(SE_CONSUMER, 1, fee_minor=6_000)
    assert fee(invoice(DUE, history=history), unagreed) == 0
    assert fee(invoice(DUE, history=history, fee_agreed=True), unagreed) == 6_000


def test_norwegian_compensation_less_the_fees_charged() -> None:
    history = (taken("nudge", date(2026, 11, 5)),)
    decision = decide(invoice(DUE, kind="business", history=history), NO_BUSINESS, at(date(2026, 11, 16)))
    step = decision.step
    assert step is not None
    assert (step.kind, step.fee_minor, step.compensation_minor) == ("reminder", 0, 47_000)
    assert "NO.compensation.amount" in {n.rule_id for n in step.notes}  # the placeholder is noted
    fee_and_compensation = with_step(NO_BUSINESS, 1, fee_minor=3_500)
    step = decide(
        invoice(DUE, kind="business", history=history), fee_and_compensation, at(date(2026, 11, 16))
    ).step
    assert step is not None
    assert (step.fee_minor, step.compensation_minor) == (3_500, 43_500)
    # On a claim due in H1 2021: kr 400 less a kr 35 fee charged before.
    later = with_step(
        with_step(NO_BUSINESS, 1, charge_compensation=False, fee_minor=3_500), 2, charge_compensation=True
    )
    due = date(2021, 1, 4)
    earlier = (
        taken("nudge", date(2021, 1, 7)),
        taken("reminder", date(2021, 1, 18), date(2021, 2, 1), 3_500),
    )
    step = decide(invoice(due, kind="business", history=earlier), later, at(date(2021, 2, 2))).step
    assert step is not None
    assert (step.kind, step.compensation_minor) == ("collection_notice", 40_000 - 3_500)


def test_no_compensation_where_the_amount_is_unknown_or_already_charged() -> None:
    due = date(2023, 5, 5)
    history = (taken("nudge", date(2023, 5, 8)),)
    step = decide(invoice(due, kind="business", history=history), NO_BUSINESS, at(date(2023, 5, 19))).step
    assert step is not None
    assert step.compensation_minor == 0
    assert "NO.compensation.amount" in {n.rule_id for n in step.notes}
    twice = with_step(NO_BUSINESS, 2, charge_compensation=True)
    done = (*history, taken("reminder", date(2023, 5, 19), date(2023, 6, 2), 0, 47_000))
    step = decide(invoice(due, kind="business", history=done), twice, at(date(2023, 6, 5))).step
    assert step is not None
    assert step.compensation_minor == 0
    assert step.fee_minor == 0


def test_swedish_compensation() -> None:
    history = (taken("nudge", date(2026, 11, 5)),)
    step = decide(
        invoice(DUE, kind="business", history=history), SE_BUSINESS, at(date(2026, 11, 16), jurisdiction="SE")
    ).step
    assert step is not None
    assert step.compensation_minor == 45_000


def test_interest_follows_part_payments() -> None:
    paid = (PartPayment(date(2026, 11, 12), 40_000),)
    history = (taken("nudge", date(2026, 11, 5)),)
    step = decide(invoice(DUE, payments=paid, history=history), NO_CONSUMER, at(date(2026, 11, 16))).step
    assert step is not None
    assert step.interest_to_date_minor == round((100_000 * 10 + 60_000 * 4) * 0.125 / 365)
    assert step.interest_minor == 0  # the reminder shows it, charges nothing


def test_a_stage_the_ledger_is_past_is_skipped() -> None:
    decision = decide(invoice(DUE, stage=2), NO_CONSUMER, at(date(2026, 11, 16)))
    assert decision.step is not None
    assert decision.step.kind == "collection_handoff"
    assert decide(invoice(DUE, stage=3), NO_CONSUMER, at(date(2026, 11, 16))).reason == "handed_off"
    assert (
        decide(invoice(DUE, status="in_collection"), NO_CONSUMER, at(date(2026, 11, 16))).reason
        == "handed_off"
    )


def test_the_policy_runs_out() -> None:
    short = with_steps(SE_CONSUMER, Step(kind="nudge", offset_days=3, channels=("sms",)))
    decision = decide(
        invoice(DUE, history=(taken("nudge", date(2026, 11, 5)),)),
        short,
        at(date(2026, 12, 1), jurisdiction="SE"),
    )
    assert (decision.outcome, decision.reason) == ("done", "policy_complete")


def test_the_policy_must_be_for_the_customers_kind_and_now_aware() -> None:
    with pytest.raises(ValueError, match="business"):
        decide(invoice(DUE, kind="business"), NO_CONSUMER, NOW)
    with pytest.raises(ValueError, match="timezone"):
        decide(invoice(DUE), NO_CONSUMER, NOW.replace(tzinfo=None))


def test_decide_all_picks_each_kinds_policy() -> None:
    invoices = [replace(invoice(DUE), invoice_id="a"), replace(invoice(DUE, kind="business"), invoice_id="b")]
    decisions = decide_all(invoices, {"consumer": NO_CONSUMER, "business": NO_BUSINESS}, NOW)
    assert [(d.invoice_id, d.outcome) for d in decisions] == [("a", "due"), ("b", "due")]
    assert decisions[1].step is not None
    assert decisions[1].step.channels == ("email", "sms")
