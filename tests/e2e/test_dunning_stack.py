"""Dunning end to end on `fordring up`, through the CLI as an operator uses it: the policies shown, an
unlawful one refused naming the rule it breaks (exit 2), a disputed invoice held back with why while
another one is nudged and reminded, the reminder's fee and the interest to date on `invoices show`,
and the disputed one dunned once resumed.

The invoices are issued back-dated (due 20 days ago) and the policies send at any hour without the
bank-files wait, so the test runs on the real clock at any time of day: a first policy that starts
60 days after the due date keeps every step off until the dispute is in place."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli.demo_data import generate_invoices
from tests.support.cli_stack import Stack, detached_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

KINDS = ("consumer", "business")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with detached_stack(tmp_path_factory.mktemp("fordring-home")) as (running, started):
        assert "dunning gRPC" in started.stdout
        yield running


def eventually(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def policy_file(stack: Stack, tmp_path: Path, kind: str, name: str, **changes: Any) -> Path:
    """The tenant's NO policy for `kind` as `policy show --json` prints it, changed, in a file."""
    policy = stack.json("dunning", "policy", "show", "--jurisdiction", "NO", "--kind", kind)
    steps = changes.pop("steps", {})
    for index, step_changes in steps.items():
        policy["steps"][index].update(step_changes)
    policy.update(changes)
    path = tmp_path / f"{name}-{kind}.json"
    path.write_text(json.dumps(policy), encoding="utf-8")
    return path


def set_policy(stack: Stack, path: Path) -> None:
    saved = stack.fordring("dunning", "policy", "set", str(path))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "is in force" in saved.stdout


def test_the_policies_are_shown_and_an_unlawful_one_is_refused(stack: Stack, tmp_path: Path) -> None:
    shown = stack.json("dunning", "policy", "show")
    assert {(p["jurisdiction"], p["debtor_kind"]) for p in shown} == {
        (j, k) for j in ("NO", "SE") for k in KINDS
    }
    assert all(p["is_default"] for p in shown)
    no_consumer = next(p for p in shown if (p["jurisdiction"], p["debtor_kind"]) == ("NO", "consumer"))
    assert [s["kind"] for s in no_consumer["policy"]["steps"]] == [
        "nudge",
        "reminder",
        "collection_notice",
        "collection_handoff",
    ]

    # A reminder fee of kr 70 five days after the due date: above the cap, and too early for any fee.
    unlawful = policy_file(
        stack, tmp_path, "consumer", "unlawful", steps={1: {"fee_minor": 7_000, "offset_days": 5}}
    )
    refused = stack.fordring("dunning", "policy", "set", str(unlawful))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refused" in refused.stderr
    assert "NO.reminder_fee.max" in refused.stderr
    assert "NO.reminder_fee.days_after_due" in refused.stderr
    assert "steps[1]" in refused.stderr
    # Nothing was saved: still the default.
    again = stack.json("dunning", "policy", "show", "--kind", "consumer", "--jurisdiction", "NO")
    assert again == no_consumer["policy"]


def test_a_disputed_invoice_is_held_while_another_is_reminded_then_dunned_once_resumed(
    stack: Stack, tmp_path: Path
) -> None:
    all_day = {"window_opens": "00:00:00", "window_closes": "23:59:00", "bank_files_cutoff": None}
    # First nothing is due: the nudge and the reminder 60 days later than the defaults.
    for kind in KINDS:
        later = {0: {"offset_days": 63}, 1: {"offset_days": 74}}
        set_policy(stack, policy_file(stack, tmp_path, kind, "later", steps=later, **all_day))
    today = date.today()
    batch = generate_invoices(2, seed=4711, today=today, customers=2)
    for record in batch:
        record["issue_date"] = (today - timedelta(days=35)).isoformat()
        record["due_date"] = (today - timedelta(days=20)).isoformat()
        record.pop("payment_terms_days", None)
    path = tmp_path / "overdue.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in batch), encoding="utf-8")
    imported = stack.fordring("invoices", "import", str(path), "--concurrency", "1")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    ids = {r["external_id"] for r in batch}
    disputed, reminded = sorted(
        (i["invoice_number"] for i in stack.invoices() if i["external_id"] in ids), key=lambda n: (len(n), n)
    )

    paused = stack.fordring("dunning", "pause", disputed, "--reason", "the goods never came", "--dispute")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert f"Dunning of invoice {disputed} is disputed" in paused.stdout

    # Now the lawful default's timing, at any hour: both are 20 days overdue, nudge and reminder due.
    for kind in KINDS:
        set_policy(
            stack,
            policy_file(
                stack, tmp_path, kind, "now", steps={0: {"offset_days": 3}, 1: {"offset_days": 14}}, **all_day
            ),
        )

    def shown(number: str) -> dict[str, Any]:
        found: dict[str, Any] = stack.json("invoices", "show", number)
        return found

    detail = eventually(lambda: shown(reminded), lambda d: d["invoice"]["dunning_stage"] == 1)
    assert detail["invoice"]["dunning_stage"] == 1, detail
    assert detail["invoice"]["status"] == "INVOICE_STATUS_REMINDED"
    charges = detail["invoice"]["charges"]
    assert charges, "the reminder's fee (or the business compensation) is on the invoice"
    assert {c["kind"] for c in charges} <= {"reminder_fee", "reminder_compensation"}
    assert all(int(c["amount_minor"]) > 0 for c in charges)
    case = eventually(lambda: shown(reminded), lambda d: "dunning" in d and d["dunning"]["stage"] == 1)[
        "dunning"
    ]
    assert [s["step"] for s in case["steps"]] == ["nudge", "reminder"]
    assert {s["state"] for s in case["steps"]} == {"applied"}
    assert case["interest_to_date_minor"] > 0, "20 days late: interest runs"
    assert case["next_step"] == "collection_notice"
    assert case["next_at"]
    fee = sum(s["fee_minor"] + s["compensation_minor"] for s in case["steps"])
    assert fee == sum(int(c["amount_minor"]) for c in charges)

    # The disputed one: its nudge is due, held back with the reason.
    held = eventually(
        lambda: stack.json("dunning", "held"),
        lambda found: any(h["invoice_number"] == disputed for h in found),
    )
    (mine,) = [h for h in held if h["invoice_number"] == disputed]
    assert mine["step"] == "nudge"
    assert [(h["kind"], h["reason"]) for h in mine["holds"]] == [("dispute", "the goods never came")]
    table = stack.fordring("dunning", "held")
    assert "the goods never came" in table.stdout
    assert shown(disputed)["invoice"]["dunning_stage"] == 0

    resumed = stack.fordring("dunning", "resume", disputed, "--reason", "credit note agreed")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resumed 1 pause" in resumed.stdout
    after = eventually(lambda: shown(disputed), lambda d: d["invoice"]["dunning_stage"] == 1)
    assert after["invoice"]["dunning_stage"] == 1
    assert not any(h["invoice_number"] == disputed for h in stack.json("dunning", "held"))
