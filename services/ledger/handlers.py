"""What the ledger consumes: the matcher's payments (PaymentMatched, PaymentReversed, PayerAccountLearned),
dunning's proposals (DunningActionTaken), and the dispatcher's delivery reports."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from faststream.kafka import KafkaBroker

from services.common.bus import AlreadyProcessed, subscribe, subscribe_batch
from services.common.clock import Clock, local_today
from services.common.errors import NotFound, safe_error_text
from services.common.events import (
    DELIVERY_TOPIC,
    DUNNING_TOPIC,
    PAYMENT_TOPIC,
    DunningActionTaken,
    Event,
    PayerAccountLearned,
    PaymentMatched,
    PaymentReversed,
)
from services.common.settings import CommonSettings
from services.common.telemetry import current_trace_id, current_traceparent
from services.ledger.changes import Changes
from services.ledger.deliveries import DELIVERIES_CONSUMER, DeliveryLog
from services.ledger.documents import Ctx
from services.ledger.matched import MAX_BATCH as MATCHED_BATCH
from services.ledger.matched import MatchedBatch, passes_by_itself
from services.ledger.payer_accounts import learn_payer_account
from services.ledger.proposals import PROPOSALS_CONSUMER, apply_dunning_action, apply_payment_matched
from services.ledger.reversals import apply_payment_reversed
from services.ledger.tenants import TenantDirectory

log = logging.getLogger(__name__)


class ProposalHandlers:
    def __init__(self, changes: Changes, tenants: TenantDirectory, clock: Clock) -> None:
        self._changes = changes
        self._tenants = tenants
        self._clock = clock
        self._matched = MatchedBatch(changes)

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
        """One event of the matcher's topic in its own transaction."""
        if isinstance(event, PaymentMatched):
            await apply_payment_matched(self._changes, await self._ctx(event, "matcher"), event)
        elif isinstance(event, PaymentReversed):
            await apply_payment_reversed(self._changes, await self._ctx(event, "matcher"), event)
        elif isinstance(event, PayerAccountLearned):
            await learn_payer_account(self._changes, await self._ctx(event, "matcher"), event)
        else:
            log.debug("ledger ignores %s on the payment topic", event.type)

    async def on_payment_batch(self, events: list[Event]) -> dict[str, Exception]:
        """A batch of the matcher's topic, in order: each run of PaymentMatched in one transaction
        (services/ledger/matched.py), returns and learned accounts one at a time between them.
        Returns the events not applied, for the consumer to try again one at a time (and to
        dead-letter)."""
        failed: dict[str, Exception] = {}
        run: list[tuple[Ctx, PaymentMatched]] = []
        contexts: dict[str, Ctx] = {}
        for event in events:
            if isinstance(event, PaymentMatched):
                try:
                    if event.tenant_id not in contexts:
                        contexts[event.tenant_id] = await self._ctx(event, "matcher")
                except NotFound as exc:
                    failed[event.id] = exc
                else:
                    run.append((contexts[event.tenant_id], event))
            elif isinstance(event, PaymentReversed | PayerAccountLearned):
                # After the proposals before it (a return after the payment it returns).
                await self._apply_run(run, failed)
                run = []
                await self._one(event, failed)
            else:
                # PaymentReceived and PaymentResolved, one beside each proposal: not the ledger's.
                log.debug("ledger ignores %s on the payment topic", event.type)
        await self._apply_run(run, failed)
        return failed

    async def _apply_run(self, run: list[tuple[Ctx, PaymentMatched]], failed: dict[str, Exception]) -> None:
        if not run:
            return
        try:
            await self._matched.apply(run)
        except Exception as exc:
            if passes_by_itself(exc):
                raise
            # One proposal may be what failed the batch: each in its own transaction, in order.
            log.warning(
                "a batch of %d payment proposals failed (%s); applying them one at a time",
                len(run),
                safe_error_text(exc),
            )
            for _, event in run:
                await self._one(event, failed)

    async def _one(self, event: Event, failed: dict[str, Exception]) -> None:
        try:
            await self.on_payment_event(event)
        except AlreadyProcessed:
            pass
        except Exception as exc:
            if passes_by_itself(exc):
                raise
            failed[event.id] = exc

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
    # The matcher's payments come a bank file at a time: applied a batch per transaction. Each
    # proposal has the matcher's PaymentReceived beside it (not the ledger's): twice the records
    # make a batch of MATCHED_BATCH proposals.
    subscribe_batch(
        broker,
        settings,
        PAYMENT_TOPIC,
        group_id=group_id,
        consumer=PROPOSALS_CONSUMER,
        handler=handlers.on_payment_batch,
        single=handlers.on_payment_event,
        max_records=2 * MATCHED_BATCH,
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
