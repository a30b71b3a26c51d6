"""Payments end to end on `fordring up`: invoices issued with `fordring invoices import`, the sandbox
bank's OCR Giro file for them imported with `fordring payments import`, and the ledger's invoices
paid, part-paid or left open exactly as the bank says each payment was meant; the review queue holds
exactly the deliberately ambiguous payments; the same file again, or its transactions resent in
another transmission, change nothing; an operator's decision on the queue pays the invoice."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli.demo_data import generate_invoices
from services.sandbox.bank import BankInvoice, GeneratedFile, generate_file
from tests.support.cli_stack import Stack, detached_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SETTLED = {"INVOICE_STATUS_PAID", "INVOICE_STATUS_OVERPAID", "INVOICE_STATUS_CREDITED"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with detached_stack(tmp_path_factory.mktemp("fordring-home")) as (running, started):
        assert "matcher gRPC" in started.stdout
        yield running


def eventually(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


def issue(stack: Stack, tmp_path: Path) -> tuple[list[dict[str, Any]], list[BankInvoice]]:
    """A day's invoices, due in a month (so unpaid ones stay open), issued like an ERP does; and the
    same invoices as their payers see them."""
    today = date.today()
    batch = generate_invoices(30, seed=404, today=today, customers=7)
    for record in batch:
        record["issue_date"] = today.isoformat()
        record["due_date"] = (today + timedelta(days=30)).isoformat()
    path = tmp_path / "invoices.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in batch), encoding="utf-8")
    # One at a time: numbers and KIDs in the file's order, so the same batch gets the same ones.
    imported = stack.fordring("invoices", "import", str(path), "--concurrency", "1")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    accounts = {r["external_id"]: r["customer"].get("bank_account", "") for r in batch}
    issued = [i for i in stack.json("invoices", "list") if i["external_id"] in accounts]
    assert len(issued) == len(batch)
    universe = [
        BankInvoice(
            number=i["invoice_number"],
            kid=i["kid"],
            amount_minor=int(i["balance"]["minor_units"]),
            currency=i["currency"],
            customer_number=i["customer_number"],
            customer_name=i["customer_name"],
            customer_account=accounts[i["external_id"]],
            total_minor=int(i["gross_total"]["minor_units"]),
        )
        for i in issued
    ]
    return issued, universe


def expected_invoices(made: GeneratedFile, universe: list[BankInvoice]) -> dict[str, tuple[str, int]]:
    """Invoice number → (status, balance in minor units) once the file's payments are applied."""
    paid = made.paid()
    expected = {}
    for invoice in universe:
        got = paid.get(invoice.number, 0)
        status = "OPEN" if got == 0 else ("PAID" if got >= invoice.amount_minor else "PART_PAID")
        expected[invoice.number] = (f"INVOICE_STATUS_{status}", invoice.amount_minor - got)
    return expected


def ledger_view(stack: Stack, numbers: set[str]) -> dict[str, tuple[str, int]]:
    return {
        i["invoice_number"]: (i["status"], int(i["balance"]["minor_units"]))
        for i in stack.json("invoices", "list")
        if i["invoice_number"] in numbers
    }


def test_a_bank_file_pays_the_invoices_the_bank_says(stack: Stack, tmp_path: Path) -> None:
    _, universe = issue(stack, tmp_path)
    made = generate_file(universe, seed=404, day=date.today(), format="ocr_giro")
    assert made.in_review(), "the sandbox bank's mix has deliberately ambiguous payments"
    print(f"{made.filename}: {dict(made.kinds())}")
    assert {"exact", "part", "over", "kid_typo", "free_text"} <= set(made.kinds()), made.kinds()
    path = tmp_path / made.filename
    path.write_bytes(made.content)

    summary = stack.json("payments", "import", str(path))

    assert summary["already_imported"] is False
    found = summary["summary"]
    assert (found["format"], found["state"], found["payments"]) == ("ocr_giro", "done", len(made.payments))
    assert found["total_minor"] == made.total_minor
    assert found["review"] == len(made.in_review())
    assert found["matched"] == len(made.payments) - len(made.in_review())
    assert (found["reversals"], found["duplicates"]) == (0, 0)
    assert found["by_method"] == dict(Counter(p.method for p in made.payments if not p.review))

    # The ledger applies what the matcher proposed: every invoice as the bank's expectations say.
    numbers = {i.number for i in universe}
    expected = expected_invoices(made, universe)
    held = eventually(lambda: ledger_view(stack, numbers), lambda view: view == expected)
    assert held == expected

    # Each payment decided as the bank says it was meant: the invoices and amounts, the credit, or review.
    by_bank_id = {
        p["bank_ids"]["archive_reference"]: p for p in stack.json("payments", "list", "--import", found["id"])
    }
    assert set(by_bank_id) == {p.bank_id for p in made.payments}
    for meant in made.payments:
        payment = by_bank_id[meant.bank_id]
        assert payment["status"] == ("review" if meant.review else "matched"), (meant, payment)
        assert payment["allocations"] == dict(meant.pays), (meant, payment)
        if not meant.review:
            assert (payment["method"], payment["credit_minor"]) == (meant.method, meant.credit_minor)
            assert payment["ledger_state"] == "applied"

    # The review queue holds exactly the ambiguous payments, with the invoices they may be for.
    queue = stack.json("payments", "review")
    assert {p["bank_ids"]["archive_reference"] for p in queue} == {p.bank_id for p in made.in_review()}
    for meant in made.in_review():
        waiting = next(p for p in queue if p["bank_ids"]["archive_reference"] == meant.bank_id)
        suggested = {n for s in waiting["suggestions"] for n in s["invoice_numbers"]}
        assert waiting["reason"]
        if len(meant.candidates) <= 5:
            assert set(meant.candidates) <= suggested, (meant, waiting)

    # The same file again: recognised, nothing applied.
    again = stack.json("payments", "import", str(path))
    assert again["already_imported"] is True
    assert again["summary"]["id"] == found["id"]
    # The same bank transactions in another transmission: every one a duplicate, nothing applied.
    resent = made.resent()
    resent_path = tmp_path / resent.filename
    resent_path.write_bytes(resent.content)
    duplicate = stack.json("payments", "import", str(resent_path))["summary"]
    assert duplicate["id"] != found["id"]
    assert (duplicate["payments"], duplicate["duplicates"]) == (len(made.payments), len(made.payments))
    assert (duplicate["matched"], duplicate["review"]) == (0, 0)
    time.sleep(3)
    assert ledger_view(stack, numbers) == expected
    assert len(stack.json("payments", "review")) == len(queue)
    imports = stack.json("payments", "imports")
    assert [i["id"] for i in imports][:2] == [duplicate["id"], found["id"]]

    # An operator decides one: the payment from the unknown payer was for the first invoice it fits.
    unknown = next(p for p in made.in_review() if p.kind == "unknown_payer")
    target = unknown.candidates[0]
    payment_id = next(p["id"] for p in queue if p["bank_ids"]["archive_reference"] == unknown.bank_id)
    decided = stack.fordring(
        "payments", "resolve", payment_id, "--invoice", target, "--note", "the payer called", "--json"
    )
    assert decided.returncode == 0, decided.stdout + decided.stderr
    resolved = json.loads(decided.stdout)
    assert (resolved["status"], resolved["method"]) == ("resolved", "manual")
    assert resolved["allocations"] == {target: unknown.payment.amount_minor}
    expected[target] = ("INVOICE_STATUS_PAID", 0)
    assert eventually(lambda: ledger_view(stack, numbers), lambda view: view == expected) == expected
    assert payment_id not in {p["id"] for p in stack.json("payments", "review")}
    twice = stack.fordring("payments", "resolve", payment_id, "--refund")
    assert twice.returncode == 1
    assert "FAILED_PRECONDITION" in twice.stderr


def test_a_broken_file_is_refused_whole_with_every_problem(stack: Stack, tmp_path: Path) -> None:
    made = generate_file(
        [BankInvoice(number="99001", kid="0000990013", amount_minor=100_00, customer_number="X")],
        seed=1,
        day=date.today(),
        scenario="clean",
    )
    lines = made.content.decode("iso-8859-1").splitlines()
    lines[2] = lines[2][:40]  # an amount item cut short
    del lines[-1]  # and no transmission end
    path = tmp_path / "broken.txt"
    path.write_bytes("".join(line + "\n" for line in lines).encode("iso-8859-1"))
    before = stack.json("payments", "imports")

    refused = stack.fordring("payments", "import", str(path))

    assert refused.returncode == 1
    assert "INVALID_ARGUMENT" in refused.stderr
    assert "• line 3: 40 characters, OCR Giro records have 80" in refused.stderr
    assert "record 89" in refused.stderr
    assert stack.json("payments", "imports") == before
