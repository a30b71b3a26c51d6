"""The HTTP side port as Kubernetes and Prometheus use it: liveness, readiness, business metrics."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from services.ledger.app import LedgerApp
from tests.support.ledger import TenantClient, eventually, invoice_request
from tests.support.metrics import sample

pytestmark = pytest.mark.integration


async def get(app: LedgerApp, path: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()

    return await asyncio.to_thread(fetch)


async def test_health_readiness_and_metrics(ledger_app: LedgerApp, tenant: TenantClient) -> None:
    assert await get(ledger_app, "/healthz") == (200, "ok\n")
    status, readiness = await get(ledger_app, "/readyz")
    assert status == 200
    assert readiness.splitlines() == ["mongodb: ok", "kafka: ok", "outbox: ok"]

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
