"""OpenTelemetry for a service: traces and metrics, OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

One TracerProvider and one MeterProvider per process (the OpenTelemetry API keeps them global).
Metrics are always readable as Prometheus text on the service's /metrics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanContext

from services.common.errors import safe_error_text

_configured: Telemetry | None = None


@dataclass(frozen=True)
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def setup_telemetry(service_name: str, *, span_exporter: SpanExporter | None = None) -> Telemetry:
    """Install the process's tracer and meter providers (once; later calls return the first).

    `span_exporter` lets tests collect spans in memory; otherwise spans go to OTLP when
    OTEL_EXPORTER_OTLP_ENDPOINT is set and nowhere when it is not.
    """
    global _configured  # noqa: PLW0603 - OpenTelemetry's providers are process-wide
    if _configured is not None:
        return _configured
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    tracer_provider = TracerProvider(resource=resource)
    otlp = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if span_exporter is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    elif otlp:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if otlp:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, views=[_SECONDS_VIEW])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _instrument_pymongo()
    _configured = Telemetry(tracer_provider, meter_provider)
    return _configured


# Durations in seconds (renders, provider calls, an invoice's issue to its delivery): OpenTelemetry's
# default buckets are made for milliseconds and would put every call under 5 s in one bucket; the
# long ones are for deliveries that wait (retries, a fallback after hours, print).
SECONDS_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0, 14400.0, 86400.0, 259200.0,
)  # fmt: skip
_SECONDS_VIEW = View(
    instrument_type=Histogram,
    instrument_name="*_seconds",
    aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS),
)


def _instrument_pymongo() -> None:
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    instrumentor = PymongoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def record_error(span: trace.Span, exc: BaseException) -> None:
    """Mark a span failed, describing the exception without the data it may quote."""
    text = safe_error_text(exc)
    span.set_status(trace.Status(trace.StatusCode.ERROR, text))
    span.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": text})


@contextmanager
def traced(name: str, **kwargs: Any) -> Iterator[trace.Span]:
    """`start_as_current_span` for our own steps: a failure is recorded by `record_error`, so a
    span never carries the customer data a driver error may quote."""
    tracer = trace.get_tracer("fordring")
    with tracer.start_as_current_span(
        name, record_exception=False, set_status_on_exception=False, **kwargs
    ) as span:
        try:
            yield span
        except BaseException as exc:
            record_error(span, exc)
            raise


@contextmanager
def continued(
    name: str, traceparent: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[trace.Span]:
    """A span that continues a stored trace (the child of `traceparent`: an invoice's life stays one
    trace through batches and queues), linked to the span current here (the batch, the timer run).
    Without a traceparent it is a plain child of the current span."""
    here = trace.get_current_span().get_span_context()
    with traced(
        name,
        context=context_from_traceparent(traceparent) if traceparent else None,
        links=[Link(here)] if traceparent and here.is_valid else None,
        attributes=dict(attributes or {}),
    ) as span:
        yield span


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" outside a span), for storing with a change."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def context_from_traceparent(traceparent: str) -> Context:
    return extract({"traceparent": traceparent} if traceparent else {})


def link_to(traceparent: str) -> list[Link]:
    """A span link to a stored origin (ARCHITECTURE §6: later steps link to the invoice's origin)."""
    span_ctx = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    return [Link(span_ctx)] if isinstance(span_ctx, SpanContext) and span_ctx.is_valid else []


def headers_with_trace(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    carrier = dict(headers or {})
    inject(carrier)
    return carrier
