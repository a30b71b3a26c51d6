"""An unpaid invoice goes nudge → reminder (fee on the ledger) → inkassovarsel → hand-off, each step
once; an invoice paid before its reminder gets none."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

from fordring.dunning.v1 import dunning_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.dunning import DunWorld, all_day_policy, consumer
from tests.support.ledger import customer_input, eventually, invoice_request


async def test_an_unpaid_invoice_is_nudged_reminded_noticed_and_handed_off(
    dun_world: DunWorld, tmp_path: Path
) -> None:
    world = dun_world
    tenant = await world.tenant()
    invoice = await world.nudged(tenant, "K-1")
    for step, entry in (
        ("reminder", "reminded"),
        ("collection_notice", "collection_notice"),
        ("collection_handoff", "collection_handoff"),
    ):
        await world.next_step(tenant, invoice.id, step)
        await world.wait_history(tenant, invoice.id, entry)

    types = await world.history_types(tenant, invoice.id)
    for entry in ("nudged", "reminded", "collection_notice", "collection_handoff"):
        assert types.count(entry) == 1, types
    case = await eventually(
        lambda: world.case(tenant, invoice.id),
        lambda c: sum(s.state == "applied" for s in c.steps) == 4,
        what="every step applied",
    )
    applied = {s.step: s for s in case.steps if s.state == "applied"}
    assert set(applied) == {"nudge", "reminder", "collection_notice", "collection_handoff"}
    assert applied["nudge"].fee_minor == 0
    assert applied["reminder"].fee_minor == 3_500  # kr 35, the legal reminder fee for a consumer
    assert applied["collection_notice"].fee_minor == 3_500
    assert applied["reminder"].deadline
    assert applied["collection_notice"].deadline
    ledger = await tenant.get(invoice.id)
    assert ledger.dunning_stage == 3  # in collection
    fees = sum(c.amount_minor for c in ledger.charges if c.kind.endswith("_fee"))
    interest = sum(c.amount_minor for c in ledger.charges if c.kind.endswith("_interest"))
    assert fees == 7_000
    # Forsinkelsesrente from the day after the due date, charged with the notice and the hand-off.
    assert interest > 0
    assert ledger.balance.minor_units == invoice.gross_total.minor_units + fees + interest
    export = await world.stub.GetCollectionExport(dpb.GetCollectionExportRequest(), metadata=tenant.metadata)
    assert export.claims == 1
    line = json.loads(export.content)
    claim, debtor = line["claim"], line["debtor"]
    assert claim["invoice_number"] == invoice.invoice_number
    assert claim["principal_minor"] == invoice.gross_total.minor_units
    assert claim["charges_minor"] == fees + interest
    assert [n["action"] for n in claim["notices"]] == ["nudge", "reminder", "collection_notice"]
    assert claim["interest_to_date_minor"] > 0
    assert debtor["name"] == "Kari Nordmann"
    assert debtor["address"]["city"] == "Oslo"
    # The daily file, as the agency picks it up.
    written = await world.dunning.write_exports(tmp_path)
    mine = [p for p in written if p.parent.name == tenant.tenant.id]
    assert [p.name for p in mine] == [export.filename]
    assert mine[0].read_bytes() == export.content


async def test_an_invoice_paid_before_its_reminder_gets_none(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    today = world.clock.today()
    invoice = await tenant.issue(invoice_request(customer=consumer("K-2"), issue_date=today, due_in_days=10))
    await world.known(invoice.id)
    world.at(today + timedelta(days=13))
    await world.sweep()
    await world.wait_history(tenant, invoice.id, "nudged")
    case = await world.next_step(tenant, invoice.id, "reminder")
    # Paid an hour before the reminder would go.
    await tenant.pay(invoice, invoice.gross_total.minor_units)
    await world.known(invoice.id, version=4)
    world.to(world.clock.now() + timedelta(hours=2))
    for _ in range(20):
        world.dunning.timers.wake()
        await asyncio.sleep(0.1)
    types = await world.history_types(tenant, invoice.id)
    assert "reminded" not in types
    case = await world.case(tenant, invoice.id)
    assert case.outcome == "done"
    assert case.reason == "paid"


async def test_a_business_pays_the_fixed_compensation_with_its_reminder(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    today = world.clock.today()
    invoice = await tenant.issue(
        invoice_request(customer=customer_input("B-1"), issue_date=today, due_in_days=10)
    )
    await world.known(invoice.id)
    world.at(today + timedelta(days=13))
    await world.sweep()
    await world.wait_history(tenant, invoice.id, "nudged")
    await world.next_step(tenant, invoice.id, "reminder")
    await world.wait_history(tenant, invoice.id, "reminded")
    ledger = await eventually(
        lambda: tenant.get(invoice.id), lambda i: len(i.charges) > 0, what="the compensation on the ledger"
    )
    charges = {c.kind: c.amount_minor for c in ledger.charges}
    # Inkassoloven § 3-2 a / forsinkelsesrenteloven § 3a: kr 470 less the fees charged (none).
    assert charges == {"reminder_compensation": 47_000}


async def test_a_customer_who_paid_late_before_gets_the_nudge_before_the_due_date(
    dun_world: DunWorld,
) -> None:
    world = dun_world
    tenant = await world.tenant(policy=all_day_policy("consumer", early_nudge_days=3))
    today = world.clock.today()
    earlier = await tenant.issue(invoice_request(customer=consumer("E-1"), issue_date=today, due_in_days=5))
    # Paid 6 days late.
    await tenant.pay(
        earlier, earlier.gross_total.minor_units, paid_on=(today + timedelta(days=11)).isoformat()
    )
    await world.known(earlier.id, version=2)
    invoice = await tenant.issue(invoice_request(customer=consumer("E-1"), issue_date=today, due_in_days=20))
    await world.known(invoice.id)
    # Three days before the due date: still open in the ledger, and nudged.
    world.at(today + timedelta(days=17))
    await world.wait_history(tenant, invoice.id, "nudged")
    ledger = await tenant.get(invoice.id)
    assert ledger.status == pb.INVOICE_STATUS_OPEN
    case = await world.case(tenant, invoice.id)
    nudge = next(s for s in case.steps if s.step == "nudge")
    assert nudge.taken_on == (today + timedelta(days=17)).isoformat()
    # Another customer, never late: no early nudge.
    other = await tenant.issue(invoice_request(customer=consumer("E-2"), issue_date=today, due_in_days=20))
    await world.known(other.id)
    other_case = await world.case(tenant, other.id)
    assert other_case.next_step == "nudge"
    assert other_case.outcome == "waiting"
    assert other_case.next_at > f"{(today + timedelta(days=20)).isoformat()}"


async def test_no_step_is_decided_while_the_last_one_waits_for_the_ledger(dun_world: DunWorld) -> None:
    """The next step waits for the ledger's answer to the last proposal: decided before it, on the
    version before it, the ledger would refuse it as stale. Another event meanwhile (a redelivery
    after a rebalance) does not bring the case's look forward; the answer does."""
    world = dun_world
    tenant = await world.tenant()
    invoice = await world.nudged(tenant, "K-7")
    waiting = await eventually(
        lambda: world.case(tenant, invoice.id),
        lambda c: (
            c.next_step == "reminder"
            and c.outcome == "waiting"
            and [s.state for s in c.steps if s.step == "nudge"] == ["applied"]
        ),
        what="the nudge applied and the reminder the next step",
    )
    nudge = next(s for s in waiting.steps if s.step == "nudge")

    # As if the nudge had been proposed a moment before the reminder's time, and not answered yet.
    reminder_at = datetime.fromisoformat(waiting.next_at.replace("Z", "+00:00"))
    cases = world.dunning.store.cases
    await cases.update_one(
        {"_id": invoice.id},
        {
            "$set": {
                f"steps.{nudge.action_id}.state": "proposed",
                f"steps.{nudge.action_id}.at": reminder_at,
            }
        },
    )
    # The reminder's time comes, and an event for the invoice retimes its case.
    world.to(reminder_at)
    await world.dunning.projection.retime([invoice.id])
    world.dunning.timers.wake()
    held = await eventually(
        lambda: world.case(tenant, invoice.id),
        lambda c: c.reason == "awaiting_ledger",
        what="the case waiting for the ledger's answer",
    )
    assert held.outcome == "waiting"
    await asyncio.sleep(1.0)
    world.dunning.timers.wake()
    assert "reminded" not in await world.history_types(tenant, invoice.id)
    assert not [s for s in (await world.case(tenant, invoice.id)).steps if s.step == "reminder"]

    # The answer comes: the reminder goes, once, on the version the answer brought.
    await cases.update_one({"_id": invoice.id}, {"$set": {f"steps.{nudge.action_id}.state": "applied"}})
    await world.dunning.projection.retime([invoice.id])
    await world.wait_history(tenant, invoice.id, "reminded")
    types = await world.history_types(tenant, invoice.id)
    assert types.count("reminded") == 1
    assert "proposal_rejected" not in types
