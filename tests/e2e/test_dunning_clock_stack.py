"""Dunning on `fordring up` with the stack's sandbox clock, as the issue's check reads: an unpaid invoice
goes nudge → reminder (the fee on the ledger, the reminder delivered) → inkassovarsel → hand-off (in the
agency's file) as `fordring sandbox clock advance` moves every service's days forward; an invoice paid
(through a bank file, by the matcher) before its reminder gets none.

The policies send at any hour without the bank-files wait: the sandbox clock keeps the real time of day."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli.demo_data import generate_invoices
from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.support.cli_stack import Stack, detached_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ALL_DAY = {"window_opens": "00:00:00", "window_closes": "23:59:00", "bank_files_cutoff": None}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with detached_stack(tmp_path_factory.mktemp("fordring-home")) as (running, _):
        yield running


def eventually(read: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s; last seen:\n{found}")
        time.sleep(0.5)


def advance(stack: Stack, days: int = 0, hours: int = 0) -> None:
    moved = stack.fordring("sandbox", "clock", "advance", "--days", str(days), "--hours", str(hours))
    assert moved.returncode == 0, moved.stdout + moved.stderr


def advance_to_next_step(stack: Stack, number: str, step: str) -> None:
    """Move the stack's clock to when the invoice's next step may go (its time, on a business day for
    a letter, in the window), as the dunning case says, once the step before it is applied."""
    case = eventually(
        lambda: stack.json("dunning", "case", number),
        lambda c: c["next_step"] == step and c["outcome"] in ("waiting", "due"),
        f"{step} being next for {number}",
    )
    if case["outcome"] == "due":
        return
    now = datetime.fromisoformat(
        stack.json("sandbox", "clock", "show")["sandbox_time"].replace("Z", "+00:00")
    )
    at = datetime.fromisoformat(case["next_at"].replace("Z", "+00:00"))
    hours = max(1, math.ceil((at - now).total_seconds() / 3600))
    advance(stack, hours=hours)


def test_an_invoice_goes_from_nudge_to_hand_off_and_a_payer_is_never_reminded(
    stack: Stack, tmp_path: Path
) -> None:
    for kind in ("consumer", "business"):
        policy = stack.json("dunning", "policy", "show", "--jurisdiction", "NO", "--kind", kind)
        policy.update(ALL_DAY)
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(policy), encoding="utf-8")
        saved = stack.fordring("dunning", "policy", "set", str(path))
        assert saved.returncode == 0, saved.stdout + saved.stderr

    today = date.today()
    batch = generate_invoices(2, seed=1701, today=today, customers=2)
    for record in batch:
        record["issue_date"] = today.isoformat()
        record["due_date"] = (today + timedelta(days=10)).isoformat()
        record.pop("payment_terms_days", None)
    path = tmp_path / "invoices.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in batch), encoding="utf-8")
    imported = stack.fordring("invoices", "import", str(path), "--concurrency", "1")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    ids = {r["external_id"] for r in batch}
    unpaid, payer = sorted(
        (i for i in stack.invoices() if i["external_id"] in ids),
        key=lambda i: (len(i["invoice_number"]), i["invoice_number"]),
    )

    def shown(invoice: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = stack.json("invoices", "show", invoice["invoice_number"])
        return found

    def history(invoice: dict[str, Any]) -> list[str]:
        return [e["type"] for e in shown(invoice).get("history", [])]

    def nudged(invoice: dict[str, Any]) -> None:
        eventually(
            lambda: history(invoice), lambda h: "nudged" in h, f"the nudge of {invoice['invoice_number']}"
        )

    # Three days after the due date: both are nudged (and nothing else).
    advance(stack, 13)
    for invoice in (unpaid, payer):
        nudged(invoice)

    # The payer pays, through the bank: the matcher matches the KID, the ledger applies it.
    bank_file = tmp_path / "ocr.dat"
    bank_file.write_bytes(
        ocr_giro_file([FilePayment(int(payer["balance"]["minor_units"]), reference=payer["kid"])])
    )
    paid = stack.fordring("payments", "import", str(bank_file))
    assert paid.returncode == 0, paid.stdout + paid.stderr
    eventually(
        lambda: shown(payer)["invoice"]["status"], lambda s: s == "INVOICE_STATUS_PAID", "the payment applied"
    )

    # The reminder's day, then the inkassovarsel's and the hand-off's, each after the previous deadline.
    advance_to_next_step(stack, unpaid["invoice_number"], "reminder")
    detail = eventually(lambda: shown(unpaid), lambda d: d["invoice"]["dunning_stage"] >= 1, "the reminder")
    fees = [c for c in detail["invoice"]["charges"] if c["kind"] in ("reminder_fee", "reminder_compensation")]
    assert fees, detail["invoice"]["charges"]
    deliveries = eventually(
        lambda: stack.json("deliveries", "list", "--invoice", unpaid["invoice_number"]),
        lambda found: any(
            d["document_kind"] == "reminder" and d["status"] in ("delivered", "opened", "accepted")
            for d in found
        ),
        "the reminder delivered",
    )
    # (Its nudge goes by SMS or e-mail only: to a customer who takes letters alone it is an operator's
    # deviation, not a delivery.)
    assert {d["document_kind"] for d in deliveries} >= {"invoice", "reminder"}
    advance_to_next_step(stack, unpaid["invoice_number"], "collection_notice")
    eventually(lambda: shown(unpaid), lambda d: d["invoice"]["dunning_stage"] >= 2, "the inkassovarsel")
    advance_to_next_step(stack, unpaid["invoice_number"], "collection_handoff")
    eventually(lambda: shown(unpaid), lambda d: d["invoice"]["dunning_stage"] == 3, "the hand-off")

    # Each step once; the payer had the nudge only.
    steps = history(unpaid)
    for entry in ("nudged", "reminded", "collection_notice", "collection_handoff"):
        assert steps.count(entry) == 1, steps
    assert "reminded" not in history(payer)
    assert shown(payer)["dunning"]["outcome"] == "done"

    # The day's file for the collection agency names the claim.
    out = tmp_path / "claims.jsonl"
    day = eventually(
        lambda: shown(unpaid)["dunning"]["steps"],
        lambda s: any(x["step"] == "collection_handoff" and x["state"] == "applied" for x in s),
        "the hand-off applied",
    )
    handoff_day = next(x["taken_on"] for x in day if x["step"] == "collection_handoff")
    exported = stack.fordring("dunning", "export", "--day", handoff_day, "-o", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    claims = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [c["claim"]["invoice_number"] for c in claims] == [unpaid["invoice_number"]]
