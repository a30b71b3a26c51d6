"""What the renderer consumes: the ledger's invoice events (issued, credited, reminded, noticed)."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.common.bus import subscribe_batch
from services.common.events import INVOICE_TOPIC
from services.common.settings import CommonSettings
from services.renderer.rendering import CONSUMER, Renderer


def register(broker: KafkaBroker, settings: CommonSettings, renderer: Renderer, group_id: str) -> None:
    subscribe_batch(
        broker,
        settings,
        INVOICE_TOPIC,
        group_id=group_id,
        consumer=CONSUMER,
        handler=renderer.on_batch,
        single=renderer.on_event,
        max_records=16,
    )
