"""Gapless invoice numbers and KIDs: under concurrency, per KID scheme, and as the ERP supplies them."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from stdnum import luhn

from tests.support.ledger import MakeTenant, TenantClient, field_violations, invoice_request, mod11_valid

pytestmark = pytest.mark.integration


async def test_concurrent_invoices_get_gapless_numbers_and_unique_kids(tenant: TenantClient) -> None:
    invoices = await asyncio.gather(*(tenant.issue(invoice_request(f"ERP-{i}")) for i in range(300)))

    assert sorted(int(i.invoice_number) for i in invoices) == list(range(1, 301))
    kids = [i.kid for i in invoices]
    assert len(set(kids)) == 300
    assert all(luhn.is_valid(kid) for kid in kids)
    listed = await tenant.stub.ListInvoices(
        pb.ListInvoicesRequest(page=common_pb2.PageRequest(page_size=500)), metadata=tenant.metadata
    )
    assert len(listed.invoices) == 300


async def test_mod11_tenant_gets_valid_mod11_kids_never_ending_in_a_dash(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant(kid_scheme="mod11")
    # Of the first 30 KID bodies, several have remainder 10 (check "-"), which banks refuse.
    invoices = await asyncio.gather(*(tenant.issue(invoice_request()) for _ in range(30)))

    kids = [i.kid for i in invoices]
    assert len(set(kids)) == 30
    for kid in kids:
        assert not kid.endswith("-"), kid
        assert mod11_valid(kid), kid


async def test_erp_supplied_number_and_kid_are_used(tenant: TenantClient) -> None:
    kid = "20260042" + luhn.calc_check_digit("20260042")

    supplied = await tenant.issue(invoice_request(invoice_number="2026-0042", kid=kid))
    generated = await tenant.issue(invoice_request())

    assert (supplied.invoice_number, supplied.kid) == ("2026-0042", kid)
    # The ERP's own number does not use up a number of the ledger's series.
    assert generated.invoice_number == "1"
    found = await tenant.stub.GetInvoice(pb.GetInvoiceRequest(kid=kid), metadata=tenant.metadata)
    assert found.invoice.id == supplied.id


async def test_duplicate_erp_invoice_number_is_refused(tenant: TenantClient) -> None:
    first = await tenant.issue(invoice_request(invoice_number="INV-7"))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.issue(invoice_request(invoice_number="INV-7"))

    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert [i.id for i in listed.invoices] == [first.id]


async def test_erp_kid_with_a_wrong_check_digit_is_refused(tenant: TenantClient) -> None:
    good = "20260042" + luhn.calc_check_digit("20260042")
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.issue(invoice_request(kid=wrong))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"kid"}
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert list(listed.invoices) == []


async def test_a_supplied_number_the_counter_reaches_later_is_skipped_not_blocking(
    tenant: TenantClient,
) -> None:
    # The ERP numbers some invoices itself, with numbers the ledger's own series reaches later.
    first_kid = await tenant.issue(invoice_request())  # number 1 and the first generated KID
    body = first_kid.kid[:-1]
    # The KID the counter would generate third (same length, next-but-one body).
    third_kid_body = str(int(body) + 2).zfill(len(body))
    third_kid = third_kid_body + luhn.calc_check_digit(third_kid_body)
    supplied = await asyncio.gather(
        tenant.issue(invoice_request(invoice_number="3")),
        tenant.issue(invoice_request(invoice_number="5", kid=third_kid)),
    )

    generated = await asyncio.gather(*(tenant.issue(invoice_request()) for _ in range(20)))

    numbers = sorted(int(i.invoice_number) for i in [first_kid, *supplied, *generated])
    # One series without gaps or repeats: the supplied 3 and 5 are in it, the counter went round them.
    assert numbers == list(range(1, 24))
    kids = [i.kid for i in [first_kid, *supplied, *generated]]
    assert len(set(kids)) == len(kids)
    assert third_kid in kids


async def test_mixing_supplied_and_generated_numbers_under_concurrency(tenant: TenantClient) -> None:
    supplied = [str(n) for n in range(10, 60, 5)]  # 10, 15, ..., 55
    requests = [invoice_request(invoice_number=n) for n in supplied]
    requests += [invoice_request() for _ in range(50)]

    issued = await asyncio.gather(*(tenant.issue(r) for r in requests))

    numbers = sorted(int(i.invoice_number) for i in issued)
    assert numbers == list(range(1, 61))
