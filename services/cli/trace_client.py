"""Reading an invoice's traces back from a trace backend's query API: Jaeger's (`/api/traces`, also
what Jaeger v2 serves) or Tempo's (`/api/search`, `/api/traces/<id>` in OTLP JSON). Every span about
an invoice carries `fordring.invoice_id`, so the traces that hold one are the invoice's story; the
traces its spans link to (a payment's, a reminder's link back to the invoice's origin) are fetched
too."""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from services.common import attributes as attr

Api = Literal["jaeger", "tempo"]
APIS: tuple[Api, ...] = ("jaeger", "tempo")
# Jaeger's search needs a service: each of Fordring's is asked (a renderer's or a dispatcher's trace
# about an invoice need not pass through the ledger).
SEARCH_SERVICES = ("ledger", "renderer", "dispatcher", "matcher", "dunning", "portal")
SEARCH_DAYS = 400
_KINDS = {
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
    "1": "internal",
    "2": "server",
    "3": "client",
    "4": "producer",
    "5": "consumer",
}


class TraceBackendError(Exception):
    pass


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    name: str
    kind: str
    start_ns: int
    duration_ns: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    # (trace id, span id) of each span this one links to.
    links: tuple[tuple[str, str], ...] = ()


def _hex_id(value: str) -> str:
    """Tempo's OTLP JSON gives ids in base64, Jaeger in hex."""
    text = value.strip().lower()
    if text and all(c in "0123456789abcdef" for c in text) and len(text) in (16, 32):
        return text
    try:
        return base64.b64decode(value).hex()
    except (binascii.Error, ValueError):
        return text


def jaeger_spans(payload: Mapping[str, Any]) -> list[Span]:
    """Spans from a Jaeger query API answer (`{"data": [trace, …]}`)."""
    spans = []
    for trace in payload.get("data") or []:
        processes = trace.get("processes", {})
        for raw in trace.get("spans", []):
            tags = {str(t["key"]): str(t.get("value", "")) for t in raw.get("tags", [])}
            parent = ""
            links = []
            for ref in raw.get("references", []):
                pair = (_hex_id(ref["traceID"]), _hex_id(ref["spanID"]))
                if ref.get("refType") == "CHILD_OF" and not parent and pair[0] == _hex_id(raw["traceID"]):
                    parent = pair[1]
                else:
                    links.append(pair)
            process = processes.get(raw.get("processID", ""), {})
            spans.append(
                Span(
                    trace_id=_hex_id(raw["traceID"]),
                    span_id=_hex_id(raw["spanID"]),
                    parent_id=parent,
                    service=str(process.get("serviceName", "?")),
                    name=str(raw.get("operationName", "")),
                    kind=tags.pop("span.kind", "internal"),
                    start_ns=int(raw.get("startTime", 0)) * 1000,
                    duration_ns=int(raw.get("duration", 0)) * 1000,
                    attributes=tags,
                    links=tuple(links),
                )
            )
    return spans


def _otlp_value(value: Mapping[str, Any]) -> str:
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return str(value[key])
    return json.dumps(value)


def otlp_spans(payload: Mapping[str, Any]) -> list[Span]:
    """Spans from OTLP JSON (`{"resourceSpans": …}`, or Tempo's `{"batches": …}`)."""
    spans = []
    for resource_spans in payload.get("resourceSpans") or payload.get("batches") or []:
        resource = {
            a["key"]: _otlp_value(a["value"])
            for a in resource_spans.get("resource", {}).get("attributes", [])
        }
        service = resource.get("service.name", "?")
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []
        for scope in scopes:
            for raw in scope.get("spans", []):
                start = int(raw.get("startTimeUnixNano", 0))
                spans.append(
                    Span(
                        trace_id=_hex_id(raw["traceId"]),
                        span_id=_hex_id(raw["spanId"]),
                        parent_id=_hex_id(raw.get("parentSpanId", "")),
                        service=service,
                        name=str(raw.get("name", "")),
                        kind=_KINDS.get(str(raw.get("kind", "1")), "internal"),
                        start_ns=start,
                        duration_ns=int(raw.get("endTimeUnixNano", start)) - start,
                        attributes={a["key"]: _otlp_value(a["value"]) for a in raw.get("attributes", [])},
                        links=tuple(
                            (_hex_id(k["traceId"]), _hex_id(k["spanId"])) for k in raw.get("links", [])
                        ),
                    )
                )
    return spans


@dataclass(frozen=True)
class TraceBackend:
    """A query API: `url` is its base (Jaeger's UI address, http://localhost:16686; Tempo's HTTP API)."""

    url: str
    api: Api = "jaeger"
    timeout: float = 10.0

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        address = self.url.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
        if urllib.parse.urlsplit(address).scheme not in ("http", "https"):
            raise TraceBackendError(f"{self.url}: the traces API is an http:// or https:// address")
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as reply:  # noqa: S310 - http(s), checked above
                return json.loads(reply.read())
        except (OSError, ValueError) as exc:
            raise TraceBackendError(f"{address}: {exc}") from None

    def trace_ids(self, invoice_id: str) -> list[str]:
        """The traces holding a span about the invoice."""
        if self.api == "tempo":
            searched = self._get("/api/search", {"tags": f"{attr.INVOICE_ID}={invoice_id}", "limit": "100"})
            return [_hex_id(t["traceID"]) for t in searched.get("traces", [])]
        end = int(time.time() * 1_000_000)
        found: list[str] = []
        for service in SEARCH_SERVICES:
            answer = self._get(
                "/api/traces",
                {
                    "service": service,
                    "tags": json.dumps({attr.INVOICE_ID: invoice_id}),
                    "limit": "100",
                    "start": str(end - SEARCH_DAYS * 86_400_000_000),
                    "end": str(end),
                },
            )
            found += [_hex_id(t["traceID"]) for t in answer.get("data") or []]
        return list(dict.fromkeys(found))

    def trace(self, trace_id: str) -> list[Span]:
        found = self._get(f"/api/traces/{trace_id}")
        return otlp_spans(found) if self.api == "tempo" else jaeger_spans(found)

    def invoice_spans(self, invoice_id: str) -> list[Span]:
        """Every span of the invoice's traces, and of the traces they link to or that link to them."""
        spans: dict[tuple[str, str], Span] = {}
        pending = list(dict.fromkeys(self.trace_ids(invoice_id)))
        fetched: set[str] = set()
        while pending:
            trace_id = pending.pop(0)
            if trace_id in fetched:
                continue
            fetched.add(trace_id)
            for span in self.trace(trace_id):
                spans[(span.trace_id, span.span_id)] = span
                pending.extend(t for t, _ in span.links if t not in fetched)
        return sorted(spans.values(), key=lambda s: (s.start_ns, s.span_id))


def by_trace(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans grouped by trace, the traces in the order they started."""
    grouped: dict[str, list[Span]] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        grouped.setdefault(span.trace_id, []).append(span)
    return grouped


def service_edges(spans: Iterable[Span]) -> set[tuple[str, str]]:
    """(caller's service, callee's service) for every parent → child step that crosses services."""
    every = list(spans)
    by_id = {(s.trace_id, s.span_id): s for s in every}
    edges = set()
    for span in every:
        parent = by_id.get((span.trace_id, span.parent_id))
        if parent is not None and parent.service != span.service:
            edges.add((parent.service, span.service))
    return edges
