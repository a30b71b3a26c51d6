"""The transactional outbox and its relay.

A service writes its state change and the events announcing it in one MongoDB transaction
(`add_to_outbox`); the relay publishes what is unsent to Kafka (acks=all) and marks it sent.
A crash between publishing and marking publishes again: consumers dedupe by event id.
One relay per database publishes at a time (a lease), so one invoice's events keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from services.common import attributes as attr
from services.common.clock import Clock
from services.common.events import Event, attributes_from_headers, encode_event, trace_headers
from services.common.lease import Lease
from services.common.mongo import Database, Doc, Session
from services.common.telemetry import context_from_traceparent, current_traceparent

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter("fordring.outbox")
_published = _meter.create_counter(
    "fordring_events_published", description="Events the outbox relay published to Kafka, by topic and type"
)
BACKLOG_EVERY_SECONDS = 5.0
_RELAYS: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


def _observe(index: int) -> Callable[[CallbackOptions], list[Observation]]:
    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(r._backlog[index], {"relay": r._name}) for r in _RELAYS if r._backlog]

    return observe


_meter.create_observable_gauge(
    "fordring_outbox_unsent", callbacks=[_observe(0)], description="Events not yet published"
)
_meter.create_observable_gauge(
    "fordring_outbox_oldest_unsent_seconds",
    callbacks=[_observe(1)],
    description="Age of the oldest event not yet published (0 when none): the relay's lag",
    unit="s",
)

OUTBOX = "outbox"


def outbox_doc(event: Event, topic: str, traceparent: str | None = None) -> Doc:
    """The outbox record of one event, carrying the trace of the change that caused it."""
    return {
        "_id": event.id,
        "topic": topic,
        "key": event.subject,
        "type": event.type,
        "tenant_id": event.tenant_id,
        "value": encode_event(event),
        "traceparent": current_traceparent() if traceparent is None else traceparent,
        "headers": trace_headers(event),
        "created_at": event.occurred_at,
        "sent": False,
    }


async def add_to_outbox(db: Database, session: Session, items: Sequence[tuple[Event, str]]) -> None:
    """Write (event, topic) pairs to the outbox inside the caller's transaction."""
    if items:
        await db[OUTBOX].insert_many([outbox_doc(e, t) for e, t in items], session=session)


async def ensure_outbox_indexes(db: Database) -> None:
    await db[OUTBOX].create_index([("sent", ASCENDING), ("_id", ASCENDING)], name="unsent")


class OutboxRelay:
    """Publishes the outbox to Kafka. Run one per service replica; the lease lets one work at a time."""

    def __init__(
        self,
        db: Database,
        broker: KafkaBroker,
        clock: Clock,
        *,
        poll_seconds: float = 0.05,
        batch_size: int = 500,
        lease_seconds: float = 10.0,
        name: str = "outbox-relay",
        topic_prefix: str = "",
    ) -> None:
        self._db = db
        self._broker = broker
        self._clock = clock
        self._poll = poll_seconds
        self._batch = batch_size
        self._lease = Lease(db, name, clock, seconds=lease_seconds)
        self._name = name
        # The outbox keeps logical topic names; the deployment's prefix is applied when publishing.
        self._prefix = topic_prefix
        self._wake = asyncio.Event()
        self._stopping = False
        # The relay's lag, measured while it holds the lease: unsent events and the oldest one's age.
        self._backlog: tuple[int, float] | None = None
        self._backlog_at = 0.0
        _RELAYS.add(self)
        self.published = 0

    def wake(self) -> None:
        """Tell the relay something was just committed (saves it a poll interval)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Publish until stopped; survives database and broker outages (retries after a pause)."""
        while not self._stopping:
            try:
                leader = await self._lease.hold()
                sent = await self.publish_pending() if leader else 0
                if leader:
                    await self._measure_backlog()
            except (TimeoutError, PyMongoError, OSError) as exc:
                log.warning("outbox relay: %s; retrying", exc)
                sent = 0
                await asyncio.sleep(1.0)
            if sent < self._batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)

    async def _measure_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at < BACKLOG_EVERY_SECONDS:
            return
        self._backlog_at = now
        unsent = await self._db[OUTBOX].count_documents({"sent": False})
        oldest = await self._db[OUTBOX].find_one(
            {"sent": False}, sort=[("_id", ASCENDING)], projection={"created_at": 1}
        )
        age = (self._clock.now() - oldest["created_at"]).total_seconds() if oldest else 0.0
        self._backlog = (unsent, max(0.0, age))

    async def flush(self) -> None:
        """Publish everything unsent (at shutdown). On failure nothing is lost: the next start sends it."""
        try:
            while await self._lease.hold() and await self.publish_pending() == self._batch:
                pass
        except (PyMongoError, OSError) as exc:
            log.warning("outbox relay: left unsent events for the next start (%r)", exc)

    async def publish_pending(self) -> int:
        """Publish one batch of unsent events in order; returns how many."""
        docs = (
            await self._db[OUTBOX].find({"sent": False}).sort("_id", ASCENDING).limit(self._batch).to_list()
        )
        if not docs:
            return 0
        spans = []
        futures: list[asyncio.Future[Any]] = []
        for doc in docs:
            span = tracer.start_span(
                f"{doc['topic']} outbox",
                context=context_from_traceparent(doc.get("traceparent", "")),
                kind=trace.SpanKind.INTERNAL,
                attributes={
                    attr.EVENT_ID: doc["_id"],
                    attr.EVENT_TYPE: doc["type"],
                    **attributes_from_headers(doc.get("headers", {})),
                },
            )
            spans.append(span)
            with trace.use_span(span, end_on_exit=False):
                fut = await self._broker.publish(
                    doc["value"],
                    topic=self._prefix + doc["topic"],
                    key=doc["key"].encode(),
                    headers={"content-type": "application/json", **doc.get("headers", {})},
                    no_confirm=True,
                )
            futures.append(fut)
        try:
            await asyncio.gather(*futures)
        finally:
            for span in spans:
                span.end()
        await self._db[OUTBOX].update_many(
            {"_id": {"$in": [d["_id"] for d in docs]}},
            {"$set": {"sent": True, "sent_at": self._clock.now()}},
        )
        self.published += len(docs)
        for doc in docs:
            _published.add(1, {"topic": doc["topic"], "type": doc["type"]})
        return len(docs)
