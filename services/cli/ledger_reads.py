"""Reads from the ledger that page or combine calls."""

from __future__ import annotations

from collections.abc import Sequence

from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.cli.client import QUICK, RetryPolicy, with_retries

PAGE_SIZE = 500


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
