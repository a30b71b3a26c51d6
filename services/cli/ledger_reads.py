"""Reads from the ledger that page or combine calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.cli.client import QUICK, Connection, RetryPolicy, ledger_stub, with_retries

PAGE_SIZE = 500
A = TypeVar("A")
B = TypeVar("B")


async def read_both(
    connection: Connection,
    first: Callable[[ledger_pb2_grpc.LedgerServiceAsyncStub], Awaitable[A]],
    second: Callable[[ledger_pb2_grpc.LedgerServiceAsyncStub], Awaitable[B]],
) -> tuple[A, B]:
    """Two reads side by side on one channel, each retried while the ledger is unavailable."""
    async with ledger_stub(connection) as stub:
        return await asyncio.gather(
            with_retries(lambda: first(stub), QUICK), with_retries(lambda: second(stub), QUICK)
        )


async def list_invoices(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
    *,
    statuses: Sequence[ledger_pb2.InvoiceStatus.ValueType] = (),
    customer_number: str = "",
    retries: RetryPolicy = QUICK,
) -> list[ledger_pb2.Invoice]:
    invoices: list[ledger_pb2.Invoice] = []
    token = ""
    while True:
        request = ledger_pb2.ListInvoicesRequest(
            statuses=statuses,
            customer_number=customer_number,
            page=common_pb2.PageRequest(page_size=PAGE_SIZE, page_token=token),
        )

        async def fetch(request: ledger_pb2.ListInvoicesRequest = request) -> ledger_pb2.ListInvoicesResponse:
            return await stub.ListInvoices(request, metadata=metadata, timeout=retries.call_timeout)

        response = await with_retries(fetch, retries)
        invoices.extend(response.invoices)
        token = response.page.next_page_token
        if not token:
            return invoices


async def invoice_by_number_or_id(connection: Connection, reference: str) -> ledger_pb2.Invoice:
    """The invoice a person names: its number, or else its id (NOT_FOUND when it is neither)."""
    async with ledger_stub(connection) as stub:
        return await _number_or_id(
            lambda: stub.GetInvoice(
                ledger_pb2.GetInvoiceRequest(invoice_number=reference),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            lambda: stub.GetInvoice(
                ledger_pb2.GetInvoiceRequest(invoice_id=reference),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            reference,
            lambda reply: reply.invoice,
        )


async def customer_by_number_or_id(connection: Connection, reference: str) -> ledger_pb2.Customer:
    """The customer a person names: their number, or else their id (NOT_FOUND when it is neither)."""
    async with ledger_stub(connection) as stub:
        return await _number_or_id(
            lambda: stub.GetCustomer(
                ledger_pb2.GetCustomerRequest(customer_number=reference),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            lambda: stub.GetCustomer(
                ledger_pb2.GetCustomerRequest(customer_id=reference),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            reference,
            lambda reply: reply.customer,
        )


async def _number_or_id(
    by_number: Callable[[], Awaitable[A]],
    by_id: Callable[[], Awaitable[A]],
    reference: str,
    found: Callable[[A], B],
) -> B:
    try:
        return found(await with_retries(by_number, QUICK))
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND or not _looks_like_id(reference):
            raise
    return found(await with_retries(by_id, QUICK))


def _looks_like_id(reference: str) -> bool:
    try:
        uuid.UUID(reference)
    except ValueError:
        return False
    return True
