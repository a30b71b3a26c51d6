"""One invoice's life in traces, as an operator sees it in Jaeger: the whole stack (`fordring up`)
exports OTLP to a receiver built in the test (tests/deploy/otlp_receiver.py); an instrumented ERP
issues an invoice; the spans must form the expected service edges — ERP → ledger → (Kafka) renderer
→ (Kafka) dispatcher — in one trace, later steps must link back to the invoice's origin, and
`fordring invoices trace NUMBER` must print that story from the receiver's Jaeger query API."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from services.cli.trace_client import Span, service_edges
from services.common import attributes as attr
from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.deploy.otlp_receiver import OtlpReceiver
from tests.support.cli_stack import Stack
from tests.support.dispatcher import consumer
from tests.support.ledger import invoice_request
from tests.support.stack_ports import stack_flags

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# The service edges of an invoice's first trace: the ERP's call, then Kafka twice.
EDGES = {("erp", "ledger"), ("ledger", "renderer"), ("renderer", "dispatcher")}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Stack]:
    """`fordring up --detach` with every service exporting its spans to the receiver at once."""
    home = tmp_path_factory.mktemp("traced-home")
    env = {
        **os.environ,
        "FORDRING_HOME": str(home),
        "COLUMNS": "200",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.otlp_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        "FORDRING_TRACES_URL": receiver.query_url,
    }
    for name in ("FORDRING_TARGET", "FORDRING_API_KEY", "FORDRING_TRACES_API"):
        env.pop(name, None)
    running = Stack(home, env)
    started = running.fordring("up", "--detach", *stack_flags(), timeout=400)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield running
    finally:
        stopped = running.fordring("down", timeout=200)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@pytest.fixture(scope="module")
async def issued(stack: Stack, receiver: OtlpReceiver) -> pb.Invoice:
    """One invoice, issued by an ERP that traces its own call (service `erp`), delivered by e-mail."""
    record = stack.record()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "erp"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.otlp_url, insecure=True))
    )
    interceptors = aio_client_interceptors(tracer_provider=provider)  # type: ignore[no-untyped-call]
    try:
        async with grpc.aio.insecure_channel(record["grpc"]["ledger"], interceptors=interceptors) as channel:
            with provider.get_tracer("erp").start_as_current_span("erp.issue_invoice") as span:
                reply = await LedgerServiceStub(channel).IssueInvoice(
                    invoice_request(customer=consumer("C-TRACE", consents=pb.Consents(email=True))),
                    metadata=(("authorization", f"Bearer {record['api_key']}"),),
                )
                span.set_attribute(attr.INVOICE_ID, reply.invoice.id)
    finally:
        provider.shutdown()
    return reply.invoice


def first_trace(spans: list[Span], invoice_id: str) -> list[Span]:
    (erp,) = [s for s in spans if s.service == "erp" and s.attributes.get(attr.INVOICE_ID) == invoice_id]
    return [s for s in spans if s.trace_id == erp.trace_id]


def about(spans: list[Span], invoice_id: str) -> list[Span]:
    return [s for s in spans if s.attributes.get(attr.INVOICE_ID) == invoice_id]


def test_every_service_on_the_invoices_road_tells_of_it(receiver: OtlpReceiver, issued: pb.Invoice) -> None:
    """The ERP's call reaches the ledger in the ERP's trace, and the renderer's and the dispatcher's
    spans about the invoice carry its id: one query (`fordring.invoice_id`) finds them all."""
    spans = receiver.wait_for(
        "spans of every service about the invoice",
        lambda spans: (
            {"erp", "ledger", "renderer", "dispatcher"} <= {s.service for s in about(spans, issued.id)}
        ),
        timeout=120,
    )
    assert ("erp", "ledger") in service_edges(first_trace(spans, issued.id))


def test_issue_render_deliver_is_one_trace(receiver: OtlpReceiver, issued: pb.Invoice) -> None:
    receiver.wait_for(
        "spans of every service about the invoice",
        lambda spans: {"renderer", "dispatcher"} <= {s.service for s in about(spans, issued.id)},
        timeout=120,
    )
    assert service_edges(first_trace(receiver.spans(), issued.id)) >= EDGES


def test_the_cli_prints_the_invoices_traces(stack: Stack, receiver: OtlpReceiver, issued: pb.Invoice) -> None:
    receiver.wait_for(
        "the dispatcher's spans about the invoice",
        lambda spans: "dispatcher" in {s.service for s in about(spans, issued.id)},
        timeout=120,
    )
    shown = stack.fordring("invoices", "trace", issued.invoice_number)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"Invoice {issued.invoice_number}" in shown.stdout
    for service in ("erp", "ledger", "renderer", "dispatcher"):
        assert f" {service}: " in shown.stdout, shown.stdout
    listed = stack.fordring("invoices", "trace", issued.invoice_number, "--json")
    assert listed.returncode == 0, listed.stderr
    spans = [
        Span(
            trace_id=s["trace_id"],
            span_id=s["span_id"],
            parent_id=s["parent_id"],
            service=s["service"],
            name=s["name"],
            kind=s["kind"],
            start_ns=s["start_ns"],
            duration_ns=s["duration_ns"],
            attributes=s["attributes"],
            links=tuple((link["trace_id"], link["span_id"]) for link in s["links"]),
        )
        for s in json.loads(listed.stdout)
    ]
    assert ("erp", "ledger") in service_edges(spans)
    assert {"erp", "ledger", "renderer", "dispatcher"} <= {s.service for s in about(spans, issued.id)}


def linked_to(origin: str, service: str) -> Callable[[list[Span]], bool]:
    """A span of `service`, in a trace of its own, with a link into the trace `origin`."""

    def check(spans: list[Span]) -> bool:
        return any(
            s.service == service and s.trace_id != origin and any(t == origin for t, _ in s.links)
            for s in spans
        )

    return check


@pytest.fixture(scope="module")
def overdue(stack: Stack, receiver: OtlpReceiver, issued: pb.Invoice) -> str:
    """The stack's clock 45 days on: the invoice is overdue, and dunning steps are due. The origin's
    trace id."""
    origin = first_trace(receiver.spans(), issued.id)[0].trace_id
    moved = stack.fordring("sandbox", "clock", "advance", "--days", "45")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    return origin


def test_the_overdue_step_links_back_to_the_invoices_origin(receiver: OtlpReceiver, overdue: str) -> None:
    """Past its due date the invoice turns overdue: a step of its own (no caller's trace to join), with
    a span link to the trace the invoice was issued in."""
    receiver.wait_for(
        "the ledger's overdue step linked to the origin", linked_to(overdue, "ledger"), timeout=120
    )


def test_a_reminder_links_back_to_the_invoices_origin(receiver: OtlpReceiver, overdue: str) -> None:
    receiver.wait_for("the dunning step linked to the origin", linked_to(overdue, "dunning"), timeout=120)


def test_a_payment_links_back_to_the_invoices_origin(
    stack: Stack, receiver: OtlpReceiver, issued: pb.Invoice, overdue: str, tmp_path: Path
) -> None:
    """The bank file that pays it: the matcher's import is a trace of its own (the file's), and the
    payment it matches links back to the invoice's origin."""
    bank_file = tmp_path / "OCR.txt"
    bank_file.write_bytes(ocr_giro_file([FilePayment(issued.gross_total.minor_units, reference=issued.kid)]))
    paid = stack.fordring("payments", "import", str(bank_file))
    assert paid.returncode == 0, paid.stdout + paid.stderr
    receiver.wait_for("the matched payment linked to the origin", linked_to(overdue, "matcher"), timeout=120)
