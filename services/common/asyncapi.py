"""Publish the event contracts as an AsyncAPI document, generated from the models in events.py.

python -m services.common.asyncapi docs/asyncapi      (make asyncapi)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import Field, RootModel

from services.common import events as ev

# Which events travel on which topic, and who owns the topic.
TOPICS: dict[str, tuple[str, tuple[type[Any], ...]]] = {
    ev.INVOICE_TOPIC: (
        "ledger: every change to an invoice, keyed by invoice id",
        (
            ev.InvoiceIssued,
            ev.CreditNoteIssued,
            ev.PaymentApplied,
            ev.InvoiceOverdue,
            ev.ChargeAdded,
            ev.InvoiceWrittenOff,
            ev.InvoiceNoteAdded,
            ev.DueDateChanged,
            ev.ProposalRejected,
        ),
    ),
    ev.CUSTOMER_TOPIC: (
        "ledger: customer master data and credit balances, keyed by customer id",
        (ev.CustomerUpserted, ev.CustomerCreditChanged),
    ),
    ev.TENANT_TOPIC: (
        "ledger: a tenant's creditor profile changed (a new version), keyed by tenant id",
        (ev.TenantProfileChanged,),
    ),
    ev.PAYMENT_TOPIC: (
        "matcher: proposals that a payment pays invoices (the ledger decides)",
        (ev.PaymentMatched,),
    ),
    ev.DUNNING_TOPIC: (
        "dunning: proposed nudges, reminders, notices, fees and interest (the ledger decides); claims "
        "handed to collection (after the ledger applied the hand-off); pauses and resumptions",
        (ev.DunningActionTaken, ev.CollectionHandoff, ev.DunningPaused, ev.DunningResumed),
    ),
    ev.DOCUMENT_TOPIC: (
        "renderer: a document (PDF, HTML, EHF, e-mail, SMS) is in the invoice hotel",
        (ev.DocumentRendered,),
    ),
    ev.DELIVERY_TOPIC: (
        "dispatcher: each delivery's life (attempted, delivered, opened, failed), fallbacks scheduled "
        "and contacts flagged for cleaning, keyed by invoice id",
        (
            ev.DeliveryAttempted,
            ev.Delivered,
            ev.Opened,
            ev.DeliveryFailed,
            ev.FallbackScheduled,
            ev.ContactFlagged,
        ),
    ),
}


def specification() -> AsyncAPI:
    broker = KafkaBroker(
        "kafka:9092",
        description="Fordring's event bus. Value: the JSON envelope "
        "{id, type, version, tenant_id, subject, occurred_at, data}; key: subject; "
        "header traceparent: W3C trace context.",
    )
    for topic, (description, types) in TOPICS.items():
        union: Any = types[0] if len(types) == 1 else Annotated[_union(types), Field(discriminator="type")]
        model: Any = RootModel[union]
        model.__name__ = "".join(part.title() for part in topic.split(".")[1:3]) + "Event"
        broker.publisher(topic, title=topic, description=description, schema=model)
    return AsyncAPI(
        broker,
        title="Fordring events",
        version="1.0.0",
        description="The events Fordring's services exchange over Kafka.",
    )


def _union(types: tuple[type[Any], ...]) -> Any:
    result: Any = types[0]
    for t in types[1:]:
        result = result | t
    return result


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/asyncapi")
    out.mkdir(parents=True, exist_ok=True)
    spec = specification().to_specification()
    (out / "asyncapi.json").write_text(spec.to_json() + "\n")
    print(f"wrote {out / 'asyncapi.json'}")  # noqa: T201


if __name__ == "__main__":
    main()
