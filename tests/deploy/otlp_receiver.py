"""An OTLP trace receiver for tests, built from opentelemetry-proto: the services export their spans
to it over gRPC (OTEL_EXPORTER_OTLP_ENDPOINT), and it answers Jaeger's query API over HTTP
(`/api/traces?service=…&tags=…`, `/api/traces/<id>`) so `fordring invoices trace` reads from it as it
would from Jaeger. Threads of its own: it keeps serving while a test blocks on a subprocess."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from services.cli.trace_client import Span

_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    return "" if which is None else str(getattr(value, which))


def _span(resource: dict[str, str], raw: Any) -> Span:
    return Span(
        trace_id=raw.trace_id.hex(),
        span_id=raw.span_id.hex(),
        parent_id=raw.parent_span_id.hex(),
        service=resource.get("service.name", "?"),
        name=raw.name,
        kind=_KINDS.get(raw.kind, "internal"),
        start_ns=raw.start_time_unix_nano,
        duration_ns=raw.end_time_unix_nano - raw.start_time_unix_nano,
        attributes={a.key: _value(a.value) for a in raw.attributes},
        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in raw.links),
    )


class OtlpReceiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._grpc)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self._grpc)  # type: ignore[no-untyped-call]
        self.otlp_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _query_handler(self))
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def otlp_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> None:
        self._grpc.start()
        self._http_thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._grpc.stop(grace=None)

    # OTLP (gRPC)
    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - OTLP's name
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            return metrics_service_pb2.ExportMetricsServiceResponse()
        received = [
            _span({a.key: _value(a.value) for a in resource_spans.resource.attributes}, raw)
            for resource_spans in request.resource_spans
            for scope in resource_spans.scope_spans
            for raw in scope.spans
        ]
        with self._lock:
            self._spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    # What was received
    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, what: str, found: Callable[[list[Span]], bool], timeout: float = 60) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if found(spans):
                return spans
            if time.monotonic() > deadline:
                services = sorted({s.service for s in spans})
                raise AssertionError(f"no {what} after {timeout} s ({len(spans)} spans from {services})")
            time.sleep(0.2)

    # Jaeger's query API
    def jaeger_trace(self, trace_id: str) -> dict[str, Any]:
        spans = [s for s in self.spans() if s.trace_id == trace_id]
        processes = {service: f"p{i}" for i, service in enumerate(sorted({s.service for s in spans}))}
        return {
            "traceID": trace_id,
            "processes": {pid: {"serviceName": service, "tags": []} for service, pid in processes.items()},
            "spans": [
                {
                    "traceID": s.trace_id,
                    "spanID": s.span_id,
                    "operationName": s.name,
                    "references": [
                        *(
                            [{"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_id}]
                            if s.parent_id
                            else []
                        ),
                        *({"refType": "FOLLOWS_FROM", "traceID": t, "spanID": i} for t, i in s.links),
                    ],
                    "startTime": s.start_ns // 1000,
                    "duration": s.duration_ns // 1000,
                    "tags": [
                        {"key": "span.kind", "type": "string", "value": s.kind},
                        *({"key": k, "type": "string", "value": v} for k, v in s.attributes.items()),
                    ],
                    "processID": processes[s.service],
                }
                for s in spans
            ],
        }

    def jaeger_search(self, service: str, tags: dict[str, str]) -> list[str]:
        spans = self.spans()
        found = {
            s.trace_id
            for s in spans
            if s.service == service and all(s.attributes.get(k) == v for k, v in tags.items())
        }
        return sorted(found)


def _query_handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/api/traces":
                ids = receiver.jaeger_search(query.get("service", ""), json.loads(query.get("tags", "{}")))
                body: dict[str, Any] = {"data": [receiver.jaeger_trace(t) for t in ids]}
            elif url.path.startswith("/api/traces/"):
                body = {"data": [receiver.jaeger_trace(url.path.rsplit("/", 1)[1])]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
