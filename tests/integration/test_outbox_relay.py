"""The outbox relay against real broker and database processes, under the faults a review found:
the broker dies and comes back empty, a record the broker refuses, a shutdown while Kafka is away.

Nothing may be lost (every event reaches the topic, at least once), one key's events keep their
order, and the relay says what is wrong while it is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.bus import BrokerLink, create_broker
from services.common.clock import SystemClock
from services.common.events import CustomerCreditChanged, CustomerCreditChangedData
from services.common.mongo import Database, create_mongo_client, in_transaction
from services.common.outbox import OUTBOX, add_to_outbox, ensure_outbox_indexes, outbox_status
from services.common.outbox_admin import run_outbox_command
from services.common.relay import OutboxRelay, RelaySettings
from services.common.retention import Retained, RetentionSweep
from services.common.settings import CommonSettings
from services.ledger.admin import parser as admin
from tests.support.backends import Backend
from tests.support.broker import OwnBroker
from tests.support.kafka import TopicReader, create_topics

pytestmark = pytest.mark.integration

TOPIC = "fordring.test.relay.v1"


def event(key: str, seq: int, *, padding: int = 0) -> CustomerCreditChanged:
    return CustomerCreditChanged(
        tenant_id="relay-test",
        subject=key,
        occurred_at=datetime.now(UTC),
        data=CustomerCreditChangedData(
            customer_id=key,
            customer_number=f"{seq:06d}",
            currency="NOK",
            credit_balance_minor=seq,
            change_minor=1,
            reason="x" * padding,
        ),
    )


@dataclass
class Rig:
    db: Database
    relay: OutboxRelay
    link: BrokerLink
    prefix: str
    client: object

    @property
    def topic(self) -> str:
        return self.prefix + TOPIC

    async def write(self, events: list[CustomerCreditChanged]) -> None:
        client = self.client

        async def work(session: object) -> None:
            await add_to_outbox(self.db, session, [(e, TOPIC) for e in events])  # type: ignore[arg-type]

        await in_transaction(client, work)  # type: ignore[arg-type]
        self.relay.wake()

    async def unsent(self) -> int:
        return await self.db[OUTBOX].count_documents({"sent": False})


@contextlib.asynccontextmanager
async def relay_rig(bootstrap: str, mongo_uri: str, **settings: float) -> AsyncIterator[Rig]:
    prefix = f"r{uuid.uuid4().hex[:10]}."
    common = CommonSettings(
        service_name="relay-test",
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        shutdown_grace=2.0,
        # The producer gives up on a record after 3 s (the default 30 s would make the test slow).
        kafka_request_timeout_ms=3000,
    )
    client = create_mongo_client(mongo_uri, app_name="relay-test")
    db = client[f"relay_{prefix.strip('.')}"]
    await ensure_outbox_indexes(db)
    kafka = create_broker(common)
    link = BrokerLink(kafka, bootstrap)
    relay = OutboxRelay(
        db,
        link,
        SystemClock(),
        RelaySettings(
            send_timeout=settings.get("send_timeout", 4.0),
            stuck_after=1.0,
            measure_every=0.2,
            cluster_check_every=0.5,
            max_attempts=int(settings.get("max_attempts", 3)),
            park_after=settings.get("park_after", 0.0),
        ),
        topic_prefix=prefix,
    )
    run = asyncio.create_task(relay.run())
    watch = asyncio.create_task(link.watch_cluster(every=0.5))
    try:
        yield Rig(db, relay, link, prefix, client)
    finally:
        relay.stop()
        watch.cancel()
        await asyncio.wait_for(run, timeout=15)
        with contextlib.suppress(Exception):
            await kafka.stop()
        await client.drop_database(db.name)
        await client.close()


async def read_all(bootstrap: str, topic: str, want: set[str], timeout: float = 40.0) -> list[str]:
    """Event ids on the topic, read by a brand-new consumer from the beginning, once `want` are there."""
    await create_topics(bootstrap, [topic])
    reader = TopicReader(bootstrap, topic)
    await reader.start()
    try:

        def ids() -> list[str] | None:
            found = [e["id"] for _, e in reader.events(tenant_id="relay-test")]
            return found if want <= set(found) else None

        return await reader.wait_for(ids, timeout=timeout, what=f"{len(want)} events")
    finally:
        await reader.stop()


async def eventually(check: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f} s")
        await asyncio.sleep(0.1)


def in_key_order(ids: list[str], events: list[CustomerCreditChanged]) -> bool:
    """Per key, the first time each event appears follows the order they were written."""
    position: dict[str, int] = {}
    for index, event_id in enumerate(ids):
        position.setdefault(event_id, index)
    by_key: dict[str, list[int]] = {}
    for e in events:
        by_key.setdefault(e.subject, []).append(position[e.id])
    return all(seq == sorted(seq) for seq in by_key.values())


async def test_the_relay_rides_out_a_broker_that_dies_and_comes_back_empty(
    backend: Backend, tmp_path: Path
) -> None:
    broker = OwnBroker(tmp_path)
    broker.start()
    try:
        async with relay_rig(broker.bootstrap, backend.mongo_uri) as rig:
            keys = [f"customer-{k}" for k in range(5)]
            before = [event(key, seq) for seq in range(8) for key in keys]
            await rig.write(before)
            ids = await read_all(broker.bootstrap, rig.topic, {e.id for e in before})
            assert in_key_order(ids, before)

            broker.kill()
            during = [event(key, seq) for seq in range(8, 16) for key in keys]
            await rig.write(during)

            async def stuck() -> bool:
                return (rig.relay.readiness() or "").startswith("cannot publish")

            await eventually(stuck, what="relay reported stuck")
            health = rig.relay.health
            assert health.unsent == len(during)
            assert health.oldest_unsent_seconds > 0
            assert "Kafka" in health.last_error or "Error" in health.last_error
            assert await rig.unsent() == len(during)  # nothing marked sent that Kafka did not take

            broker.start()  # same port, empty log, new cluster id
            everything = before + during
            ids = await read_all(broker.bootstrap, rig.topic, {e.id for e in everything})
            assert set(ids) >= {e.id for e in everything}
            assert in_key_order(ids, everything)

            async def healthy() -> bool:
                await rig.relay.measure()
                return rig.relay.readiness() is None and await rig.unsent() == 0

            await eventually(healthy, what="relay healthy with nothing unsent")
    finally:
        broker.stop()


async def test_a_record_the_broker_refuses_is_parked_and_only_its_key_waits(
    backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    async with relay_rig(backend.kafka_bootstrap, backend.mongo_uri, max_attempts=3) as rig:
        # 2 MB: more than the producer's max_request_size, refused every time.
        poison = event("customer-poison", 0, padding=2_000_000)
        behind = event("customer-poison", 1)
        others = [event(f"customer-{k}", seq) for k in range(3) for seq in range(3)]
        await rig.write([poison, behind, *others])

        await read_all(backend.kafka_bootstrap, rig.topic, {e.id for e in others})

        async def parked() -> bool:
            return (await rig.relay.measure()).parked == 1

        await eventually(parked, what="parked record")
        status = await outbox_status(rig.db)
        assert [p.id for p in status.parked] == [poison.id]
        assert status.parked[0].attempts == 3
        assert "MessageSizeTooLarge" in status.parked[0].reason
        assert status.parked[0].waiting_behind == 1
        assert status.unsent == 2
        assert "1 events parked" in (rig.relay.readiness() or "")
        # The record behind the parked one was never published (its key keeps its order).
        doc = await rig.db[OUTBOX].find_one({"_id": behind.id})
        assert doc is not None
        assert doc["sent"] is False

        # What an operator sees ...
        assert await run_outbox_command(admin().parse_args(["outbox", "status"]), rig.db) == 0
        shown = capsys.readouterr().out
        assert "parked: 1" in shown
        assert poison.id in shown
        assert "MessageSizeTooLarge" in shown
        assert "1 later events of its key wait" in shown
        # ... fixes the cause (here: the record shrinks) and unparks it.
        fixed = event("customer-poison", 0).model_copy(update={"id": poison.id})
        await rig.db[OUTBOX].update_one(
            {"_id": poison.id}, {"$set": {"value": fixed.model_dump_json().encode()}}
        )
        assert await run_outbox_command(admin().parse_args(["outbox", "unpark", poison.id]), rig.db) == 0
        rig.relay.wake()

        async def drained() -> bool:
            return await rig.unsent() == 0

        await eventually(drained, what="everything sent after unpark")
        ids = await read_all(backend.kafka_bootstrap, rig.topic, {poison.id, behind.id})
        assert ids.index(poison.id) < ids.index(behind.id)


async def test_flush_at_shutdown_gives_up_in_time_and_loses_nothing(backend: Backend, tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path)
    broker.start()
    try:
        async with relay_rig(broker.bootstrap, backend.mongo_uri) as rig:
            first = [event("customer-a", 0)]
            await rig.write(first)
            await read_all(broker.bootstrap, rig.topic, {first[0].id})
            broker.kill()
            await rig.write([event("customer-a", 1), event("customer-b", 0)])
            started = asyncio.get_running_loop().time()
            await rig.relay.flush(within=2.0)
            assert asyncio.get_running_loop().time() - started < 6.0
            assert await rig.unsent() == 2
    finally:
        broker.stop()


async def test_retention_forgets_old_sent_events_and_keeps_the_rest(backend: Backend) -> None:
    client = create_mongo_client(backend.mongo_uri, app_name="retention-test")
    db = client[f"retention_{uuid.uuid4().hex[:10]}"]
    try:
        await ensure_outbox_indexes(db)
        now = datetime.now(UTC)
        old_sent = {"_id": "a", "sent": True, "sent_at": now - timedelta(days=8), "key": "k"}
        recent_sent = {"_id": "b", "sent": True, "sent_at": now - timedelta(days=1), "key": "k"}
        old_unsent = {"_id": "c", "sent": False, "created_at": now - timedelta(days=30), "key": "k"}
        await db[OUTBOX].insert_many([old_sent, recent_sent, old_unsent])
        await db["processed_events"].insert_many(
            [{"_id": "x", "at": now - timedelta(days=31)}, {"_id": "y", "at": now - timedelta(days=2)}]
        )
        sweep = RetentionSweep(
            db,
            SystemClock(),
            [
                Retained(OUTBOX, "sent_at", timedelta(days=7)),
                Retained("processed_events", "at", timedelta(days=30)),
            ],
        )

        assert await sweep.sweep() == 2

        assert sorted(d["_id"] for d in await db[OUTBOX].find().to_list()) == ["b", "c"]
        assert [d["_id"] for d in await db["processed_events"].find().to_list()] == ["y"]
    finally:
        await client.drop_database(db.name)
        await client.close()
