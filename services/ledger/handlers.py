"""What the ledger consumes: proposals from the matcher (PaymentMatched) and dunning (DunningActionTaken),
and the dispatcher's delivery reports."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from faststream.kafka import KafkaBroker

from services.common.bus import subscribe, subscribe_batch
from services.common.clock import Clock, local_today
from services.common.errors import NotFound
from services.common.events import (
    DELIVERY_TOPIC,
    DUNNING_TOPIC,
    PAYMENT_TOPIC,
    DunningActionTaken,
    Event,
    PaymentMatched,
)
from services.common.settings import CommonSettings
from services.common.telemetry import current_trace_id, current_traceparent
from services.ledger.changes import Changes
from services.ledger.deliveries import DELIVERIES_CONSUMER, DeliveryLog
from services.ledger.documents import Ctx
from services.ledger.proposals import PROPOSALS_CONSUMER, apply_dunning_action, apply_payment_matched
from services.ledger.tenants import TenantDirectory

log = logging.getLogger(__name__)


class ProposalHandlers:
    def __init__(self, changes: Changes, tenants: TenantDirectory, clock: Clock) -> None:
        self._changes = changes
        self._tenants = tenants
        self._clock = clock

    async def _ctx(self, event: Event, actor: str) -> Ctx:
        tenant = await self._tenants.by_id(event.tenant_id)
        if tenant is None:
            raise NotFound(f"event {event.id} names an unknown tenant {event.tenant_id}")
        return Ctx(
            tenant=tenant,
            actor=actor,
            now=self._clock.now(),
            today=local_today(self._clock, ZoneInfo(tenant.timezone)),
            trace_id=current_trace_id(),
            traceparent=current_traceparent(),
        )

    async def on_payment_event(self, event: Event) -> None:
        if isinstance(event, PaymentMatched):
            await apply_payment_matched(self._changes, await self._ctx(event, "matcher"), event)
        else:
            log.debug("ledger ignores %s on the payment topic", event.type)

    async def on_dunning_event(self, event: Event) -> None:
        if isinstance(event, DunningActionTaken):
            await apply_dunning_action(self._changes, await self._ctx(event, "dunning"), event)
        else:
            log.debug("ledger ignores %s on the dunning topic", event.type)


def register(
    broker: KafkaBroker,
    settings: CommonSettings,
    handlers: ProposalHandlers,
    deliveries: DeliveryLog,
    group_id: str,
) -> None:
    subscribe(
        broker,
        settings,
        PAYMENT_TOPIC,
        group_id=group_id,
        consumer=PROPOSALS_CONSUMER,
        handler=handlers.on_payment_event,
    )
    subscribe(
        broker,
        settings,
        DUNNING_TOPIC,
        group_id=group_id,
        consumer=PROPOSALS_CONSUMER,
        handler=handlers.on_dunning_event,
    )
    # What the dispatcher reports about deliveries: many small facts, applied a batch at a time.
    subscribe_batch(
        broker,
        settings,
        DELIVERY_TOPIC,
        group_id=group_id,
        consumer=DELIVERIES_CONSUMER,
        handler=deliveries.on_batch,
        single=deliveries.on_event,
        max_records=64,
    )
