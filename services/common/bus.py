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
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry.provider import KafkaTelemetrySettingsProvider
from faststream.kafka.response import KafkaPublishCommand
from faststream.opentelemetry.middleware import TelemetryMiddleware
from opentelemetry import metrics, trace
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError, PyMongoError

from services.common import attributes as attr
from services.common.errors import FordringError, Unavailable
from services.common.events import DLQ_SUFFIX, Event, attributes_from_headers, parse_event, trace_headers
from services.common.mongo import Database, Session
from services.common.settings import CommonSettings

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


def create_broker(settings: CommonSettings) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap.split(","),
        acks="all",
        client_id=f"fordring-{settings.service_name}",
        middlewares=[
            TelemetryMiddleware[KafkaPublishCommand](
                settings_provider_factory=lambda _msg: _FordringTelemetry(),
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
    full_topic = settings.topic(topic)
    dlq_topic = full_topic + DLQ_SUFFIX

    async def dead_letter(msg: KafkaMessage, reason: str) -> None:
        log.error("dead-lettering a message from %s: %s", full_topic, reason)
        _dead_lettered.add(1, {"topic": topic, "consumer": consumer})
        await broker.publish(
            msg.body,
            topic=dlq_topic,
            key=msg.raw_message.key,  # type: ignore[union-attr]
            headers={
                **{k: str(v) for k, v in msg.headers.items()},
                "x-dlq-reason": reason[:1000],
                "x-dlq-consumer": consumer,
            },
        )

    rewind = _Rewind()
    _REWINDS.setdefault(broker, []).append(rewind)
    subscriber = broker.subscriber(
        full_topic,
        # One group per subscription: a group join takes seconds, and subscribers sharing a group
        # would rebalance each other whenever one of them starts.
        group_id=settings.topic(f"{group_id}.{topic}"),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{consumer}:{topic}",
        decoder=_raw_body,
        listener=rewind,
    )
    rewind.subscriber = subscriber

    @subscriber
    async def on_message(body: bytes, msg: KafkaMessage) -> None:
        try:
            event = parse_event(body)
        except ValidationError as exc:
            await dead_letter(msg, f"malformed envelope: {exc.errors()[:3]}")
            return
        # Named from the event itself (as the relay names its spans), whatever headers the producer sent.
        span = trace.get_current_span()
        span.set_attributes(attributes_from_headers(trace_headers(event)))
        span.set_attribute(attr.EVENT_TYPE, event.type)
        span.set_attribute(attr.CONSUMER, consumer)
        for attempt in range(1, max_attempts + 1):
            try:
                await handler(event)
            except AlreadyProcessed:
                return
            except (PyMongoError, OSError, Unavailable):
                log.warning(
                    "%s: infrastructure error on event %s; it will come again",
                    consumer,
                    event.id,
                    exc_info=True,
                )
                await asyncio.sleep(1.0)
                raise
            except Exception as exc:
                # A business rule (FordringError) or a bug: retry a few times, then park the message
                # in the dead-letter topic rather than crash-looping or skipping it silently.
                if attempt == max_attempts:
                    reason = exc.message if isinstance(exc, FordringError) else repr(exc)
                    await dead_letter(msg, f"{type(exc).__name__}: {reason}")
                    return
                log.warning("%s: attempt %d on event %s failed: %r", consumer, attempt, event.id, exc)
                await asyncio.sleep(retry_delay * attempt)
            else:
                return
