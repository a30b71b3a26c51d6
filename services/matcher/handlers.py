"""What the matcher consumes: the ledger's invoice events (the open items, and the ledger's answers
to its proposals) and customer events (payer accounts and names)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.common.bus import subscribe_batch
from services.common.events import CUSTOMER_TOPIC, INVOICE_TOPIC
from services.common.settings import CommonSettings
from services.matcher.book import Projection

ITEMS_CONSUMER = "matcher-items"
CUSTOMERS_CONSUMER = "matcher-customers"


def register(broker: KafkaBroker, settings: CommonSettings, projection: Projection, group_id: str) -> None:
    subscribe_batch(
        broker,
        settings,
        INVOICE_TOPIC,
        group_id=group_id,
        consumer=ITEMS_CONSUMER,
        handler=projection.on_invoice_batch,
        single=projection.on_invoice_event,
        max_records=500,
    )
    subscribe_batch(
        broker,
        settings,
        CUSTOMER_TOPIC,
        group_id=group_id,
        consumer=CUSTOMERS_CONSUMER,
        handler=projection.on_customer_batch,
        single=projection.on_customer_event,
        max_records=200,
    )
