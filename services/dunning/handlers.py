"""What the dunning service consumes: the ledger's invoice events (each invoice's state, the payments
and credit notes that reduced it, the steps it applied or refused) and the matcher's payment events
(payments not applied yet hold the invoices they may pay) and the dispatcher's deliveries (an
AvtaleGiro claim or eFaktura in flight holds its invoice until the draw's outcome is in)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.common.bus import subscribe_batch
from services.common.events import DELIVERY_TOPIC, INVOICE_TOPIC, PAYMENT_TOPIC
from services.common.settings import CommonSettings
from services.dunning.projection import Projection

INVOICES_CONSUMER = "dunning-invoices"
PAYMENTS_CONSUMER = "dunning-payments"
DELIVERIES_CONSUMER = "dunning-deliveries"


def register(broker: KafkaBroker, settings: CommonSettings, projection: Projection, group_id: str) -> None:
    subscribe_batch(
        broker,
        settings,
        INVOICE_TOPIC,
        group_id=group_id,
        consumer=INVOICES_CONSUMER,
        handler=projection.on_invoice_batch,
        single=projection.on_invoice_event,
        max_records=500,
    )
    subscribe_batch(
        broker,
        settings,
        PAYMENT_TOPIC,
        group_id=group_id,
        consumer=PAYMENTS_CONSUMER,
        handler=projection.on_payment_batch,
        single=projection.on_payment_event,
        max_records=200,
    )
    subscribe_batch(
        broker,
        settings,
        DELIVERY_TOPIC,
        group_id=group_id,
        consumer=DELIVERIES_CONSUMER,
        handler=projection.on_delivery_batch,
        single=projection.on_delivery_event,
        max_records=500,
    )
