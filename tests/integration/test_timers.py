"""Durable timers on the real database: due work is done by one replica at a time, never lost when
a holder dies, put back with backoff when its handler fails, and scheduled once per id."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from services.common.mongo import Database, create_mongo_client, in_transaction
from services.common.timers import Bucket, Timer, Timers, bucket_due
from tests.support.backends import Backend
from tests.support.clock import MovableClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[Database]:
    client = create_mongo_client(backend.mongo_uri, app_name="timers-test")
    try:
        yield client[f"timers_{uuid.uuid4().hex[:12]}"]
    finally:
        await client.close()


async def test_many_replicas_each_timer_done_once(db: Database) -> None:
    clock = MovableClock()
    replicas = [Timers(db, clock, batch=7, poll_seconds=0.05, lease_seconds=30) for _ in range(4)]
    await replicas[0].ensure_indexes()
    now = clock.now()
    for n in range(200):
        assert await replicas[0].schedule(f"t-{n}", "work", now, {"n": n})
    assert not await replicas[0].schedule("t-0", "work", now, {"n": 0}), "the same id is scheduled once"
    done: Counter[int] = Counter()
    stopping = asyncio.Event()

    def handler(timers: Timers):  # type: ignore[no-untyped-def]
        async def handle(batch: list[Timer]) -> None:
            for timer in batch:
                done[timer.payload["n"]] += 1
            await asyncio.sleep(0.01)
            await in_transaction(db.client, lambda s: timers.complete([t.id for t in batch], session=s))

        return handle

    runs = [asyncio.create_task(r.run({"work": handler(r)}, stopping)) for r in replicas]
    for _ in range(200):
        if sum(done.values()) >= 200:
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.gather(*runs)
    assert sorted(done) == list(range(200))
    assert set(done.values()) == {1}, "a timer was handled twice"
    assert await db["timers"].count_documents({}) == 0


async def test_a_dead_holders_timers_are_taken_over_after_the_lease(db: Database) -> None:
    clock = MovableClock()
    dead = Timers(db, clock, lease_seconds=60)
    alive = Timers(db, clock, lease_seconds=60)
    await dead.schedule("letter", "work", clock.now(), {})
    claimed = await dead.claim()
    assert [t.id for t in claimed] == ["letter"]
    assert await alive.claim() == [], "held by the other replica"
    clock.advance(timedelta(seconds=61))
    taken = await alive.claim()
    assert [t.id for t in taken] == ["letter"]
    await dead.complete(["letter"])  # the old holder's late completion changes nothing
    assert await db["timers"].count_documents({}) == 1
    await alive.complete(["letter"])
    assert await db["timers"].count_documents({}) == 0


async def test_a_failing_handler_puts_its_timers_back_with_backoff(db: Database) -> None:
    clock = MovableClock()
    timers = Timers(db, clock)
    await timers.schedule("flaky", "work", clock.now(), {})

    async def broken(batch: list[Timer]) -> None:
        raise ConnectionError("provider away")

    assert await timers.run_once({"work": broken}) == 1
    doc = await db["timers"].find_one({"_id": "flaky"})
    assert doc is not None
    assert doc["attempts"] == 1
    assert doc["due_at"] > clock.now()
    assert "provider away" in doc["last_error"]
    assert await timers.claim() == [], "not due again before its backoff"
    count, late = await timers.backlog()
    assert (count, late) == (0, 0.0)


async def test_items_due_together_share_a_bucket_and_none_is_lost(db: Database) -> None:
    clock = MovableClock()
    timers = Timers(db, clock)
    number, due = bucket_due(clock.now() + timedelta(seconds=3), 0.5)
    assert due >= clock.now() + timedelta(seconds=3)
    key = f"watch:t:{number}"
    await timers.add_to_buckets({key: Bucket("watch", due, ("d1", "d2"), {"rule": "r"})})
    await timers.add_to_buckets({key: Bucket("watch", due, ("d2", "d3"), {"rule": "r"})})
    assert await db["timers"].count_documents({}) == 1
    clock.advance(timedelta(seconds=4))
    (claimed,) = await timers.claim()
    assert sorted(claimed.payload["items"]) == ["d1", "d2", "d3"]
    assert claimed.payload["rule"] == "r"
    # Added while the handler worked: kept for the next claim, the done ones are not.
    await timers.add_to_buckets({key: Bucket("watch", due, ("d4",), {"rule": "r"})})
    await timers.complete_bucket(claimed)
    (again,) = await timers.claim()
    assert again.payload["items"] == ["d4"]
    await timers.complete_bucket(again)
    assert await db["timers"].count_documents({}) == 0
