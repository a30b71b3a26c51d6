"""What a service reads from the ledger, on behalf of a tenant (with the service credential):
the invoice, its customer, its history. Events carry no personal data; these calls do."""

from __future__ import annotations

import grpc
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import ledger_pb2_grpc
from fordring.ledger.v1 import tenants_pb2 as tenants_pb

from services.common.errors import NotFound, Unavailable
from services.common.tenancy import service_metadata

_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
_OPTIONS = (
    # Calls spread over every address the target resolves to (a headless Service: every pod).
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


class LedgerClient:
    def __init__(self, target: str, service_token: str, *, caller: str = "renderer") -> None:
        self._target = target
        self._token = service_token
        self._caller = caller
        self._channel: grpc.aio.Channel | None = None
        self._stub: ledger_pb2_grpc.LedgerServiceAsyncStub | None = None

    def _ledger(self) -> ledger_pb2_grpc.LedgerServiceAsyncStub:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=_OPTIONS)
            self._stub = ledger_pb2_grpc.LedgerServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel, self._stub = None, None

    def _metadata(self, tenant_id: str) -> tuple[tuple[str, str], ...]:
        return service_metadata(self._token, tenant_id, self._caller)

    async def invoice(self, tenant_id: str, invoice_id: str) -> pb.Invoice:
        try:
            reply = await self._ledger().GetInvoice(
                pb.GetInvoiceRequest(invoice_id=invoice_id), metadata=self._metadata(tenant_id), timeout=15
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, f"invoice {invoice_id}") from None
        return reply.invoice

    async def invoice_by_number(self, tenant_id: str, number: str) -> pb.Invoice:
        try:
            reply = await self._ledger().GetInvoice(
                pb.GetInvoiceRequest(invoice_number=number), metadata=self._metadata(tenant_id), timeout=15
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, f"invoice {number}") from None
        return reply.invoice

    async def customer(self, tenant_id: str, customer_id: str) -> pb.Customer:
        try:
            reply = await self._ledger().GetCustomer(
                pb.GetCustomerRequest(customer_id=customer_id), metadata=self._metadata(tenant_id), timeout=15
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, f"customer {customer_id}") from None
        return reply.customer

    async def invoices(self, tenant_id: str, invoice_ids: list[str]) -> dict[str, pb.Invoice]:
        """Many invoices in one call (at most 500), by id; ids the ledger has none for are missing."""
        try:
            reply = await self._ledger().GetInvoices(
                pb.GetInvoicesRequest(invoice_ids=invoice_ids), metadata=self._metadata(tenant_id), timeout=30
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, f"{len(invoice_ids)} invoices") from None
        return {invoice.id: invoice for invoice in reply.invoices}

    async def customers(self, tenant_id: str, customer_ids: list[str]) -> dict[str, pb.Customer]:
        """Many customers in one call (at most 500), by id; ids the ledger has none for are missing."""
        try:
            reply = await self._ledger().GetCustomers(
                pb.GetCustomersRequest(customer_ids=customer_ids),
                metadata=self._metadata(tenant_id),
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, f"{len(customer_ids)} customers") from None
        return {customer.id: customer for customer in reply.customers}

    async def creditor_profile(self, tenant_id: str) -> tenants_pb.CreditorProfile | None:
        """The tenant's current creditor profile; None when it has none yet."""
        try:
            reply = await self._ledger().GetCreditorProfile(
                pb.GetCreditorProfileRequest(), metadata=self._metadata(tenant_id), timeout=15
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _translated(error, "creditor profile") from None
        return reply.profile

    async def history(self, tenant_id: str, invoice_id: str) -> list[pb.HistoryEntry]:
        try:
            reply = await self._ledger().GetInvoiceHistory(
                pb.GetInvoiceHistoryRequest(invoice_id=invoice_id),
                metadata=self._metadata(tenant_id),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, f"invoice {invoice_id}") from None
        return list(reply.entries)


def _translated(error: grpc.aio.AioRpcError, what: str) -> Exception:
    """UNAVAILABLE and friends: try again later (the event is redelivered); NOT_FOUND: the ledger
    has no such thing for this tenant (the event is parked after bounded attempts)."""
    if error.code() in _RETRYABLE:
        return Unavailable(f"the ledger did not answer ({error.code().name})")
    if error.code() == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"the ledger has no {what}")
    return Unavailable(f"the ledger refused to read {what} ({error.code().name}: {error.details()})")
