"""Hostile and careless input over gRPC: every bad field is named (INVALID_ARGUMENT), nothing is stored,
and no answer grows without bound."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.ledger import (
    TenantClient,
    customer_input,
    field_violations,
    invoice_request,
    line,
    money,
)

pytestmark = pytest.mark.integration


async def refused(call: object) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    return field_violations(error.value)


async def nothing_stored(tenant: TenantClient) -> None:
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert list(listed.invoices) == []


async def test_unknown_enum_numbers_name_their_field(tenant: TenantClient) -> None:
    customer = customer_input()
    index = len(customer.channel_preferences)
    customer.channel_preferences.append(99)  # type: ignore[arg-type]
    violations = await refused(tenant.issue(invoice_request(customer=customer)))
    assert set(violations) == {f"customer.channel_preferences[{index}]"}

    violations = await refused(
        tenant.stub.ListInvoices(
            pb.ListInvoicesRequest(statuses=[pb.INVOICE_STATUS_PAID, 77], kind=42),  # type: ignore[list-item,arg-type]
            metadata=tenant.metadata,
        )
    )
    assert set(violations) == {"statuses[1]", "kind"}
    await nothing_stored(tenant)


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("customer.name", "Acme\u202eSA nogalp"),  # right-to-left override: displays reversed
        ("lines[0].description", "Consulting\u2066 hours"),
        ("buyer_reference", "PO-\x00123"),
        ("order_reference", "ORDER\x1b[2J"),  # a terminal escape
    ],
)
async def test_control_and_bidi_characters_are_refused(tenant: TenantClient, where: str, text: str) -> None:
    request = invoice_request()
    if where == "customer.name":
        request.customer.name = text
    elif where.startswith("lines"):
        request.lines[0].description = text
    else:
        setattr(request, where, text)

    violations = await refused(tenant.issue(request))

    assert where in violations
    assert "U+" in violations[where]
    await nothing_stored(tenant)


async def test_dates_must_be_written_yyyy_mm_dd(tenant: TenantClient) -> None:
    request = invoice_request()
    request.issue_date = "20261123"
    request.due_date = "2026-W48-1"
    assert {"issue_date", "due_date"} <= set(await refused(tenant.issue(request)))

    violations = await refused(
        tenant.stub.ListInvoices(
            pb.ListInvoicesRequest(due_after="20261123", due_before="2026-W48-1"), metadata=tenant.metadata
        )
    )
    assert set(violations) == {"due_after", "due_before"}
    await nothing_stored(tenant)


async def test_an_empty_reference_finds_nothing(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    await tenant.credit(invoice)  # a credit note has no KID

    for request in (pb.GetInvoiceRequest(kid=""), pb.GetInvoiceRequest(invoice_number=" ")):
        violations = await refused(tenant.stub.GetInvoice(request, metadata=tenant.metadata))
        assert set(violations) in ({"kid"}, {"invoice_number"})


async def test_lengths_are_bounded_everywhere(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    huge = "x" * 100_000

    payment = pb.RecordPaymentRequest(
        idempotency_key=huge,
        amount=money(100_00),
        paid_on=invoice.issue_date,
        customer_number=invoice.customer_number,
        reference=huge,
        payer_account=huge,
        allocations=[pb.PaymentAllocationInput(invoice_id=invoice.id, amount_minor=100_00)],
    )
    violations = await refused(tenant.stub.RecordPayment(payment, metadata=tenant.metadata))
    assert {"idempotency_key", "reference", "payer_account"} <= set(violations)

    credit = pb.IssueCreditNoteRequest(
        idempotency_key="cn-1", invoice_id=invoice.id, reason="Returned", credit_note_number=huge
    )
    assert "credit_note_number" in await refused(
        tenant.stub.IssueCreditNote(credit, metadata=tenant.metadata)
    )

    write_off = pb.WriteOffInvoiceRequest(invoice_id=invoice.id, idempotency_key="wo-1", reason=huge)
    assert "reason" in await refused(tenant.stub.WriteOffInvoice(write_off, metadata=tenant.metadata))

    after = await tenant.get(invoice.id)
    assert after.version == invoice.version


async def test_a_page_of_large_invoices_stays_within_the_message_limit(tenant: TenantClient) -> None:
    # Six invoices of ~1 MB each (1,000 lines with long descriptions).
    lines = [line(unit_price_minor=100, description=f"{i:04d} " + "Beskrivelse " * 80) for i in range(1000)]
    for _ in range(6):
        await tenant.issue(invoice_request(lines=lines))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await tenant.stub.ListInvoices(
            pb.ListInvoicesRequest(page=common_pb2.PageRequest(page_size=500, page_token=token)),
            metadata=tenant.metadata,
        )
        assert page.ByteSize() < 4 * 1024 * 1024
        seen += [i.id for i in page.invoices]
        pages += 1
        token = page.page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 6
    assert pages >= 2


async def test_the_statement_comes_in_pages_with_totals_over_all(tenant: TenantClient) -> None:
    invoices = await asyncio.gather(*(tenant.issue(invoice_request()) for _ in range(7)))
    number = invoices[0].customer_number

    items: list[str] = []
    token = ""
    totals = set()
    while True:
        statement = await tenant.stub.GetCustomerStatement(
            pb.GetCustomerStatementRequest(
                customer_number=number, page=common_pb2.PageRequest(page_size=3, page_token=token)
            ),
            metadata=tenant.metadata,
        )
        assert len(statement.open_items) <= 3
        items += [i.id for i in statement.open_items]
        totals.add((statement.total_open.minor_units, statement.open_item_count))
        token = statement.page.next_page_token
        if not token:
            break
    assert sorted(items) == sorted(i.id for i in invoices)
    assert totals == {(7 * invoices[0].gross_total.minor_units, 7)}


async def test_a_statement_total_beyond_int64_is_a_clear_error(tenant: TenantClient) -> None:
    # The largest invoices the ledger takes: 1,000 lines of 10^15 øre plus 25 % VAT = 1.25 x 10^18 each.
    lines = [line(unit_price_minor=10**15, description=f"Line {i}") for i in range(1000)]
    invoices = [await tenant.issue(invoice_request(lines=lines)) for _ in range(8)]

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await tenant.stub.GetCustomerStatement(
            pb.GetCustomerStatementRequest(customer_number=invoices[0].customer_number),
            metadata=tenant.metadata,
        )
    assert error.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "int64" in (error.value.details() or "")
