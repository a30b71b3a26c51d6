"""Idempotency keys under concurrency: however many calls carry one key at once, the first payload
stored wins; calls with that payload get its result, calls with another payload are refused, and
the change happens once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.ledger import TenantClient, invoice_request, line, money

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def outcomes(calls: list[Callable[[], Awaitable[T]]]) -> list[T | grpc.StatusCode]:
    """Run the calls at once (in random order); each result, or the status code it failed with."""

    async def one(call: Callable[[], Awaitable[T]]) -> T | grpc.StatusCode:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            return error.code()

    order = list(calls)
    random.shuffle(order)
    return await asyncio.gather(*(one(c) for c in order))


async def test_one_key_two_payloads_at_once_for_invoices(tenant: TenantClient) -> None:
    x = invoice_request("ERP-K", lines=[line(unit_price_minor=100_00)])
    y = invoice_request("ERP-K", lines=[line(unit_price_minor=200_00)])
    calls = [(p, lambda p=p: tenant.issue(p)) for p in [x] * 25 + [y] * 25]
    random.shuffle(calls)

    results = await asyncio.gather(*(_tagged(p, c) for p, c in calls))

    stored = (await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)).invoices
    assert len(stored) == 1
    winner = x if stored[0].net_total.minor_units == 100_00 else y
    for payload, result in results:
        if payload is winner:
            assert isinstance(result, pb.Invoice), result
            assert result.id == stored[0].id
        else:
            assert result == grpc.StatusCode.ALREADY_EXISTS


async def _tagged(
    payload: pb.IssueInvoiceRequest, call: Callable[[], Awaitable[pb.Invoice]]
) -> tuple[pb.IssueInvoiceRequest, pb.Invoice | grpc.StatusCode]:
    try:
        return payload, await call()
    except grpc.aio.AioRpcError as error:
        return payload, error.code()


async def test_one_key_two_payloads_at_once_for_payments(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    def pay(amount: int) -> Callable[[], Awaitable[pb.RecordPaymentResponse]]:
        return lambda: tenant.pay(invoice, amount, key="BANK-1")

    results = await outcomes([pay(100_00)] * 25 + [pay(300_00)] * 25)

    paid = await tenant.get(invoice.id)
    assert len(paid.allocations) == 1
    stored_amount = paid.allocations[0].amount_minor
    successes = [r for r in results if isinstance(r, pb.RecordPaymentResponse)]
    refusals = [r for r in results if not isinstance(r, pb.RecordPaymentResponse)]
    assert len(successes) == 25
    assert {s.payment_id for s in successes} == {paid.allocations[0].payment_id}
    assert all(s.invoices[0].paid_total.minor_units == stored_amount for s in successes)
    assert refusals == [grpc.StatusCode.ALREADY_EXISTS] * 25


async def test_twenty_identical_write_offs_at_once_write_off_once(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    def write_off(reason: str) -> Callable[[], Awaitable[pb.WriteOffInvoiceResponse]]:
        request = pb.WriteOffInvoiceRequest(invoice_id=invoice.id, idempotency_key="WO-1", reason=reason)
        return lambda: tenant.stub.WriteOffInvoice(request, metadata=tenant.metadata)

    results = await outcomes([write_off("Debtor bankrupt")] * 20)

    assert all(isinstance(r, pb.WriteOffInvoiceResponse) for r in results), results
    responses = [r for r in results if isinstance(r, pb.WriteOffInvoiceResponse)]
    assert sum(r.created for r in responses) == 1
    assert {r.invoice.version for r in responses} == {invoice.version + 1}
    history = [e.type for e in await tenant.history(invoice.id)]
    assert history.count("written_off") == 1

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await write_off("Another reason")()
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_concurrent_retries_of_one_credit_note_credit_once(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    results = await outcomes([lambda: tenant.credit(invoice, key="CN-K")] * 20)

    assert all(isinstance(r, pb.IssueCreditNoteResponse) for r in results), results
    responses = [r for r in results if isinstance(r, pb.IssueCreditNoteResponse)]
    assert sum(r.created for r in responses) == 1
    assert len({r.credit_note.id for r in responses}) == 1
    credited = await tenant.get(invoice.id)
    assert credited.credited_total.minor_units == invoice.gross_total.minor_units
    assert len(credited.credit_note_ids) == 1


async def test_concurrent_payments_with_distinct_keys_all_apply(tenant: TenantClient) -> None:
    """Many payments on one invoice at once: each applies once, none is lost to a write conflict."""
    invoice = await tenant.issue(invoice_request())

    results = await outcomes([lambda: tenant.pay(invoice, 10_00)] * 30)

    assert all(isinstance(r, pb.RecordPaymentResponse) for r in results), results
    paid = await tenant.get(invoice.id)
    assert paid.paid_total.minor_units == 300_00
    assert len(paid.allocations) == 30
    assert paid.balance == money(invoice.gross_total.minor_units - 300_00)
