"""An invoice's life as the ERP follows it: write-off, lists, history, live updates, statements."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import grpc
import pytest
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.clock import MovableClock
from tests.support.ledger import TenantClient, customer_input, error_reason, invoice_request, money, today

pytestmark = pytest.mark.integration


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def test_write_off_closes_the_claim(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    await tenant.pay(invoice, 250_00)
    request = pb.WriteOffInvoiceRequest(
        idempotency_key="WO-1", invoice_id=invoice.id, reason="Debtor bankrupt"
    )

    written_off = await tenant.stub.WriteOffInvoice(request, metadata=tenant.metadata)
    again = await tenant.stub.WriteOffInvoice(request, metadata=tenant.metadata)

    assert written_off.created is True
    assert written_off.invoice.status == pb.INVOICE_STATUS_WRITTEN_OFF
    assert written_off.invoice.written_off_total.minor_units == 1000_00
    assert written_off.invoice.balance.minor_units == 0
    assert again.created is False
    assert again.invoice.version == written_off.invoice.version
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.pay(invoice, 1000_00)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "INVOICE_WRITTEN_OFF"


async def test_a_paid_invoice_cannot_be_written_off(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    await tenant.pay(invoice, 1250_00)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.stub.WriteOffInvoice(
            pb.WriteOffInvoiceRequest(idempotency_key="WO-2", invoice_id=invoice.id, reason="oops"),
            metadata=tenant.metadata,
        )

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await tenant.get(invoice.id)).status == pb.INVOICE_STATUS_PAID


async def test_list_invoices_filters_by_status_customer_and_due_date(tenant: TenantClient) -> None:
    start = today()
    k1, k2 = customer_input("K-1"), customer_input("K-2", name="Havbris Sjømat AS")
    k1_due10 = await tenant.issue(invoice_request(customer=k1, due_in_days=10))
    k1_due20 = await tenant.issue(invoice_request(customer=k1, due_in_days=20))
    k1_due30 = await tenant.issue(invoice_request(customer=k1, due_in_days=30))
    k2_due15 = await tenant.issue(invoice_request(customer=k2, due_in_days=15))
    k2_paid = await tenant.issue(invoice_request(customer=k2, due_in_days=40))
    k2_late = await tenant.issue(
        invoice_request(customer=k2, issue_date=start - timedelta(days=20), due_in_days=15)
    )
    await tenant.pay(k2_paid, 1250_00)

    async def ids(query: pb.ListInvoicesRequest) -> set[str]:
        response = await tenant.stub.ListInvoices(query, metadata=tenant.metadata)
        assert response.page.next_page_token == ""
        return {i.id for i in response.invoices}

    paid, overdue, open_ = pb.INVOICE_STATUS_PAID, pb.INVOICE_STATUS_OVERDUE, pb.INVOICE_STATUS_OPEN
    assert await ids(pb.ListInvoicesRequest(statuses=[paid])) == {k2_paid.id}
    assert await ids(pb.ListInvoicesRequest(statuses=[overdue, paid])) == {k2_paid.id, k2_late.id}
    assert await ids(pb.ListInvoicesRequest(customer_number="K-1")) == {k1_due10.id, k1_due20.id, k1_due30.id}
    assert await ids(pb.ListInvoicesRequest(customer_number="K-2", statuses=[open_])) == {k2_due15.id}
    between = pb.ListInvoicesRequest(
        due_after=(start + timedelta(days=10)).isoformat(),
        due_before=(start + timedelta(days=20)).isoformat(),
    )
    assert await ids(between) == {k1_due10.id, k1_due20.id, k2_due15.id}
    assert await ids(pb.ListInvoicesRequest(due_before=(start - timedelta(days=1)).isoformat())) == {
        k2_late.id
    }
    assert await ids(pb.ListInvoicesRequest(customer_number="K-3")) == set()


async def test_list_invoices_pages_through_everything_once(tenant: TenantClient) -> None:
    issued = [await tenant.issue(invoice_request()) for _ in range(7)]

    seen: list[str] = []
    pages: list[int] = []
    token = ""
    while True:
        response = await tenant.stub.ListInvoices(
            pb.ListInvoicesRequest(page=common_pb2.PageRequest(page_size=3, page_token=token)),
            metadata=tenant.metadata,
        )
        pages.append(len(response.invoices))
        seen.extend(i.id for i in response.invoices)
        token = response.page.next_page_token
        if not token:
            break

    assert pages == [3, 3, 1]
    assert len(seen) == len(set(seen))
    assert set(seen) == {i.id for i in issued}


async def test_history_tells_every_step_with_actor_and_trace(tenant: TenantClient) -> None:
    traces = [_traceparent() for _ in range(4)]
    issued = await tenant.stub.IssueInvoice(invoice_request(), metadata=tenant.traced(traces[0][1]))
    invoice = issued.invoice
    await tenant.stub.RecordPayment(
        pb.RecordPaymentRequest(
            idempotency_key="P-1",
            amount=money(500_00),
            paid_on=invoice.issue_date,
            allocations=[pb.PaymentAllocationInput(invoice_id=invoice.id, amount_minor=500_00)],
        ),
        metadata=tenant.traced(traces[1][1]),
    )
    await tenant.stub.IssueCreditNote(
        pb.IssueCreditNoteRequest(
            idempotency_key="CN-1",
            invoice_id=invoice.id,
            reason="Discount",
            lines=[
                pb.InvoiceLineInput(
                    description="Discount", quantity="1", unit_price_minor=100_00, vat_rate="25"
                )
            ],
        ),
        metadata=tenant.traced(traces[2][1]),
    )
    await tenant.stub.WriteOffInvoice(
        pb.WriteOffInvoiceRequest(idempotency_key="WO-1", invoice_id=invoice.id, reason="Small rest"),
        metadata=tenant.traced(traces[3][1]),
    )

    history = await tenant.history(invoice.id)

    assert [e.type for e in history] == ["issued", "payment_applied", "credited", "written_off"]
    assert [(e.status_before, e.status_after) for e in history] == [
        (pb.INVOICE_STATUS_UNSPECIFIED, pb.INVOICE_STATUS_OPEN),
        (pb.INVOICE_STATUS_OPEN, pb.INVOICE_STATUS_PART_PAID),
        (pb.INVOICE_STATUS_PART_PAID, pb.INVOICE_STATUS_PART_PAID),
        (pb.INVOICE_STATUS_PART_PAID, pb.INVOICE_STATUS_WRITTEN_OFF),
    ]
    assert [e.version for e in history] == [1, 2, 3, 4]
    assert {e.actor for e in history} == {"erp:erp-test"}
    assert [e.trace_id for e in history] == [t for t, _ in traces]
    assert len({e.event_id for e in history}) == 4
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert all(e.summary for e in history)
    final = await tenant.get(invoice.id)
    assert (
        final.paid_total.minor_units,
        final.credited_total.minor_units,
        final.written_off_total.minor_units,
    ) == (500_00, 125_00, 625_00)


async def test_watch_shows_the_invoice_then_each_change(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    call = tenant.stub.WatchInvoice(pb.WatchInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata)
    try:
        now = await asyncio.wait_for(call.read(), timeout=10)
        assert isinstance(now, pb.WatchInvoiceResponse)
        assert now.invoice.id == invoice.id
        assert now.invoice.status == pb.INVOICE_STATUS_OPEN
        assert not now.HasField("change")

        await tenant.pay(invoice, 500_00)
        paid = await asyncio.wait_for(call.read(), timeout=10)
        assert isinstance(paid, pb.WatchInvoiceResponse)
        assert paid.change.type == "payment_applied"
        assert paid.invoice.status == pb.INVOICE_STATUS_PART_PAID
        assert paid.invoice.balance.minor_units == 750_00

        await tenant.credit(
            invoice,
            lines=[
                pb.InvoiceLineInput(description="Rest", quantity="1", unit_price_minor=600_00, vat_rate="25")
            ],
        )
        credited = await asyncio.wait_for(call.read(), timeout=10)
        assert isinstance(credited, pb.WatchInvoiceResponse)
        assert credited.change.type == "credited"
        # Part paid, the rest credited: settled.
        assert credited.invoice.status == pb.INVOICE_STATUS_PAID
        assert credited.invoice.balance.minor_units == 0
    finally:
        call.cancel()


async def test_statement_ages_open_items_as_time_passes(tenant: TenantClient, clock: MovableClock) -> None:
    start = clock.today()
    await tenant.issue(invoice_request(issue_date=start, due_in_days=10))
    await tenant.issue(invoice_request(issue_date=start, due_in_days=30))
    due_in_60 = await tenant.issue(invoice_request(issue_date=start, due_in_days=60))
    await tenant.pay(due_in_60, 250_00)
    await tenant.issue(
        invoice_request(issue_date=start - timedelta(days=80), due_in_days=40)
    )  # due 40 days ago
    await tenant.issue(
        invoice_request(issue_date=start - timedelta(days=100), due_in_days=40)
    )  # due 60 days ago
    paid = await tenant.issue(invoice_request(issue_date=start))
    await tenant.pay(paid, 1250_00)

    async def aging() -> tuple[str, list[tuple[str, int, int]], int]:
        statement = await tenant.stub.GetCustomerStatement(
            pb.GetCustomerStatementRequest(customer_number="K-1000"), metadata=tenant.metadata
        )
        assert len(statement.open_items) == 5
        buckets = [(b.label, b.amount.minor_units, b.count) for b in statement.aging]
        return statement.as_of, buckets, statement.total_open.minor_units

    assert await aging() == (
        start.isoformat(),
        [
            ("not_due", 1250_00 + 1250_00 + 1000_00, 3),
            ("1-30", 0, 0),
            ("31-60", 2500_00, 2),
            ("61-90", 0, 0),
            ("90+", 0, 0),
        ],
        6000_00,
    )

    clock.advance(timedelta(days=45))

    assert await aging() == (
        (start + timedelta(days=45)).isoformat(),
        [
            ("not_due", 1000_00, 1),
            ("1-30", 1250_00, 1),
            ("31-60", 1250_00, 1),
            ("61-90", 1250_00, 1),
            ("90+", 1250_00, 1),
        ],
        6000_00,
    )
