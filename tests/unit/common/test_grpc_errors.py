"""An unexpected error reaches the caller as INTERNAL with an error id, and neither the caller, the
log nor the trace learns the data the error carried (a driver error quotes whole documents)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import ledger_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo.errors import BulkWriteError

from services.common.grpc_server import GrpcServer
from services.common.logs import JsonFormatter
from services.common.tenancy import Tenant

SECRET = "Kari Nordmann <kari.nordmann@example.no>"


class _Resolver:
    async def resolve(self, api_key: str) -> Tenant | None:
        return Tenant(id="t1", name="Test AS") if api_key == "key" else None

    async def by_id(self, tenant_id: str) -> Tenant | None:
        return Tenant(id="t1", name="Test AS") if tenant_id == "t1" else None


class _Failing(ledger_pb2_grpc.LedgerServiceServicer):
    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: Any) -> pb.GetInvoiceResponse:  # noqa: N802
        raise BulkWriteError(
            {
                "writeErrors": [
                    {
                        "index": 0,
                        "code": 11000,
                        "errmsg": f"E11000 duplicate key error collection: ledger.invoices index: "
                        f"tenant_id_1_invoice_number_1 dup key: {{ customer_name: {SECRET!r} }}",
                        "op": {"customer_name": SECRET, "email": "kari.nordmann@example.no"},
                    }
                ],
                "nInserted": 0,
            }
        )


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    grpc_server = GrpcServer("127.0.0.1", 0, _Resolver())
    grpc_server.add(
        lambda s: ledger_pb2_grpc.add_LedgerServiceServicer_to_server(_Failing(), s),  # type: ignore[abstract]
        "fordring.ledger.v1.LedgerService",
    )
    await grpc_server.start()
    try:
        yield grpc_server
    finally:
        await grpc_server.stop(0)


async def test_an_unexpected_error_is_internal_with_an_id_and_leaks_nothing(
    server: GrpcServer, caplog: pytest.LogCaptureFixture, span_exporter: InMemorySpanExporter
) -> None:
    span_exporter.clear()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.GetInvoice(
                pb.GetInvoiceRequest(invoice_id="x"), metadata=(("authorization", "Bearer key"),)
            )

    error = failed.value
    assert error.code() == grpc.StatusCode.INTERNAL
    status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    error_id = info.metadata["error_id"]
    assert error_id in (error.details() or "")
    for secret in ("Kari", "invoices"):
        assert secret not in (error.details() or "")

    records = [r for r in caplog.records if getattr(r, "error_id", "") == error_id]
    assert records, "the error is logged with its id"
    logged = JsonFormatter("test").format(records[0])
    assert "BulkWriteError" in logged
    assert "11000" in logged  # what kind of failure it was stays visible
    for secret in ("Kari", "example.no", "tenant_id_1"):
        assert secret not in logged

    spans = span_exporter.get_finished_spans()
    assert spans
    exported = repr(
        [(s.name, s.attributes, [(e.name, e.attributes) for e in s.events], s.status) for s in spans]
    )
    for span in exported.split("), ("):
        assert "Kari" not in span, span
    assert error_id in exported
