"""IssueInvoice as an ERP sees it: numbers, KIDs, EN 16931 totals, idempotency, bad input, tenancy."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from stdnum import luhn

from services.ledger.app import LedgerApp
from services.ledger.profiles import change_profile, ensure_profile
from services.ledger.sandbox import sandbox_profile
from tests.support.ledger import (
    MakeTenant,
    TenantClient,
    customer_input,
    field_violations,
    invoice_request,
    line,
    today,
)

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

pytestmark = pytest.mark.integration


async def test_invoice_gets_number_kid_and_en16931_totals(tenant: TenantClient) -> None:
    # 3 x 33,33 kr at 25 %: VAT is 25 % of 99,99 = 24,9975 → 25,00 kr.
    three = await tenant.issue(invoice_request(lines=[line(3333, quantity="3")]))
    # The same three units on three lines: VAT is still rounded once per rate (BR-CO-17),
    # not per line (3 x 8,3325 → 3 x 8,33 = 24,99 would be wrong). 2,5 x 19,99 = 49,975 → 49,98 at 15 %.
    mixed = await tenant.issue(
        invoice_request(lines=[line(3333), line(3333), line(3333), line(1999, quantity="2.5", vat_rate="15")])
    )

    assert three.invoice_number == "1"
    assert mixed.invoice_number == "2"
    assert (three.net_total.minor_units, three.vat_total.minor_units, three.gross_total.minor_units) == (
        9999,
        2500,
        12499,
    )
    assert three.balance.minor_units == 12499
    assert three.gross_total.currency == "NOK"
    assert [(v.vat_rate, v.taxable_amount_minor, v.vat_amount_minor) for v in mixed.vat_breakdown] == [
        ("25", 9999, 2500),
        ("15", 4998, 750),
    ]
    assert (mixed.net_total.minor_units, mixed.vat_total.minor_units, mixed.gross_total.minor_units) == (
        14997,
        3250,
        18247,
    )
    assert [ln.net_amount_minor for ln in mixed.lines] == [3333, 3333, 3333, 4998]
    for invoice in (three, mixed):
        assert invoice.status == pb.INVOICE_STATUS_OPEN
        assert invoice.kind == pb.INVOICE_KIND_INVOICE
        assert len(invoice.kid) == 10
        assert invoice.kid.isdigit()
        assert luhn.is_valid(invoice.kid), invoice.kid
        assert invoice.customer_number == "K-1000"
        assert invoice.version == 1
    assert three.kid != mixed.kid
    by_kid = await tenant.stub.GetInvoice(pb.GetInvoiceRequest(kid=mixed.kid), metadata=tenant.metadata)
    by_number = await tenant.stub.GetInvoice(
        pb.GetInvoiceRequest(invoice_number="1"), metadata=tenant.metadata
    )
    assert by_kid.invoice.id == mixed.id
    assert by_number.invoice.id == three.id


async def test_invoice_past_its_due_date_is_overdue_from_the_start(tenant: TenantClient) -> None:
    late = invoice_request(issue_date=today() - timedelta(days=20), due_in_days=14)

    invoice = await tenant.issue(late)

    assert invoice.status == pb.INVOICE_STATUS_OVERDUE
    assert invoice.balance.minor_units == 125000


async def test_retry_with_the_same_key_returns_the_original(tenant: TenantClient) -> None:
    request = invoice_request("ERP-2026-0001")
    first = await tenant.stub.IssueInvoice(request, metadata=tenant.metadata)
    again = await tenant.stub.IssueInvoice(request, metadata=tenant.metadata)

    assert first.created is True
    assert again.created is False
    assert again.invoice == first.invoice
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert [i.id for i in listed.invoices] == [first.invoice.id]


async def test_same_key_with_another_payload_is_refused(tenant: TenantClient) -> None:
    await tenant.issue(invoice_request("ERP-2026-0002"))
    changed = invoice_request("ERP-2026-0002", lines=[line(999_00)])

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.issue(changed)

    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert len(listed.invoices) == 1
    assert listed.invoices[0].gross_total.minor_units == 125000


async def test_bad_request_names_every_wrong_field_and_stores_nothing(tenant: TenantClient) -> None:
    good_kid = "123456789" + luhn.calc_check_digit("123456789")
    wrong_kid = good_kid[:-1] + str((int(good_kid[-1]) + 1) % 10)
    request = invoice_request(
        customer=customer_input("K-BAD", name="", org_number="123456789", postal_code="12345"),
        currency="NOKK",
        lines=[line(quantity="-2")],
        kid=wrong_kid,
    )
    request.due_date = (today() - timedelta(days=1)).isoformat()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.issue(request)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {
        "customer.name",
        "customer.org_number",
        "customer.address.postal_code",
        "currency",
        "lines[0].quantity",
        "due_date",
        "kid",
    }
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert list(listed.invoices) == []
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await tenant.customer("K-BAD")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_calls_without_a_known_api_key_are_unauthenticated(
    tenant: TenantClient, ledger_stub: LedgerServiceAsyncStub
) -> None:
    for metadata in ((), (("authorization", "Bearer not-a-key"),), (("authorization", tenant.api_key),)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ledger_stub.IssueInvoice(invoice_request(), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert list(listed.invoices) == []


async def test_another_tenants_invoice_is_not_found(tenant: TenantClient, make_tenant: MakeTenant) -> None:
    invoice = await tenant.issue(invoice_request())
    other = await make_tenant()

    for call in (
        other.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.id), metadata=other.metadata),
        other.stub.GetInvoice(pb.GetInvoiceRequest(kid=invoice.kid), metadata=other.metadata),
        other.stub.GetInvoiceHistory(
            pb.GetInvoiceHistoryRequest(invoice_id=invoice.id), metadata=other.metadata
        ),
        other.stub.WriteOffInvoice(
            pb.WriteOffInvoiceRequest(idempotency_key="w", invoice_id=invoice.id, reason="not ours"),
            metadata=other.metadata,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await tenant.get(invoice.id)).status == pb.INVOICE_STATUS_OPEN


async def test_a_retry_racing_the_original_gets_the_same_invoice(tenant: TenantClient) -> None:
    request = invoice_request("ERP-RACE-1")

    responses = await asyncio.gather(
        *(tenant.stub.IssueInvoice(request, metadata=tenant.metadata) for _ in range(5))
    )

    assert sorted(r.created for r in responses) == [False, False, False, False, True]
    assert {r.invoice.id for r in responses} == {responses[0].invoice.id}
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert len(listed.invoices) == 1


async def test_without_due_date_or_terms_the_creditors_default_terms_apply(
    ledger_app: LedgerApp, tenant: TenantClient
) -> None:
    store = ledger_app.store
    await ensure_profile(
        store,
        tenant.tenant.id,
        dataclasses.replace(sandbox_profile(tenant.tenant.name), payment_terms_days=21),
        now=ledger_app.clock.now(),
        actor="test",
    )
    request = invoice_request()
    request.ClearField("due_date")

    check = pb.IssueInvoiceRequest()
    check.CopyFrom(request)
    check.validate_only = True
    checked = await tenant.stub.IssueInvoice(check, metadata=tenant.metadata)
    invoice = await tenant.issue(request)

    assert checked == pb.IssueInvoiceResponse()
    assert date.fromisoformat(invoice.due_date) == date.fromisoformat(invoice.issue_date) + timedelta(days=21)
    # The retry is the same request, whatever the terms are by then.
    await change_profile(
        store, tenant.tenant.id, {"payment_terms_days": 30}, now=ledger_app.clock.now(), actor="test"
    )
    again = await tenant.stub.IssueInvoice(request, metadata=tenant.metadata)
    assert (again.created, again.invoice.id, again.invoice.due_date) == (False, invoice.id, invoice.due_date)
