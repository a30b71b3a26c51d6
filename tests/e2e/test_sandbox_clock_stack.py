"""The sandbox clock on `fordring up`: `fordring sandbox clock advance --days 40` moves every
service's time at once, and an invoice due in 30 days is overdue in the ledger seconds later; a
stack without a sandbox clock is refused (exit 2) and its time stays where it is."""

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

DAY = 86400.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with detached_stack(tmp_path_factory.mktemp("fordring-home")) as (running, _):
        yield running


def eventually(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def issue_one(stack: Stack, tmp_path: Path) -> dict[str, Any]:
    """One invoice issued today, due in 30 days, as an ERP sends it."""
    today = date.today()
    record = generate_invoices(1, seed=4040, today=today, customers=1)[0]
    record["issue_date"] = today.isoformat()
    record["due_date"] = (today + timedelta(days=30)).isoformat()
    path = tmp_path / "invoice.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    imported = stack.fordring("invoices", "import", str(path))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    return next(i for i in stack.invoices() if i["external_id"] == record["external_id"])


def test_forty_days_later_the_invoice_is_overdue(stack: Stack, tmp_path: Path) -> None:
    assert stack.record()["sandbox_clock"] is True
    before = stack.json("sandbox", "clock", "show")
    assert before["offset_seconds"] == 0
    assert set(before["services"]) == set(stack.record()["http"]) >= {"ledger", "dispatcher"}
    assert set(before["services"].values()) == {0}, "every service runs on the sandbox clock"
    invoice = issue_one(stack, tmp_path)
    assert invoice["status"] == "INVOICE_STATUS_OPEN"

    moved = stack.fordring("sandbox", "clock", "advance", "--days", "40")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "40 days ahead of the real time" in moved.stdout
    # `advance` returned once every service used the new time: nothing waits for a sweep interval.
    after = stack.json("sandbox", "clock", "show")
    assert after["offset_seconds"] == 40 * DAY
    assert set(after["services"].values()) == {40 * DAY}
    assert after["sandbox_today"] >= (date.today() + timedelta(days=40)).isoformat()

    def status() -> str:
        found = next(i for i in stack.invoices() if i["invoice_number"] == invoice["invoice_number"])
        return str(found["status"])

    assert eventually(status, lambda s: s == "INVOICE_STATUS_OVERDUE", timeout=20) == "INVOICE_STATUS_OVERDUE"
    # A jump ends every lease at once (timers, sweeps, the relay's): the stack carries on healthy.
    healthy = eventually(lambda: stack.fordring("status"), lambda done: done.returncode == 0)
    assert healthy.returncode == 0, healthy.stdout


def test_a_stack_without_a_sandbox_clock_is_refused(stack: Stack, tmp_path: Path) -> None:
    """The same stack as a record that does not say it has a sandbox clock (one `fordring up` did not
    start): refused, and the stack's time stays where it is."""
    offset = stack.json("sandbox", "clock", "show")["offset_seconds"]
    other = tmp_path / "other-home"
    other.mkdir()
    record = stack.record()
    record.pop("sandbox_clock")
    (other / "stack.json").write_text(json.dumps(record), encoding="utf-8")
    refused = stack.fordring("--home", str(other), "sandbox", "clock", "advance", "--days", "40")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "has no sandbox clock" in refused.stderr
    assert stack.json("sandbox", "clock", "show")["offset_seconds"] == offset
