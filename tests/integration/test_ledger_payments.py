"""RecordPayment: part, whole and over-payment, refusals that change nothing, and idempotent retries."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.ledger import TenantClient, error_reason, field_violations, invoice_request, money

pytestmark = pytest.mark.integration


async def test_part_payment_then_the_rest(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    part = await tenant.pay(invoice, 500_00)
    assert part.created is True
    assert [i.id for i in part.invoices] == [invoice.id]
    assert part.invoices[0].status == pb.INVOICE_STATUS_PART_PAID
    assert part.invoices[0].balance.minor_units == 750_00
    assert part.unallocated.minor_units == 0

    rest = await tenant.pay(invoice, 750_00)
    paid = rest.invoices[0]
    assert paid.status == pb.INVOICE_STATUS_PAID
    assert paid.balance.minor_units == 0
    assert paid.paid_total.minor_units == 1250_00
    assert [a.payment_id for a in paid.allocations] == [part.payment_id, rest.payment_id]
    assert (await tenant.customer("K-1000")).credit_balance.minor_units == 0


async def test_overpayment_becomes_credit_balance(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    response = await tenant.pay(invoice, 1300_00)

    overpaid = response.invoices[0]
    assert overpaid.status == pb.INVOICE_STATUS_OVERPAID
    assert overpaid.balance.minor_units == 0
    assert response.unallocated.minor_units == 50_00
    assert (await tenant.customer("K-1000")).credit_balance.minor_units == 50_00


async def test_unallocated_part_of_a_payment_becomes_credit_balance(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    response = await tenant.pay(invoice, 1500_00, allocate=1250_00)

    assert response.invoices[0].status == pb.INVOICE_STATUS_PAID
    assert response.unallocated.minor_units == 250_00
    assert (await tenant.customer("K-1000")).credit_balance.minor_units == 250_00


async def test_payment_to_a_credited_invoice_is_refused_and_changes_nothing(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    credited = (await tenant.credit(invoice)).invoice

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.pay(invoice, 1250_00, key="PAY-1")

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "INVOICE_CREDITED"
    after = await tenant.get(invoice.id)
    assert after.version == credited.version
    assert after.paid_total.minor_units == 0
    assert list(after.allocations) == []
    assert (await tenant.customer("K-1000")).credit_balance.minor_units == 0
    # Nothing was stored under the key either: it is free for the payment's real destination.
    other = await tenant.issue(invoice_request())
    retried = await tenant.pay(other, 1250_00, key="PAY-1")
    assert retried.created is True


async def test_payment_retry_returns_the_first_result(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    first = await tenant.pay(invoice, 400_00, key="BANK-REF-77")

    again = await tenant.pay(invoice, 400_00, key="BANK-REF-77")

    assert again.created is False
    assert again.payment_id == first.payment_id
    after = await tenant.get(invoice.id)
    assert after.paid_total.minor_units == 400_00
    assert len(after.allocations) == 1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.pay(invoice, 500_00, key="BANK-REF-77")
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await tenant.get(invoice.id)).paid_total.minor_units == 400_00


async def test_allocations_beyond_the_amount_are_refused(tenant: TenantClient) -> None:
    first = await tenant.issue(invoice_request())
    second = await tenant.issue(invoice_request())
    request = pb.RecordPaymentRequest(
        idempotency_key="PAY-TOO-MUCH",
        amount=money(1000_00),
        paid_on=first.issue_date,
        allocations=[
            pb.PaymentAllocationInput(invoice_id=first.id, amount_minor=600_00),
            pb.PaymentAllocationInput(invoice_number=second.invoice_number, amount_minor=600_00),
        ],
    )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.stub.RecordPayment(request, metadata=tenant.metadata)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"allocations"}
    for invoice in (first, second):
        after = await tenant.get(invoice.id)
        assert (after.status, after.paid_total.minor_units, after.version) == (pb.INVOICE_STATUS_OPEN, 0, 1)


async def test_a_payment_retry_racing_the_original_is_applied_once(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    responses = await asyncio.gather(*(tenant.pay(invoice, 300_00, key="BANK-REF-RACE") for _ in range(4)))

    assert sorted(r.created for r in responses) == [False, False, False, True]
    assert {r.payment_id for r in responses} == {responses[0].payment_id}
    after = await tenant.get(invoice.id)
    assert after.paid_total.minor_units == 300_00
    assert len(after.allocations) == 1


async def test_payments_arriving_at_once_all_count(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    await asyncio.gather(*(tenant.pay(invoice, 100_00) for _ in range(10)))

    after = await tenant.get(invoice.id)
    assert after.paid_total.minor_units == 1000_00
    assert len(after.allocations) == 10
    assert after.balance.minor_units == 250_00
    assert after.version == 11
