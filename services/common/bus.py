"""The Kafka broker factory (FastStream over aiokafka) and the consumer side of "nothing twice".

Producers wait for all in-sync replicas (acks="all"): money never travels fire-and-forget.
Consumers commit offsets after processing (at-least-once); each handler records the event ids
it applied in the same MongoDB transaction as its change, so a redelivery changes nothing.
A message that can never be applied goes to `<topic>.dlq` with the reason after bounded retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Final

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry.provider import (
    BatchKafkaTelemetrySettingsProvider,
    KafkaTelemetrySettingsProvider,
)
from faststream.kafka.response import KafkaPublishCommand
from faststream.opentelemetry.middleware import TelemetryMiddleware
from opentelemetry import metrics, trace
from pydantic import ValidationError
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from services.common import attributes as attr
from services.common.errors import FordringError, Unavailable
from services.common.events import DLQ_SUFFIX, Event, attributes_from_headers, parse_event, trace_headers
from services.common.mongo import Database, Session
from services.common.settings import CommonSettings
from services.common.telemetry import continued

log = logging.getLogger(__name__)
_dead_lettered = metrics.get_meter("fordring.bus").create_counter(
    "fordring_events_dead_lettered",
    description="Messages parked in a dead-letter topic, by topic and consumer",
)

PROCESSED: Final = "processed_events"


class _FordringTelemetry(KafkaTelemetrySettingsProvider):
    """FastStream's Kafka span attributes, plus `fordring.invoice_id` and friends from our headers."""

    def get_publish_attrs_from_cmd(self, cmd: KafkaPublishCommand) -> dict[str, Any]:
        return {**super().get_publish_attrs_from_cmd(cmd), **attributes_from_headers(cmd.headers)}

    def get_consume_attrs_from_message(self, msg: Any) -> dict[str, Any]:
        return {**super().get_consume_attrs_from_message(msg), **attributes_from_headers(msg.headers)}


class _FordringBatchTelemetry(BatchKafkaTelemetrySettingsProvider):
    """A batch's consume span: FastStream's attributes (its tenant and invoice are many)."""

    def get_publish_attrs_from_cmd(self, cmd: KafkaPublishCommand) -> dict[str, Any]:
        return {**super().get_publish_attrs_from_cmd(cmd), **attributes_from_headers(cmd.headers)}


def _telemetry(raw: Any) -> KafkaTelemetrySettingsProvider | BatchKafkaTelemetrySettingsProvider:
    return _FordringBatchTelemetry() if isinstance(raw, tuple | list) else _FordringTelemetry()


def create_broker(settings: CommonSettings) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap.split(","),
        acks="all",
        client_id=f"fordring-{settings.service_name}",
        middlewares=[
            TelemetryMiddleware[KafkaPublishCommand](
                settings_provider_factory=_telemetry,
                tracer_provider=trace.get_tracer_provider(),
            )
        ],
        graceful_timeout=settings.shutdown_grace,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        # FastStream's messages go through our (JSON) logging; per-message access logs only at DEBUG.
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
    )


class BrokerLink:
    """A service's connection to Kafka, made in the background and kept.

    Nothing waits for it at start: the API serves and the outbox holds events until the broker
    answers. `ensure_connected` is called by whoever needs the broker (the relay, the consumers)
    and retried by them; the readiness check reports what is wrong meanwhile.
    """

    def __init__(self, broker: KafkaBroker, bootstrap: str) -> None:
        self.broker = broker
        self._servers = [s.strip().rpartition(":") for s in bootstrap.split(",") if s.strip()]
        self._lock = asyncio.Lock()
        self._cluster = ""
        self.last_error = ""
        self.cluster_changes = 0

    @property
    def connected(self) -> bool:
        return bool(self.broker.config.producer)

    async def ensure_connected(self) -> None:
        if self.connected:
            return
        async with self._lock:
            if self.connected:
                return
            try:
                # aiokafka leaves an unclosed producer behind each failed bootstrap: only try when a
                # bootstrap server takes a TCP connection at all.
                await self._any_server_listens()
                await self.broker.connect()
            except Exception as exc:
                text = str(exc)
                self.last_error = (
                    text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
                )[:300]
                raise
            self.last_error = ""

    async def _any_server_listens(self) -> None:
        problems = []
        for host, _, port in self._servers:
            try:
                async with asyncio.timeout(2.0):
                    _, writer = await asyncio.open_connection(host, int(port))
            except (OSError, TimeoutError) as exc:
                problems.append(f"{host}:{port} ({exc})")
                continue
            writer.close()
            return
        raise KafkaConnectionError(f"no Kafka bootstrap server answers: {', '.join(problems)}")

    async def reachable(self) -> bool:
        """True when the broker answers a metadata request now."""
        return self.connected and await self.broker.ping(timeout=2.0)

    async def cluster_id(self) -> str:
        """The cluster id the broker reports ("" when it reports none)."""
        described = await self.broker.config.admin_client.describe_cluster()
        return str(described.get("cluster_id") or "")

    async def refresh_metadata(self) -> None:
        """Make the producer read the cluster's metadata now. After a broker restart aiokafka keeps
        its old picture for up to metadata_max_age_ms; a broker that lost its log (the embedded one)
        would then take records for topics it no longer has, and lose them."""
        producer = self.broker.config.producer
        inner = getattr(producer, "_producer", None)
        client = getattr(getattr(inner, "producer", None), "client", None)
        if client is not None and not await client.force_metadata_update():
            raise KafkaConnectionError("the Kafka cluster's metadata could not be read")

    async def watch_cluster(self, every: float = 2.0) -> None:
        """Until cancelled: when the broker's cluster id changes (a broker that lost its log, or a
        cluster rebuilt), refresh the producer's metadata and restart the subscribers, which then read
        their topics from the beginning (their committed offsets went with the old log; the relays
        publish their replay window again, and consumers dedupe by event id)."""
        while True:
            try:
                if self.connected:
                    cluster = await self.cluster_id()
                    if cluster and self._cluster and cluster != self._cluster:
                        await self._on_new_cluster(self._cluster, cluster)
                    self._cluster = cluster or self._cluster
            except Exception as exc:  # the broker may be away; the next look may succeed
                log.debug("could not read the Kafka cluster id (%s)", exc)
            await asyncio.sleep(every)

    async def _on_new_cluster(self, old: str, new: str) -> None:
        log.warning(
            "the Kafka cluster changed (%s -> %s): refreshing metadata and reading subscriptions again",
            old,
            new,
        )
        await self.refresh_metadata()
        # Not a restart of the subscribers: a consumer stopped while its group is re-forming on the
        # new cluster can hold that group's rebalance for minutes. They rejoin by themselves; each
        # is rewound to the beginning now and again at its next assignment.
        for rewind in _REWINDS.get(self.broker, ()):
            await rewind.arm()
        self.cluster_changes += 1

    async def check(self) -> None:
        """The readiness check: raises with the reason when Kafka cannot be used now."""
        if not self.connected:
            raise ConnectionError(f"not connected to Kafka ({self.last_error or 'connecting'})")
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("the Kafka broker does not answer")


class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reads a subscription from the beginning after the cluster changed.

    A broker that lost its log (the embedded one restarted) has no committed offsets of ours, yet a
    consumer that lived through the change keeps its old positions, beyond the new log's end, and
    reads nothing (the broker answers such a fetch with no records rather than OFFSET_OUT_OF_RANGE).
    """

    ARMED_FOR = 300.0

    def __init__(self) -> None:
        self.subscriber: Any = None
        self._until = 0.0

    async def arm(self) -> None:
        self._until = time.monotonic() + self.ARMED_FOR
        consumer = getattr(self.subscriber, "consumer", None)
        if consumer is not None and consumer.assignment():
            await consumer.seek_to_beginning(*consumer.assignment())

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = getattr(self.subscriber, "consumer", None)
        if assigned and consumer is not None and time.monotonic() < self._until:
            self._until = 0.0
            log.warning("reading %s from the beginning on the new Kafka cluster", sorted(map(str, assigned)))
            await consumer.seek_to_beginning(*assigned)


_REWINDS: weakref.WeakKeyDictionary[KafkaBroker, list[_Rewind]] = weakref.WeakKeyDictionary()


class AlreadyProcessed(Exception):
    """The event id was applied before: the redelivery is acknowledged and changes nothing."""


async def record_processed(
    db: Database, session: Session, consumer: str, event_id: str, at: datetime
) -> None:
    """Record inside the caller's transaction that `consumer` applied `event_id` (unique per pair)."""
    try:
        await db[PROCESSED].insert_one({"_id": f"{consumer}:{event_id}", "at": at}, session=session)
    except DuplicateKeyError as exc:
        raise AlreadyProcessed(event_id) from exc


async def ensure_processed_indexes(db: Database) -> None:
    """Applied event ids, by age (services/common/retention.py forgets them after a while)."""
    await db[PROCESSED].create_index("at", name="at")


async def record_processed_many(
    db: Database, session: Session, consumer: str, event_ids: list[str], at: datetime
) -> None:
    """`record_processed` for a batch, in one write; AlreadyProcessed when any was applied before."""
    if not event_ids:
        return
    try:
        await db[PROCESSED].insert_many(
            [{"_id": f"{consumer}:{event_id}", "at": at} for event_id in event_ids], session=session
        )
    except (DuplicateKeyError, BulkWriteError) as exc:
        raise AlreadyProcessed(",".join(event_ids)) from exc


async def processed_among(db: Database, consumer: str, event_ids: list[str]) -> set[str]:
    """Which of these event ids `consumer` applied before (one query: point lookups on `_id`)."""
    if not event_ids:
        return set()
    keys = [f"{consumer}:{event_id}" for event_id in event_ids]
    found = await db[PROCESSED].find({"_id": {"$in": keys}}, projection={"_id": 1}).to_list()
    return {d["_id"].split(":", 1)[1] for d in found}


async def was_processed(db: Database, consumer: str, event_id: str) -> bool:
    return await db[PROCESSED].find_one({"_id": f"{consumer}:{event_id}"}, projection={"_id": 1}) is not None


EventHandler = Callable[[Event], Awaitable[None]]


async def _raw_body(msg: KafkaMessage) -> bytes:
    """The value as it came. FastStream would decode JSON into a dict (which `body: bytes` refuses) and
    fail on a value that is not JSON before the handler runs: either way the message would be nacked
    and redelivered forever instead of being parsed here and, if malformed, dead-lettered."""
    return msg.body


def subscribe(
    broker: KafkaBroker,
    settings: CommonSettings,
    topic: str,
    *,
    group_id: str,
    consumer: str,
    handler: EventHandler,
    max_attempts: int = 3,
    retry_delay: float = 0.2,
) -> None:
    """Subscribe `handler` to `topic` with the project's delivery rules.

    - a malformed envelope, or one whose handler keeps raising a FordringError (a business rule),
      goes to the dead-letter topic with the reason after `max_attempts`, then is acknowledged;
    - infrastructure errors (database unreachable, another service unavailable) are not the message's
      fault: the offset is not committed and the message comes again after a pause.
    """
    parking = _DeadLetters(broker, settings, topic, consumer)
    subscriber = _subscriber(broker, settings, topic, group_id=group_id, consumer=consumer)

    @subscriber
    async def on_message(body: bytes, msg: KafkaMessage) -> None:
        record = msg.raw_message
        try:
            event = parse_event(body)
        except ValidationError as exc:
            await parking.park(body, record, f"malformed envelope: {exc.errors()[:3]}")
            return
        # Named from the event itself (as the relay names its spans), whatever headers the producer sent.
        span = trace.get_current_span()
        span.set_attributes(attributes_from_headers(trace_headers(event)))
        span.set_attribute(attr.EVENT_TYPE, event.type)
        span.set_attribute(attr.CONSUMER, consumer)
        reason = await _apply(event, handler, consumer, max_attempts=max_attempts, retry_delay=retry_delay)
        if reason is not None:
            await parking.park(body, record, reason)


BatchHandler = Callable[[list[Event]], Awaitable[dict[str, Exception]]]


# The traceparent each event of the batch being handled came with (its Kafka record's header), by
# event id: a batch is one span of its own, and `event_span` continues each event's trace in it.
_EVENT_TRACES: ContextVar[Mapping[str, str] | None] = ContextVar("fordring_event_traces", default=None)


def event_traceparent(event: Event) -> str:
    """The traceparent the event arrived with in the batch being handled ("" when unknown)."""
    return (_EVENT_TRACES.get() or {}).get(event.id, "")


@contextmanager
def event_span(event: Event, name: str, **attributes: str | int) -> Iterator[trace.Span]:
    """A span for the work one event of a batch causes, in that event's own trace (a child of the
    span that published it: one invoice's life stays one trace through batch consumers), linked to
    the batch's span. Outside a batch (or without a traceparent) it is a child of the current span."""
    with continued(
        name,
        event_traceparent(event),
        {attr.EVENT_ID: event.id, attr.TENANT_ID: event.tenant_id, **attributes},
    ) as span:
        yield span


def _traceparent(record: Any) -> str:
    for key, value in getattr(record, "headers", None) or ():
        if key == "traceparent":
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def subscribe_batch(
    broker: KafkaBroker,
    settings: CommonSettings,
    topic: str,
    *,
    group_id: str,
    consumer: str,
    handler: BatchHandler,
    single: EventHandler,
    max_records: int = 32,
    max_attempts: int = 3,
    retry_delay: float = 0.2,
) -> None:
    """`subscribe` for consumers that do better a batch at a time (one transaction for many events).

    `handler` applies a batch and returns the events it could not apply (by id, with the error);
    those are tried again one at a time with `single`, then dead-lettered, as `subscribe` does. An
    infrastructure error from `handler` leaves the whole batch uncommitted: it comes again, and the
    events applied before are recognised by their ids.
    """
    parking = _DeadLetters(broker, settings, topic, consumer)
    subscriber = _subscriber(
        broker, settings, topic, group_id=group_id, consumer=consumer, batch=True, max_records=max_records
    )

    @subscriber
    async def on_batch(bodies: list[bytes], msg: KafkaMessage) -> None:
        records: tuple[Any, ...] = msg.raw_message
        events: list[tuple[Event, bytes, Any]] = []
        for body, record in zip(bodies, records, strict=True):
            try:
                events.append((parse_event(body), body, record))
            except ValidationError as exc:
                await parking.park(body, record, f"malformed envelope: {exc.errors()[:3]}")
        span = trace.get_current_span()
        span.set_attribute(attr.CONSUMER, consumer)
        span.set_attribute(attr.BATCH_SIZE, len(events))
        traces = _EVENT_TRACES.set({event.id: _traceparent(record) for event, _, record in events})
        try:
            try:
                failed = await handler([event for event, _, _ in events])
            except (PyMongoError, OSError, Unavailable):
                log.warning(
                    "%s: infrastructure error on a batch; it will come again", consumer, exc_info=True
                )
                await asyncio.sleep(1.0)
                raise
            for event, body, record in events:
                if event.id not in failed:
                    continue
                reason = await _apply(
                    event, single, consumer, max_attempts=max_attempts, retry_delay=retry_delay
                )
                if reason is not None:
                    await parking.park(body, record, reason)
        finally:
            _EVENT_TRACES.reset(traces)


def _subscriber(
    broker: KafkaBroker,
    settings: CommonSettings,
    topic: str,
    *,
    group_id: str,
    consumer: str,
    batch: bool = False,
    max_records: int | None = None,
) -> Callable[[Callable[..., Awaitable[None]]], object]:
    rewind = _Rewind()
    _REWINDS.setdefault(broker, []).append(rewind)
    subscriber = broker.subscriber(  # type: ignore[call-overload]
        settings.topic(topic),
        # One group per subscription: a group join takes seconds, and subscribers sharing a group
        # would rebalance each other whenever one of them starts.
        group_id=settings.topic(f"{group_id}.{topic}"),
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{consumer}:{topic}",
        decoder=_raw_body,
        listener=rewind,
        batch=batch,
        max_records=max_records,
        **({"batch_timeout_ms": 50} if batch else {}),
    )
    rewind.subscriber = subscriber
    decorate: Callable[[Callable[..., Awaitable[None]]], object] = subscriber
    return decorate


async def _apply(
    event: Event, handler: EventHandler, consumer: str, *, max_attempts: int, retry_delay: float
) -> str | None:
    """Apply one event; None when applied (or applied before), else why it must be dead-lettered.
    Infrastructure errors are raised: the message comes again."""
    for attempt in range(1, max_attempts + 1):
        try:
            await handler(event)
        except AlreadyProcessed:
            return None
        except (PyMongoError, OSError, Unavailable):
            log.warning(
                "%s: infrastructure error on event %s; it will come again", consumer, event.id, exc_info=True
            )
            await asyncio.sleep(1.0)
            raise
        except Exception as exc:
            # A business rule (FordringError) or a bug: retry a few times, then park the message
            # in the dead-letter topic rather than crash-looping or skipping it silently.
            if attempt == max_attempts:
                reason = exc.message if isinstance(exc, FordringError) else repr(exc)
                return f"{type(exc).__name__}: {reason}"
            log.warning("%s: attempt %d on event %s failed: %r", consumer, attempt, event.id, exc)
            await asyncio.sleep(retry_delay * attempt)
        else:
            return None
    return None


class _DeadLetters:
    """`<topic>.dlq`: messages that can never be applied, with the reason, the consumer and the
    original headers."""

    def __init__(self, broker: KafkaBroker, settings: CommonSettings, topic: str, consumer: str) -> None:
        self._broker = broker
        self._topic = topic
        self._full = settings.topic(topic)
        self._consumer = consumer

    async def park(self, body: bytes, record: Any, reason: str) -> None:
        log.error("dead-lettering a message from %s: %s", self._full, reason)
        _dead_lettered.add(1, {"topic": self._topic, "consumer": self._consumer})
        headers = {
            k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
            for k, v in record.headers or ()
        }
        await self._broker.publish(
            body,
            topic=self._full + DLQ_SUFFIX,
            key=record.key,
            headers={**headers, "x-dlq-reason": reason[:1000], "x-dlq-consumer": self._consumer},
        )
