"""One IssueInvoice is one trace: from the ERP's call through the ledger and MongoDB to the outbox
publish and a Kafka consumer downstream, every step carrying `fordring.invoice_id`."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from faststream.kafka import TopicPartition
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common import attributes as attr
from services.common.bus import create_broker
from services.common.events import INVOICE_TOPIC
from services.common.settings import CommonSettings
from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.ledger import TenantClient, invoice_request

pytestmark = pytest.mark.integration

ISSUE = "/fordring.ledger.v1.LedgerService/IssueInvoice"

# The trace's edges, parent → child, as (name, kind) matchers: the ERP's call, the ledger serving it,
# the batch writing it (with MongoDB below), the relay publishing its event, a consumer receiving it.
EDGES: list[tuple[tuple[str, SpanKind], tuple[str, SpanKind]]] = [
    (("erp.issue_invoice", SpanKind.INTERNAL), (ISSUE, SpanKind.CLIENT)),
    ((ISSUE, SpanKind.CLIENT), (ISSUE, SpanKind.SERVER)),
    ((ISSUE, SpanKind.SERVER), ("ledger.issue_batch", SpanKind.INTERNAL)),
    (("ledger.issue_batch", SpanKind.INTERNAL), (".insert", SpanKind.CLIENT)),
    ((ISSUE, SpanKind.SERVER), ("outbox", SpanKind.INTERNAL)),
    # FastStream: "create" is the message, "publish" the send, "process" the consumer's handling.
    (("outbox", SpanKind.INTERNAL), ("create", SpanKind.PRODUCER)),
    (("create", SpanKind.PRODUCER), ("publish", SpanKind.PRODUCER)),
    (("create", SpanKind.PRODUCER), ("process", SpanKind.CONSUMER)),
]
# Spans that must say which invoice they are about. (The gRPC client span cannot: the id is the
# server's answer. The ERP's own span around the call carries it.)
TAGGED = [
    ("erp.issue_invoice", SpanKind.INTERNAL),
    (ISSUE, SpanKind.SERVER),
    ("outbox", SpanKind.INTERNAL),
    ("create", SpanKind.PRODUCER),
    ("publish", SpanKind.PRODUCER),
    ("process", SpanKind.CONSUMER),
]


def _matches(span: ReadableSpan, matcher: tuple[str, SpanKind]) -> bool:
    name, kind = matcher
    if span.kind != kind:
        return False
    return (
        span.name == name or (name.startswith(".") and span.name.endswith(name)) or name in span.name.split()
    )


async def test_issue_invoice_is_one_trace_to_a_kafka_consumer(
    ledger_app: LedgerApp,
    backend: Backend,
    topics: dict[str, str],
    tenant: TenantClient,
    span_exporter: InMemorySpanExporter,
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    downstream = create_broker(
        CommonSettings(service_name="downstream", kafka_bootstrap=backend.kafka_bootstrap)
    )
    topic = topics[INVOICE_TOPIC]

    @downstream.subscriber(
        partitions=[TopicPartition(topic, p) for p in range(4)], auto_offset_reset="earliest"
    )
    async def on_invoice_event(body: dict[str, Any]) -> None:
        await received.put(body["subject"])

    await downstream.start()
    interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{ledger_app.grpc.port}", interceptors=interceptors
        ) as channel:
            # What an instrumented ERP does: a span of its own around the call, naming the invoice.
            with trace.get_tracer("erp").start_as_current_span("erp.issue_invoice") as erp_span:
                response = await LedgerServiceStub(channel).IssueInvoice(
                    invoice_request(), metadata=tenant.metadata
                )
                erp_span.set_attribute(attr.INVOICE_ID, response.invoice.id)
        invoice_id = response.invoice.id
        while (subject := await asyncio.wait_for(received.get(), timeout=20)) != invoice_id:
            del subject  # another test's event
        await asyncio.sleep(0.2)  # the consumer span ends after the handler returns
    finally:
        await downstream.stop()

    trace_id = erp_span.get_span_context().trace_id
    spans = [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in spans}

    for parent, child in EDGES:
        assert any(
            _matches(s, child)
            and s.parent is not None
            and s.parent.span_id in by_id
            and _matches(by_id[s.parent.span_id], parent)
            for s in spans
        ), f"no {child} under {parent} in the trace: {sorted((s.name, s.kind.name) for s in spans)}"
    for matcher in TAGGED:
        # The same call also upserted the customer: that event's spans name the customer instead.
        tagged = [s for s in spans if _matches(s, matcher) and "customer.v1" not in s.name]
        assert tagged, f"no {matcher} span"
        assert all((s.attributes or {}).get(attr.INVOICE_ID) == invoice_id for s in tagged), matcher
    server = next(s for s in spans if _matches(s, (ISSUE, SpanKind.SERVER)))
    assert (server.attributes or {}).get(attr.TENANT_ID) == tenant.tenant.id
    assert response.invoice.origin_trace_id == format(trace_id, "032x")
