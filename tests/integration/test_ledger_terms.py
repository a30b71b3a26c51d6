"""More time to pay: a later due date before the invoice falls due, told in its history and sent to
its watchers; idempotent by key; refused once the invoice is overdue or for an earlier date."""

from __future__ import annotations

from datetime import date, timedelta

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import terms_pb2 as tpb
from fordring.ledger.v1.terms_pb2_grpc import InvoiceTermsServiceStub

from tests.support.ledger import TenantClient, invoice_request, today

pytestmark = pytest.mark.integration


async def test_customer_service_gives_more_time(
    tenant: TenantClient, ledger_channel: grpc.aio.Channel
) -> None:
    terms = InvoiceTermsServiceStub(ledger_channel)
    invoice = await tenant.issue(invoice_request(due_in_days=30))
    watch = tenant.stub.WatchInvoice(pb.WatchInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata)
    assert isinstance(await watch.read(), pb.WatchInvoiceResponse)
    later = (date.fromisoformat(invoice.due_date) + timedelta(days=14)).isoformat()
    ask = tpb.ChangeDueDateRequest(
        invoice_id=invoice.id, due_date=later, reason="phoned in", idempotency_key="k-1"
    )
    moved = (await terms.ChangeDueDate(ask, metadata=tenant.metadata)).invoice
    assert moved.due_date == later
    assert moved.status == pb.INVOICE_STATUS_OPEN
    assert moved.version == invoice.version + 1
    update = await watch.read()
    assert isinstance(update, pb.WatchInvoiceResponse)
    assert update.change.type == "due_date_changed"
    assert update.invoice.due_date == later
    watch.cancel()
    assert (await terms.ChangeDueDate(ask, metadata=tenant.metadata)).invoice.version == moved.version

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await terms.ChangeDueDate(
            tpb.ChangeDueDateRequest(invoice_id=invoice.id, due_date=invoice.due_date, idempotency_key="k-1"),
            metadata=tenant.metadata,
        )
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as earlier:
        await terms.ChangeDueDate(
            tpb.ChangeDueDateRequest(invoice_id=invoice.id, due_date=invoice.due_date, idempotency_key="k-2"),
            metadata=tenant.metadata,
        )
    assert earlier.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_invoice_past_its_due_date_keeps_it(
    tenant: TenantClient, ledger_channel: grpc.aio.Channel
) -> None:
    invoice = await tenant.issue(invoice_request(issue_date=today() - timedelta(days=40), due_in_days=10))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await InvoiceTermsServiceStub(ledger_channel).ChangeDueDate(
            tpb.ChangeDueDateRequest(
                invoice_id=invoice.id,
                due_date=(today() + timedelta(days=10)).isoformat(),
                idempotency_key="k",
            ),
            metadata=tenant.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
