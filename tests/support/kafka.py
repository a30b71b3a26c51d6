"""Test-side Kafka: topics made up front, readers on manual partition assignment (no consumer group:
joining one takes seconds on the embedded broker), and a producer for proposals."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.events import Event, encode_event

T = TypeVar("T")
PARTITIONS = 4


async def create_topics(bootstrap: str, topics: Iterable[str]) -> None:
    """Create the topics (4 partitions) so readers can be assigned before anything is published."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for topic in topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    def envelope(self) -> dict[str, Any] | None:
        """The event envelope, or None when the value is not a JSON object."""
        try:
            value = json.loads(self.value)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class TopicReader:
    """Reads a topic from its beginning into memory, in the background, until stopped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[Record] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # fetches the cluster's metadata
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        self._task = asyncio.create_task(self._read(), name=f"reader:{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                self.records.extend(
                    Record(m.topic, m.partition, m.offset, m.key, m.value or b"", dict(m.headers or ()))
                    for m in messages
                )
            if batches:
                self._arrived.set()

    async def wait_for(
        self, found: Callable[[], T | None], *, timeout: float = 20.0, what: str = "records"
    ) -> T:
        """Call `found()` as records arrive until it returns something truthy, and return that."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._arrived.clear()
            result = found()
            if result:
                return result
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"{self.topic}: no {what} after {timeout:.0f} s ({len(self.records)} records)"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=left)

    def events(self, *, tenant_id: str) -> list[tuple[Record, dict[str, Any]]]:
        """This tenant's envelopes, in the order they were read (per partition, the order published)."""
        out = []
        for record in self.records:
            envelope = record.envelope()
            if envelope is not None and envelope.get("tenant_id") == tenant_id:
                out.append((record, envelope))
        return out


async def publish(producer: AIOKafkaProducer, topic: str, event: Event) -> None:
    """Publish an event the way services do: key = subject (the invoice id), JSON envelope."""
    await producer.send_and_wait(
        topic,
        encode_event(event),
        key=event.subject.encode(),
        headers=[("content-type", b"application/json")],
    )
