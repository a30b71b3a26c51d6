"""What the dispatcher consumes: the renderer's documents (to deliver them) and the ledger's invoice
events (the projection that says whether an invoice is paid or credited)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.common.bus import subscribe_batch
from services.common.events import DOCUMENT_TOPIC, INVOICE_TOPIC
from services.common.settings import CommonSettings
from services.dispatcher.planning import CONSUMER, Planner
from services.dispatcher.tracking import INVOICES_CONSUMER, Tracker


def register(
    broker: KafkaBroker, settings: CommonSettings, planner: Planner, tracker: Tracker, group_id: str
) -> None:
    subscribe_batch(
        broker,
        settings,
        DOCUMENT_TOPIC,
        group_id=group_id,
        consumer=CONSUMER,
        handler=planner.on_batch,
        single=planner.on_event,
        max_records=200,
    )
    subscribe_batch(
        broker,
        settings,
        INVOICE_TOPIC,
        group_id=group_id,
        consumer=INVOICES_CONSUMER,
        handler=tracker.on_invoice_batch,
        single=tracker.on_invoice_event,
        max_records=200,
    )
