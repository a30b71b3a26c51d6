"""Time passes: invoices not paid by their due date become overdue, and the ledger says so on Kafka."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.clock import local_today
from services.ledger.app import LedgerApp
from tests.support.clock import MovableClock
from tests.support.kafka import TopicReader
from tests.support.ledger import MakeTenant, TenantClient, invoice_request

pytestmark = pytest.mark.integration


async def test_sweep_marks_unpaid_invoices_overdue_and_announces_it(
    tenant: TenantClient, clock: MovableClock, ledger_app: LedgerApp, invoice_events: TopicReader
) -> None:
    start = clock.today()
    unpaid = await tenant.issue(invoice_request(issue_date=start, due_in_days=3))
    part_paid = await tenant.issue(invoice_request(issue_date=start, due_in_days=3))
    await tenant.pay(part_paid, 500_00)
    paid = await tenant.issue(invoice_request(issue_date=start, due_in_days=3))
    await tenant.pay(paid, 1250_00)
    not_yet = await tenant.issue(invoice_request(issue_date=start, due_in_days=30))

    await ledger_app.sweep_overdue()
    assert (await tenant.get(unpaid.id)).status == pb.INVOICE_STATUS_OPEN  # not due yet
    clock.advance(timedelta(days=5))
    await ledger_app.sweep_overdue()

    assert (await tenant.get(unpaid.id)).status == pb.INVOICE_STATUS_OVERDUE
    assert (await tenant.get(part_paid.id)).status == pb.INVOICE_STATUS_OVERDUE
    assert (await tenant.get(part_paid.id)).balance.minor_units == 750_00
    assert (await tenant.get(paid.id)).status == pb.INVOICE_STATUS_PAID
    assert (await tenant.get(not_yet.id)).status == pb.INVOICE_STATUS_OPEN
    last = (await tenant.history(unpaid.id))[-1]
    assert (last.type, last.actor, last.status_after) == ("overdue", "ledger", pb.INVOICE_STATUS_OVERDUE)
    assert len(last.trace_id) == 32, "the sweep's change has a trace an operator can open"

    def overdue_events() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for _, event in invoice_events.events(tenant_id=tenant.tenant.id):
            if event["type"] == "InvoiceOverdue":
                found.setdefault(event["subject"], [])
                if event["id"] not in found[event["subject"]]:
                    found[event["subject"]].append(event["id"])
        return found if {unpaid.id, part_paid.id} <= found.keys() else {}

    announced = await invoice_events.wait_for(overdue_events, what="InvoiceOverdue events")
    assert set(announced) == {unpaid.id, part_paid.id}
    assert [len(ids) for ids in announced.values()] == [1, 1]
    record = next(r for r, e in invoice_events.events(tenant_id=tenant.tenant.id) if e["id"] == last.event_id)
    assert last.trace_id in record.headers["traceparent"].decode()

    # A second sweep finds nothing more to do for these invoices.
    await ledger_app.sweep_overdue()
    assert [e.type for e in await tenant.history(unpaid.id)] == ["issued", "overdue"]


async def test_each_tenant_sweeps_by_its_own_today_however_many_are_due_today(
    make_tenant: MakeTenant, clock: MovableClock, ledger_app: LedgerApp
) -> None:
    # At 15:00 UTC it is 16:00 in Oslo and already 05:00 tomorrow in Kiritimati (UTC+14).
    now = clock.now()
    target = now.replace(hour=15, minute=0, second=0, microsecond=0)
    clock.advance(target - now if target > now else target + timedelta(days=1) - now)
    oslo = await make_tenant()
    kiritimati = await make_tenant(timezone="Pacific/Kiritimati")
    day = local_today(clock, ZoneInfo("Europe/Oslo"))

    def due(on: date) -> pb.IssueInvoiceRequest:
        return invoice_request(issue_date=day, due_date=on)

    late = await asyncio.gather(*(oslo.issue(due(day + timedelta(days=1))) for _ in range(5)))
    due_today = await asyncio.gather(*(oslo.issue(due(day + timedelta(days=2))) for _ in range(1005)))
    theirs = await asyncio.gather(*(kiritimati.issue(due(day + timedelta(days=2))) for _ in range(3)))
    assert {i.status for i in [*late, *due_today, *theirs]} == {pb.INVOICE_STATUS_OPEN}

    # Two days on: the first five are a day late in Oslo; the 1,005 are due today in Oslo, which is
    # already yesterday in Kiritimati, where that tenant's three are late.
    clock.advance(timedelta(days=2))
    assert local_today(clock, ZoneInfo("Pacific/Kiritimati")) == day + timedelta(days=3)
    moved = await ledger_app.sweep_overdue()

    assert moved >= 8
    for invoice in late:
        assert (await oslo.get(invoice.id)).status == pb.INVOICE_STATUS_OVERDUE
    for invoice in theirs:
        assert (await kiritimati.get(invoice.id)).status == pb.INVOICE_STATUS_OVERDUE
    for invoice in due_today[:20]:
        assert (await oslo.get(invoice.id)).status == pb.INVOICE_STATUS_OPEN
    overdue = await oslo.stub.ListInvoices(
        pb.ListInvoicesRequest(
            statuses=[pb.INVOICE_STATUS_OVERDUE], page=common_pb2.PageRequest(page_size=500)
        ),
        metadata=oslo.metadata,
    )
    assert {i.id for i in overdue.invoices} == {i.id for i in late}
