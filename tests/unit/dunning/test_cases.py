"""A case (the dunning view of one invoice) as the domain sees it: principal, reductions with dates,
the steps that count, and the holds it carries."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.dunning.cases import holds_of, invoice_state, settled_by
from services.dunning.domain.calendar import TIMEZONES, calendar_for
from services.dunning.stepping import action_id


def case(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "_id": "inv-1",
        "tenant_id": "t",
        "customer_kind": "consumer",
        "status": "overdue",
        "version": 4,
        "due_date": "2026-03-10",
        "gross_minor": 100_000,
        "balance_minor": 60_000,
        "stage": 1,
    }
    doc.update(over)
    return doc


def test_credit_notes_before_the_due_date_lower_the_principal_later_ones_reduce_it_from_their_day() -> None:
    state = invoice_state(
        case(
            credits={
                "cn-1": {"on": "2026-03-01", "amount": 10_000},
                "cn-2": {"on": "2026-04-01", "amount": 5_000},
            },
            payments={"p-1": {"on": "2026-03-20", "amount": 25_000}},
        )
    )
    assert state.principal_minor == 90_000
    assert [(p.paid_on, p.amount_minor) for p in state.payments] == [
        (date(2026, 3, 20), 25_000),
        (date(2026, 4, 1), 5_000),
    ]


def test_refused_steps_do_not_count_proposed_ones_do() -> None:
    state = invoice_state(
        case(
            steps={
                "a": {"kind": "nudge", "on": "2026-03-13", "index": 0, "state": "applied"},
                "b": {"kind": "reminder", "on": "2026-03-24", "index": 1, "state": "rejected"},
                "c": {
                    "kind": "reminder",
                    "on": "2026-03-25",
                    "index": 1,
                    "state": "proposed",
                    "fee": 3_500,
                    "deadline": "2026-04-08",
                    "interest": 120,
                },
            }
        )
    )
    assert [s.kind for s in state.history] == ["nudge", "reminder"]
    assert state.history[1].deadline == date(2026, 4, 8)
    assert state.history[1].fee_minor == 3_500
    assert state.interest_charged_minor == 120


def test_a_case_carries_its_holds() -> None:
    held = case(
        pending={"pay-1": "review", "pay-2": "unapplied"},
        pauses={"pz": {"kind": "dispute", "reason": "wrong goods", "until": None}},
        debits={"dlv": {"channel": "avtalegiro"}},
    )
    holds = holds_of([held], None, calendar_for("NO"))
    now = datetime(2026, 3, 11, 12, tzinfo=UTC).astimezone(TIMEZONES["NO"])
    kinds = sorted(h.kind for h in holds.for_invoice("inv-1", now))
    assert kinds == ["debit_in_flight", "dispute", "payment_in_review", "payment_unapplied"]


def test_a_debit_is_settled_three_business_days_after_its_draw() -> None:
    # Due on Maundy Thursday 2026, a Norwegian holiday like Good Friday and Easter Monday: drawn on
    # Tuesday 7 April, in the bank files by Friday.
    assert settled_by(date(2026, 4, 2), calendar_for("NO")) == date(2026, 4, 10)
    # Due on a Saturday: drawn on the Monday.
    assert settled_by(date(2026, 3, 14), calendar_for("NO")) == date(2026, 3, 19)


def test_one_step_of_one_invoice_is_one_action() -> None:
    assert action_id("inv-1", 1, "reminder") == action_id("inv-1", 1, "reminder")
    assert action_id("inv-1", 1, "reminder") != action_id("inv-2", 1, "reminder")
    assert action_id("inv-1", 1, "reminder") != action_id("inv-1", 2, "collection_notice")
