"""Talking to the ledger as an ERP does: a tenant's API key, request builders, error details."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.clock import SystemClock, local_today
from services.common.tenancy import Tenant
from services.ledger.settings import LedgerSettings

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

ORG_NUMBER = "974760673"  # a valid Norwegian organisation number (MOD11)
# The credential the session's services present to each other.
SERVICE_TOKEN = "test-service-token-" + "x" * 16
LINK_SECRET = "test-link-secret"


@dataclass(frozen=True)
class TenantClient:
    """One creditor's ERP: its tenant, its API key and a stub on the shared channel."""

    tenant: Tenant
    api_key: str
    key_name: str
    stub: LedgerServiceAsyncStub

    @property
    def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {self.api_key}"),)

    def traced(self, traceparent: str) -> Metadata:
        """The metadata of a call made inside the ERP's own trace."""
        return (*self.metadata, ("traceparent", traceparent))

    async def issue(self, request: pb.IssueInvoiceRequest) -> pb.Invoice:
        response = await self.stub.IssueInvoice(request, metadata=self.metadata)
        return response.invoice

    async def get(self, invoice_id: str) -> pb.Invoice:
        response = await self.stub.GetInvoice(
            pb.GetInvoiceRequest(invoice_id=invoice_id), metadata=self.metadata
        )
        return response.invoice

    async def pay(
        self,
        invoice: pb.Invoice,
        amount: int,
        *,
        key: str = "",
        allocate: int | None = None,
        paid_on: str = "",
    ) -> pb.RecordPaymentResponse:
        """Pay `amount` with `allocate` (default: all of it) allocated to the invoice."""
        request = pb.RecordPaymentRequest(
            idempotency_key=key or f"pay-{uuid.uuid4()}",
            amount=money(amount),
            paid_on=paid_on or invoice.issue_date,
            customer_number=invoice.customer_number,
            allocations=[
                pb.PaymentAllocationInput(
                    invoice_id=invoice.id, amount_minor=amount if allocate is None else allocate
                )
            ],
        )
        return await self.stub.RecordPayment(request, metadata=self.metadata)

    async def credit(
        self,
        invoice: pb.Invoice,
        *,
        key: str = "",
        lines: Sequence[pb.InvoiceLineInput] = (),
        reason: str = "Returned goods",
    ) -> pb.IssueCreditNoteResponse:
        request = pb.IssueCreditNoteRequest(
            idempotency_key=key or f"cn-{uuid.uuid4()}",
            invoice_id=invoice.id,
            lines=list(lines),
            reason=reason,
        )
        return await self.stub.IssueCreditNote(request, metadata=self.metadata)

    async def history(self, invoice_id: str) -> list[pb.HistoryEntry]:
        response = await self.stub.GetInvoiceHistory(
            pb.GetInvoiceHistoryRequest(invoice_id=invoice_id), metadata=self.metadata
        )
        return list(response.entries)

    async def customer(self, number: str) -> pb.Customer:
        response = await self.stub.GetCustomer(
            pb.GetCustomerRequest(customer_number=number), metadata=self.metadata
        )
        return response.customer


MakeTenant = Callable[..., Awaitable[TenantClient]]


def today() -> date:
    """The real today in Oslo, where the tenants are (the ledger's clock when nobody moved it)."""
    return local_today(SystemClock())


def money(minor: int, currency: str = "NOK") -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=currency)


def customer_input(
    number: str = "K-1000",
    *,
    name: str = "Fjordbris Kaffe AS",
    org_number: str = ORG_NUMBER,
    postal_code: str = "0155",
) -> pb.CustomerInput:
    return pb.CustomerInput(
        number=number,
        name=name,
        kind=pb.CUSTOMER_KIND_BUSINESS,
        org_number=org_number,
        email="faktura@fjordbris.example",
        address=common_pb2.Address(lines=["Storgata 1"], postal_code=postal_code, city="Oslo", country="NO"),
        language="nb",
        channel_preferences=[pb.CHANNEL_EMAIL],
        consents=pb.Consents(email=True),
    )


def line(
    unit_price_minor: int = 1000_00,
    quantity: str = "1",
    vat_rate: str = "25",
    description: str = "Consulting hours",
) -> pb.InvoiceLineInput:
    return pb.InvoiceLineInput(
        description=description, quantity=quantity, unit_price_minor=unit_price_minor, vat_rate=vat_rate
    )


def invoice_request(
    key: str = "",
    *,
    customer: pb.CustomerInput | None = None,
    lines: Sequence[pb.InvoiceLineInput] = (),
    issue_date: date | None = None,
    due_in_days: int = 30,
    due_date: date | None = None,
    currency: str = "NOK",
    invoice_number: str = "",
    kid: str = "",
) -> pb.IssueInvoiceRequest:
    """An invoice of 1 250,00 kr (1 000,00 + 25 % VAT) due in 30 days, unless told otherwise.

    Dates default to the real today in Oslo: tests that move the clock pass their own.
    """
    issued = issue_date or today()
    return pb.IssueInvoiceRequest(
        idempotency_key=key or f"erp-{uuid.uuid4()}",
        customer=customer or customer_input(),
        issue_date=issued.isoformat(),
        due_date=(due_date or issued + timedelta(days=due_in_days)).isoformat(),
        currency=currency,
        lines=list(lines) or [line()],
        invoice_number=invoice_number,
        kid=kid,
    )


# --- errors ----------------------------------------------------------------------------------------


def _status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status an error carries (checked against its code and message)."""
    # An AioRpcError has what from_call reads (code, details, trailing metadata), though not its type.
    status: status_pb2.Status | None = rpc_status.from_call(cast("grpc.Call", error))
    if status is None:
        raise AssertionError(f"{error.code().name} without google.rpc status details: {error.details()}")
    return status


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest of an INVALID_ARGUMENT error: field -> description."""
    for detail in _status(error).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return {v.field: v.description for v in bad.field_violations}
    raise AssertionError(f"no BadRequest in the error details: {error.details()}")


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The google.rpc.ErrorInfo reason of a FAILED_PRECONDITION error."""
    for detail in _status(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError(f"no ErrorInfo in the error details: {error.details()}")


# --- waiting and checking --------------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    what: str = "the condition",
) -> T:
    """Call `probe` until `done(result)`; fail with the last result after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if done(result):
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s; last seen:\n{result}")
        await asyncio.sleep(0.05)


def mod11_valid(kid: str) -> bool:
    """The KID MOD11 rule (weights 2..7 from the right; remainder 10 is '-'), written out independently."""
    body, check = kid[:-1], kid[-1]
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(body)))
    expected = {11: "0", 10: "-"}.get(11 - total % 11, str(11 - total % 11))
    return body.isdigit() and check == expected


def replica_settings(
    kafka_bootstrap: str, mongo_uri: str, topic_prefix: str, **overrides: Any
) -> LedgerSettings:
    """A ledger replica's settings for tests: free ports on loopback, its own database and topics
    (named after the prefix), and the overdue sweep left to the test (app.sweep_overdue)."""
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": kafka_bootstrap,
        "mongo_uri": mongo_uri,
        "mongo_database": f"ledger_{topic_prefix.strip('.')}",
        "topic_prefix": topic_prefix,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "overdue_sweep_seconds": 3600,
        "shutdown_grace": 2.0,
    }
    return LedgerSettings(**{**values, **overrides})
