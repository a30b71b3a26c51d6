"""Sending an import: counts, retries on UNAVAILABLE (safe: idempotency keys), per-line failures, aborts."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2

from services.cli.client import RetryPolicy
from services.cli.demo_data import generate_invoices
from services.cli.importer import send_invoices
from services.cli.invoice_format import ParsedLine, parse_line, parse_record

FAST = RetryPolicy(give_up_after=2.0, first_delay=0.001, max_delay=0.01, call_timeout=1.0)
METADATA = (("authorization", "Bearer test-key"),)


def error(code: grpc.StatusCode, message: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), message, "")


class FakeLedger:
    """IssueInvoice with idempotency; can fail the first calls, or reject some keys."""

    def __init__(self, *, unavailable_first: int = 0, reject: frozenset[str] = frozenset()) -> None:
        self.issued: dict[str, ledger_pb2.IssueInvoiceRequest] = {}
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.unavailable_first = unavailable_first
        self.reject = reject
        self.metadata: list[Any] = []

    async def IssueInvoice(  # noqa: N802 - the gRPC method's name
        self, request: ledger_pb2.IssueInvoiceRequest, *, metadata: Any, timeout: float
    ) -> ledger_pb2.IssueInvoiceResponse:
        self.calls += 1
        call = self.calls
        self.metadata.append(metadata)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            if call <= self.unavailable_first:
                raise error(grpc.StatusCode.UNAVAILABLE, "connection refused")
            if request.idempotency_key in self.reject:
                raise error(grpc.StatusCode.INVALID_ARGUMENT, "invalid invoice")
            if request.validate_only:
                return ledger_pb2.IssueInvoiceResponse()
            created = request.idempotency_key not in self.issued
            self.issued.setdefault(request.idempotency_key, request)
            invoice = ledger_pb2.Invoice(external_id=request.idempotency_key)
            return ledger_pb2.IssueInvoiceResponse(invoice=invoice, created=created)
        finally:
            self.in_flight -= 1


def batch(count: int) -> list[ParsedLine]:
    invoices = generate_invoices(count, seed=11, today=date(2026, 11, 23))
    return [parse_record(invoice, number) for number, invoice in enumerate(invoices, start=1)]


async def test_counts_created_then_already_there_on_reimport() -> None:
    ledger = FakeLedger()
    parsed = batch(40)
    first = await send_invoices(ledger, parsed, METADATA, concurrency=8, retries=FAST)  # type: ignore[arg-type]
    again = await send_invoices(ledger, parsed, METADATA, concurrency=8, retries=FAST)  # type: ignore[arg-type]
    assert (first.created, first.already_there, first.failures, first.ok) == (40, 0, [], True)
    assert (again.created, again.already_there, again.ok) == (0, 40, True)
    assert len(ledger.issued) == 40
    assert all(metadata == METADATA for metadata in ledger.metadata)


async def test_concurrency_is_bounded() -> None:
    ledger = FakeLedger()
    await send_invoices(ledger, batch(60), METADATA, concurrency=4, retries=FAST)  # type: ignore[arg-type]
    assert 1 < ledger.max_in_flight <= 4


async def test_retries_while_the_ledger_is_unavailable() -> None:
    ledger = FakeLedger(unavailable_first=25)
    report = await send_invoices(ledger, batch(30), METADATA, concurrency=8, retries=FAST)  # type: ignore[arg-type]
    assert report.ok
    assert report.created == 30
    assert ledger.calls == 55


async def test_bad_lines_and_rejected_invoices_fail_alone() -> None:
    parsed = batch(10)
    rejected = parsed[3].external_id
    parsed.insert(5, parse_line("{not json", 99))
    ledger = FakeLedger(reject=frozenset({rejected}))
    done: list[int] = []
    report = await send_invoices(
        ledger,  # type: ignore[arg-type]
        parsed,
        METADATA,
        concurrency=3,
        retries=FAST,
        on_done=lambda: done.append(1),
    )
    assert report.created == 9
    assert [(failure.line_no, failure.reason.split(":")[0]) for failure in report.failures] == [
        (4, "INVALID_ARGUMENT"),
        (99, "bad line"),
    ]
    assert not report.ok
    assert len(done) == 11


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE])
async def test_stops_sending_when_every_line_would_fail(code: grpc.StatusCode) -> None:
    class Refusing(FakeLedger):
        async def IssueInvoice(  # noqa: N802
            self, request: ledger_pb2.IssueInvoiceRequest, *, metadata: Any, timeout: float
        ) -> ledger_pb2.IssueInvoiceResponse:
            self.calls += 1
            raise error(code, "no")

    ledger = Refusing()
    report = await send_invoices(ledger, batch(50), METADATA, concurrency=2, retries=FAST)  # type: ignore[arg-type]
    assert report.aborted.startswith(code.name)
    assert report.created == 0
    assert report.not_sent == 50
    assert not report.ok
    if code is grpc.StatusCode.UNAUTHENTICATED:
        assert ledger.calls <= 2
