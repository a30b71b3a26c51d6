"""The HTTP side port as Kubernetes and Prometheus use it: liveness, readiness, business metrics."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid

import pytest

from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.ledger import TenantClient, eventually, invoice_request, replica_settings
from tests.support.metrics import sample

pytestmark = pytest.mark.integration


async def get(app: LedgerApp, path: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}{path}", timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    return await asyncio.to_thread(fetch)


async def test_health_readiness_and_metrics(ledger_app: LedgerApp, tenant: TenantClient) -> None:
    assert await get(ledger_app, "/healthz") == (200, "ok\n")
    status, readiness = await get(ledger_app, "/readyz")
    assert status == 200
    assert readiness.splitlines() == ["mongodb: ok", "kafka: ok", "outbox: ok", "grpc: ok"]

    _, before = await get(ledger_app, "/metrics")
    issued_before = (
        sample(before, "fordring_invoices_issued_total", currency="NOK") if "issued_total" in before else 0
    )
    invoice = await tenant.issue(invoice_request())
    await tenant.pay(invoice, invoice.gross_total.minor_units)

    async def metrics() -> str:
        return (await get(ledger_app, "/metrics"))[1]

    text = await eventually(metrics, lambda t: "fordring_outbox_unsent" in t and "PaymentApplied" in t)
    assert sample(text, "fordring_invoices_issued_total", currency="NOK") == issued_before + 1
    assert sample(text, "fordring_payments_applied_total", method="manual") >= 1
    assert sample(text, "fordring_events_published_total", type="InvoiceIssued") >= 1
    assert sample(text, "fordring_outbox_unsent") >= 0
    assert sample(text, "fordring_outbox_oldest_unsent_seconds") >= 0


async def test_a_replica_is_not_ready_before_its_api_serves_nor_while_it_stops(backend: Backend) -> None:
    """A load balancer (or `fordring up`) must not send calls to a replica still preparing its
    database, nor to one finishing its last calls."""
    app = LedgerApp(replica_settings(backend.kafka_bootstrap, backend.mongo_uri, f"r{uuid.uuid4().hex[:8]}."))
    await app.runtime.http.start()
    try:
        status, text = await get(app, "/readyz")
        assert status == 503
        assert "grpc: RuntimeError: not serving (starting or stopping)" in text.splitlines()
        await app.runtime.serve(app.grpc)
        status, text = await get(app, "/readyz?exclude=kafka&exclude=outbox")
        assert (status, text) == (200, "mongodb: ok\ngrpc: ok\n")
        await app.runtime.stop_serving(app.grpc)
        assert (await get(app, "/readyz?exclude=kafka&exclude=outbox"))[0] == 503
    finally:
        await app.runtime.http.stop()
        await app.runtime.mongo.close()
