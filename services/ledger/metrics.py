"""The ledger's business metrics (Prometheus on /metrics, OTLP when configured). Counted after the
transaction commits, so a retried transaction counts once."""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

_meter = metrics.get_meter("fordring.ledger")

INVOICES_ISSUED: Final = _meter.create_counter(
    "fordring_invoices_issued", description="Invoices issued (retries of the same request not counted)"
)
CREDIT_NOTES_ISSUED: Final = _meter.create_counter(
    "fordring_credit_notes_issued", description="Credit notes issued"
)
PAYMENTS_APPLIED: Final = _meter.create_counter(
    "fordring_payments_applied", description="Payments applied, by method (manual, kid, …)"
)
INVOICES_WRITTEN_OFF: Final = _meter.create_counter(
    "fordring_invoices_written_off", description="Invoices written off"
)
INVOICES_OVERDUE: Final = _meter.create_counter(
    "fordring_invoices_overdue", description="Invoices that passed their due date unpaid"
)
PROPOSALS: Final = _meter.create_counter(
    "fordring_proposals",
    description="Proposals from the matcher and the dunning service, by type and outcome "
    "(applied, rejected with its reason, or duplicate)",
)
