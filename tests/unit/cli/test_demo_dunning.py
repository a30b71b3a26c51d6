"""The demo's dunning step: which invoices it is about, where it moves the sandbox clock (the latest
moment a case waits for the step, at midday in Oslo), when the cases have settled, and how the moves
and the held steps are told."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from fordring.common.v1 import common_pb2
from fordring.dunning.v1 import dunning_pb2 as pb
from fordring.ledger.v1 import ledger_pb2
from rich.console import Console

from services.cli.demo_dunning import (
    StackClock,
    applied_steps,
    held_text,
    midday_from,
    settled,
    stage_summary,
    stage_target,
    unpaid,
    went_out,
)
from services.cli.home import Home

NOW = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)


def invoice(
    number: str, status: int, balance: int, kind: int = ledger_pb2.INVOICE_KIND_INVOICE
) -> ledger_pb2.Invoice:
    return ledger_pb2.Invoice(
        id=f"id-{number}",
        invoice_number=number,
        kind=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        balance=common_pb2.Money(minor_units=balance, currency="NOK"),
    )


def test_the_demo_duns_what_is_still_owed() -> None:
    found = unpaid(
        [
            invoice("1", ledger_pb2.INVOICE_STATUS_OVERDUE, 100),
            invoice("2", ledger_pb2.INVOICE_STATUS_PAID, 0),
            invoice("3", ledger_pb2.INVOICE_STATUS_CREDITED, 100),
            invoice("4", ledger_pb2.INVOICE_STATUS_PART_PAID, 40),
            invoice("5", ledger_pb2.INVOICE_STATUS_REMINDED, 135),
            invoice("6", ledger_pb2.INVOICE_STATUS_OPEN, 100, kind=ledger_pb2.INVOICE_KIND_CREDIT_NOTE),
        ]
    )
    assert [i.invoice_number for i in found] == ["1", "4", "5"]


def test_the_clock_goes_to_midday_in_oslo_or_stays_later() -> None:
    # 09:00 Oslo (summer: UTC+2) → 12:00 Oslo the same day.
    assert midday_from(datetime(2025, 6, 2, 7, 0, tzinfo=UTC)) == datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    # Already past midday: as it is.
    later = datetime(2025, 6, 2, 13, 30, tzinfo=UTC)
    assert midday_from(later) == later
    # Stockholm in winter (UTC+1).
    assert midday_from(datetime(2025, 1, 10, 7, 0, tzinfo=UTC), "SE") == datetime(
        2025, 1, 10, 11, 0, tzinfo=UTC
    )


def test_the_target_is_the_latest_case_waiting_for_the_step() -> None:
    cases = [
        pb.Case(
            invoice_id="a",
            jurisdiction="NO",
            next_step="nudge",
            outcome="waiting",
            next_at="2025-06-05T06:00:00Z",
        ),
        pb.Case(
            invoice_id="b",
            jurisdiction="NO",
            next_step="nudge",
            outcome="waiting",
            next_at="2025-06-09T06:00:00Z",
        ),
        pb.Case(invoice_id="c", jurisdiction="NO", next_step="nudge", outcome="due"),
        pb.Case(
            invoice_id="d",
            jurisdiction="NO",
            next_step="reminder",
            outcome="waiting",
            next_at="2025-07-01T06:00:00Z",
        ),
        pb.Case(invoice_id="e", jurisdiction="NO", next_step="nudge", outcome="held"),
    ]
    assert stage_target(cases, "nudge", NOW) == datetime(2025, 6, 9, 10, 0, tzinfo=UTC)
    assert stage_target(cases, "collection_notice", NOW) is None
    # Only due now: today at midday.
    assert stage_target(cases[2:3], "nudge", NOW) == datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def test_a_case_has_settled_once_nothing_is_on_its_way() -> None:
    proposed = pb.TakenStep(step="reminder", state="proposed")
    applied = pb.TakenStep(step="nudge", state="applied")
    assert settled(pb.Case(outcome="waiting", steps=[applied]))
    assert settled(pb.Case(outcome="held"))
    assert not settled(pb.Case(outcome="due", steps=[applied]))
    assert not settled(pb.Case(outcome="waiting", steps=[applied, proposed]))


def test_each_move_tells_what_went_out() -> None:
    before = applied_steps([pb.Case(steps=[pb.TakenStep(step="nudge", state="applied")])])
    after = Counter({"nudge": 12, "reminder": 7})
    assert went_out(before, after, 3) == "11 nudges, 7 reminders; 3 held back"
    assert went_out(after, after, 0) == "no step"
    assert went_out(Counter(), Counter({"collection_notice": 1}), 0) == "1 collection notice"


def test_held_steps_are_counted_by_why() -> None:
    held = [
        pb.HeldStep(holds=[pb.Hold(kind="dispute")]),
        pb.HeldStep(holds=[pb.Hold(kind="payment_in_review")]),
        pb.HeldStep(holds=[pb.Hold(kind="payment_in_review")]),
    ]
    assert held_text(held, "112") == (
        "3 steps held back: 1 by a dispute (invoice 112), "
        "2 by payments waiting in the matcher's review queue."
    )


def test_the_summary_counts_what_each_stage_charged() -> None:
    cases = [
        pb.Case(
            currency="NOK",
            steps=[
                pb.TakenStep(step="nudge", state="applied"),
                pb.TakenStep(step="reminder", state="applied", fee_minor=3_500),
                pb.TakenStep(step="collection_notice", state="proposed", fee_minor=3_500),
            ],
        ),
        pb.Case(
            currency="NOK", steps=[pb.TakenStep(step="reminder", state="applied", compensation_minor=47_000)]
        ),
    ]
    console = Console(width=120, record=True, force_terminal=False)
    console.print(stage_summary(cases))
    text = console.export_text()
    assert "reminder" in text
    assert "35,00 NOK" in text
    assert "470,00 NOK" in text
    assert "collection notice" not in text  # proposed, not applied yet


def test_only_a_stack_with_a_sandbox_clock_is_moved(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert StackClock.of(home) is None
    assert StackClock.of(None) is None
    home.root.mkdir(exist_ok=True)
    record = '{"mongo": "mongodb://127.0.0.1:1/", "http": {"ledger": "http://127.0.0.1:2"}}'
    home.stack_file.write_text(record)
    assert StackClock.of(home) is None
    home.stack_file.write_text(record[:-1] + ', "sandbox_clock": true}')
    clock = StackClock.of(home)
    assert clock is not None
    assert clock.service_urls == {"ledger": "http://127.0.0.1:2"}
