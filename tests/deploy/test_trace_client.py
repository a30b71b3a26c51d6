"""`fordring invoices trace`'s reading of the two query APIs it speaks, offline: Jaeger's JSON and
Tempo's OTLP JSON give the same spans, parents and links, and the tree shows them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from services.cli.trace_client import (
    Span,
    TraceBackend,
    TraceBackendError,
    jaeger_spans,
    otlp_spans,
    service_edges,
)
from services.cli.traces import tree_lines

ORIGIN = "0af7651916cd43dd8448eb211c80319c"
LATER = "4bf92f3577b34da6a3ce929d0e0e4736"
INVOICE = "01JINVOICE"


def jaeger_payload() -> dict[str, object]:
    def span(trace: str, span_id: str, name: str, process: str, parent: str = "", link: str = "") -> object:
        references = [{"refType": "CHILD_OF", "traceID": trace, "spanID": parent}] if parent else []
        if link:
            references.append({"refType": "FOLLOWS_FROM", "traceID": ORIGIN, "spanID": link})
        return {
            "traceID": trace,
            "spanID": span_id,
            "operationName": name,
            "references": references,
            "startTime": 1_700_000_000_000_000,
            "duration": 1500,
            "tags": [
                {"key": "span.kind", "value": "server"},
                {"key": "fordring.invoice_id", "value": INVOICE},
            ],
            "processID": process,
        }

    return {
        "data": [
            {
                "traceID": ORIGIN,
                "processes": {"p1": {"serviceName": "ledger"}, "p2": {"serviceName": "renderer"}},
                "spans": [
                    span(ORIGIN, "00f067aa0ba902b7", "IssueInvoice", "p1"),
                    span(ORIGIN, "00f067aa0ba902b8", "process", "p2", parent="00f067aa0ba902b7"),
                ],
            },
            {
                "traceID": LATER,
                "processes": {"p1": {"serviceName": "matcher"}},
                "spans": [span(LATER, "10f067aa0ba902b7", "ImportPayments", "p1", link="00f067aa0ba902b7")],
            },
        ]
    }


def b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def test_jaeger_answers_become_spans_with_parents_and_links() -> None:
    spans = jaeger_spans(jaeger_payload())
    assert [(s.service, s.name, s.kind) for s in spans] == [
        ("ledger", "IssueInvoice", "server"),
        ("renderer", "process", "server"),
        ("matcher", "ImportPayments", "server"),
    ]
    assert spans[1].parent_id == spans[0].span_id
    assert spans[2].links == ((ORIGIN, "00f067aa0ba902b7"),)
    assert spans[0].duration_ns == 1_500_000
    assert service_edges(spans) == {("ledger", "renderer")}


def test_tempo_answers_in_otlp_json_with_base64_ids() -> None:
    payload = {
        "batches": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "dispatcher"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": b64(LATER),
                                "spanId": b64("10f067aa0ba902b7"),
                                "parentSpanId": "",
                                "name": "send",
                                "kind": "SPAN_KIND_CONSUMER",
                                "startTimeUnixNano": "1000",
                                "endTimeUnixNano": "3000",
                                "attributes": [
                                    {"key": "fordring.invoice_id", "value": {"stringValue": INVOICE}}
                                ],
                                "links": [{"traceId": b64(ORIGIN), "spanId": b64("00f067aa0ba902b7")}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    (span,) = otlp_spans(payload)
    assert span == Span(
        trace_id=LATER,
        span_id="10f067aa0ba902b7",
        parent_id="",
        service="dispatcher",
        name="send",
        kind="consumer",
        start_ns=1000,
        duration_ns=2000,
        attributes={"fordring.invoice_id": INVOICE},
        links=((ORIGIN, "00f067aa0ba902b7"),),
    )


def test_the_tree_shows_each_trace_its_children_and_its_links() -> None:
    lines = tree_lines(jaeger_spans(jaeger_payload()), INVOICE)
    assert lines[0] == f"trace {ORIGIN} (ledger, renderer)"
    assert lines[1].startswith("  ● ledger: IssueInvoice [server] 1.5 ms")
    assert lines[2].startswith("    ● renderer: process [server]")
    assert lines[3] == f"trace {LATER} (matcher)"
    assert lines[5] == f"      ↪ linked to trace {ORIGIN[:12]}… ledger: IssueInvoice"


def test_only_an_http_address_is_asked(tmp_path: Path) -> None:
    """A `file:` or other scheme in --traces-api is refused before anything is read."""
    secret = tmp_path / "api" / "traces"
    secret.parent.mkdir()
    secret.write_text('{"data": []}')
    with pytest.raises(TraceBackendError, match="http:// or https://"):
        TraceBackend(f"file://{tmp_path}").trace_ids("invoice-1")
