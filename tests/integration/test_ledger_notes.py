"""The invoice's thread: notes kept by the ledger, told in the history (a new version that
WatchInvoice sends), idempotent by key."""

from __future__ import annotations

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import notes_pb2 as npb
from fordring.ledger.v1.notes_pb2_grpc import InvoiceNoteServiceStub

from tests.support.ledger import MakeTenant, TenantClient, invoice_request

pytestmark = pytest.mark.integration


async def test_a_thread_of_notes_on_an_invoice(
    tenant: TenantClient, ledger_channel: grpc.aio.Channel
) -> None:
    notes = InvoiceNoteServiceStub(ledger_channel)
    invoice = await tenant.issue(invoice_request())
    watch = tenant.stub.WatchInvoice(pb.WatchInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata)
    first = await watch.read()
    assert isinstance(first, pb.WatchInvoiceResponse)
    assert first.invoice.version == invoice.version

    asked = npb.AddInvoiceNoteRequest(
        invoice_id=invoice.id,
        author=npb.NOTE_AUTHOR_CUSTOMER,
        author_name="Kari Nordmann",
        text="Why is there a delivery fee?\nI collected it myself.",
        idempotency_key="q-1",
    )
    added = await notes.AddInvoiceNote(asked, metadata=tenant.metadata)
    assert added.invoice_version == invoice.version + 1
    again = await notes.AddInvoiceNote(asked, metadata=tenant.metadata)
    assert again.note.id == added.note.id

    update = await watch.read()
    assert isinstance(update, pb.WatchInvoiceResponse)
    assert update.change.type == "customer_message"
    assert update.invoice.version == added.invoice_version
    watch.cancel()

    await notes.AddInvoiceNote(
        npb.AddInvoiceNoteRequest(
            invoice_id=invoice.id,
            author=npb.NOTE_AUTHOR_STAFF,
            text="We will credit it.",
            idempotency_key="a-1",
        ),
        metadata=tenant.metadata,
    )
    thread = await notes.ListInvoiceNotes(
        npb.ListInvoiceNotesRequest(invoice_id=invoice.id), metadata=tenant.metadata
    )
    assert [(n.author, n.text) for n in thread.notes] == [
        (npb.NOTE_AUTHOR_CUSTOMER, asked.text),
        (npb.NOTE_AUTHOR_STAFF, "We will credit it."),
    ]
    assert thread.notes[0].kind == npb.NOTE_KIND_MESSAGE

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await notes.AddInvoiceNote(
            npb.AddInvoiceNoteRequest(
                invoice_id=invoice.id, author=npb.NOTE_AUTHOR_CUSTOMER, text="other", idempotency_key="q-1"
            ),
            metadata=tenant.metadata,
        )
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await notes.AddInvoiceNote(
            npb.AddInvoiceNoteRequest(invoice_id=invoice.id, author=npb.NOTE_AUTHOR_CUSTOMER, text=" "),
            metadata=tenant.metadata,
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_tenants_invoice_has_no_thread(
    tenant: TenantClient, make_tenant: MakeTenant, ledger_channel: grpc.aio.Channel
) -> None:
    other = await make_tenant()
    invoice = await tenant.issue(invoice_request())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await InvoiceNoteServiceStub(ledger_channel).ListInvoiceNotes(
            npb.ListInvoiceNotesRequest(invoice_id=invoice.id), metadata=other.metadata
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
