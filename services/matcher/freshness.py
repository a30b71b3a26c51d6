"""Is the book as fresh as the ledger? Before an import decides anything, the matcher waits (a
little) until its consumers have taken in every invoice and customer event the ledger had published
when the file arrived: a bank file sent right after the invoices it pays then finds them, instead of
sending their payments to review as unknown.

Measured on the consumer groups' committed offsets (all replicas' progress, not only this one's)
against the topics' end offsets, read when the import starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.settings import CommonSettings

log = logging.getLogger(__name__)


class Freshness:
    def __init__(self, settings: CommonSettings, group_id: str, topics: Sequence[str]) -> None:
        self._settings = settings
        # (topic, its consumer group) as services/common/bus.py names them.
        self._groups = [(settings.topic(t), settings.topic(f"{group_id}.{t}")) for t in topics]
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._lock:
            if self._admin is None or self._consumer is None:
                bootstrap = self._settings.kafka_bootstrap
                admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
                consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
                await admin.start()
                try:
                    await consumer.start()
                except BaseException:
                    await admin.close()
                    raise
                self._admin, self._consumer = admin, consumer
            return self._admin, self._consumer

    async def wait(self, within: float) -> bool:
        """True when the consumers caught up with what was published now (within `within` seconds);
        False when they did not, or Kafka could not say (the import goes on: what the book does not
        know goes to review, never to a wrong invoice)."""
        try:
            return await asyncio.wait_for(self._wait(within), timeout=within + 5)
        except Exception as exc:
            log.warning("could not tell whether the open items are current (%s); importing anyway", exc)
            await self.close()
            return False

    async def _wait(self, within: float) -> bool:
        admin, consumer = await self._clients()
        targets: list[tuple[str, dict[TopicPartition, int]]] = []
        for topic, group in self._groups:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            ends = await consumer.end_offsets(tps) if tps else {}
            targets.append((group, {tp: end for tp, end in ends.items() if end > 0}))
        deadline = time.monotonic() + within
        while True:
            behind = 0
            for group, ends in targets:
                if not ends:
                    continue
                committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
                for tp, end in ends.items():
                    at = committed.get(tp)
                    behind += max(0, end - (at.offset if at is not None and at.offset >= 0 else 0))
            if behind == 0:
                return True
            if time.monotonic() >= deadline:
                log.warning("the open items are %d events behind the ledger; importing anyway", behind)
                return False
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
