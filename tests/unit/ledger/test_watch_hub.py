"""The WatchInvoice hub against an in-memory invoices collection: fan-out, limits, resuming, idling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, suppress
from typing import Any, cast

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, OperationFailure

from services.common.errors import ResourceExhausted
from services.common.mongo import Doc
from services.ledger.watch import Watcher, WatchHub, WatchLimits

FAST = WatchLimits(per_tenant=50, total=80, buffer=4, idle_seconds=0.2, open_timeout=2.0, poll_ms=20)


class FakeInvoices:
    """The part of a MongoDB collection the hub uses: change streams with resume tokens, and find."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.changes: list[Doc] = []
        self.opened = 0
        self.open_now = 0
        self.history_lost = False
        self.break_streams = False
        self._grew = asyncio.Event()

    def write(self, invoice_id: str, version: int, tenant_id: str = "t1") -> Doc:
        doc = {"_id": invoice_id, "tenant_id": tenant_id, "version": version}
        self.docs[invoice_id] = doc
        token = {"_data": len(self.changes)}
        self.changes.append({"_id": token, "operationType": "replace", "fullDocument": doc})
        self._grew.set()
        return doc

    async def watch(
        self,
        pipeline: list[Doc],
        *,
        full_document: str,
        resume_after: Mapping[str, Any] | None,
        max_await_time_ms: int,
    ) -> FakeStream:
        if resume_after is not None and self.history_lost:
            raise OperationFailure("resume point no longer in the oplog", code=286)
        start = len(self.changes) if resume_after is None else int(resume_after["_data"]) + 1
        self.opened += 1
        return FakeStream(self, start, max_await_time_ms / 1000)

    async def find(self, query: Doc) -> AsyncIterator[Doc]:
        for invoice_id in query["_id"]["$in"]:
            if invoice_id in self.docs:
                yield self.docs[invoice_id]

    async def wait_for_change(self, timeout: float) -> None:
        self._grew.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._grew.wait(), timeout)


class FakeStream:
    def __init__(self, source: FakeInvoices, start: int, poll: float) -> None:
        self._source = source
        self._next = start
        self._poll = poll
        # Before any change: the position the stream started at (as postBatchResumeToken).
        self.resume_token: Mapping[str, Any] = {"_data": start - 1}

    async def __aenter__(self) -> FakeStream:
        self._source.open_now += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._source.open_now -= 1

    async def try_next(self) -> Doc | None:
        if self._next >= len(self._source.changes):
            await self._source.wait_for_change(self._poll)
        if self._source.break_streams:
            raise AutoReconnect("connection reset")
        if self._next >= len(self._source.changes):
            return None
        change = self._source.changes[self._next]
        self._next += 1
        self.resume_token = change["_id"]
        return change


def hub_on(invoices: FakeInvoices, limits: WatchLimits = FAST) -> WatchHub:
    return WatchHub(cast("AsyncCollection[Doc]", invoices), limits)


async def versions(watcher: Watcher, count: int) -> list[int]:
    seen = []
    for _ in range(count):
        doc = await asyncio.wait_for(watcher.next(), timeout=2)
        assert doc is not None
        seen.append(doc["version"])
    return seen


async def settle() -> None:
    """Long enough for the hub to take what was written (a few polls)."""
    await asyncio.sleep(0.1)


async def test_each_version_goes_to_the_watchers_of_that_invoice_only() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with (
        hub.watch("t1", "A") as a1,
        hub.watch("t1", "A") as a2,
        hub.watch("t1", "B") as b,
        hub.watch("t2", "A") as foreign,
    ):
        for version in (1, 2, 3):
            invoices.write("A", version)
        invoices.write("B", 1)
        await settle()

        assert await versions(a1, 3) == [1, 2, 3]
        assert await versions(a2, 3) == [1, 2, 3]
        assert await versions(b, 1) == [1]
        # Another tenant's watcher of the same id gets nothing of t1's.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(foreign.next(), timeout=0.1)
    await hub.close()


async def test_many_watchers_share_one_stream() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with AsyncExitStack() as stack:
        watchers = [await stack.enter_async_context(hub.watch("t1", f"I{n % 5}")) for n in range(50)]
        invoices.write("I3", 2)
        await settle()
        assert [await versions(w, 1) for w in watchers if w.invoice_id == "I3"] == [[2]] * 10
        assert (invoices.opened, invoices.open_now) == (1, 1)
        assert hub.stats.watchers == 50
        assert (hub.stats.streams_open, hub.stats.streams_opened) == (1, 1)
    assert hub.stats.watchers == 0
    await hub.close()
    assert invoices.open_now == 0


async def test_the_first_message_is_the_newest_and_nothing_older_follows() -> None:
    invoices = FakeInvoices()
    invoices.write("A", 1)
    hub = hub_on(invoices)
    async with hub.watch("t1", "A") as watcher:
        read_before_the_change = dict(invoices.docs["A"])
        invoices.write("A", 2)  # between the registration and the read
        await settle()
        assert watcher.begin(read_before_the_change)["version"] == 2
        invoices.write("A", 3)
        await settle()
        assert await versions(watcher, 1) == [3]
    await hub.close()


async def test_a_slow_watcher_keeps_only_the_newest_few_versions() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with hub.watch("t1", "A") as slow:
        for version in range(1, 21):
            invoices.write("A", version)
        await settle()
        assert await versions(slow, FAST.buffer) == [17, 18, 19, 20]
        assert hub.stats.skipped_versions == 16
    await hub.close()


async def test_watchers_are_capped_per_tenant_and_per_replica() -> None:
    hub = hub_on(FakeInvoices())
    async with AsyncExitStack() as stack:
        for _ in range(FAST.per_tenant):
            await stack.enter_async_context(hub.watch("t1", "A"))
        with pytest.raises(ResourceExhausted, match="tenant already watches 50 invoices"):
            await stack.enter_async_context(hub.watch("t1", "B"))
        for _ in range(FAST.total - FAST.per_tenant):
            await stack.enter_async_context(hub.watch("t2", "C"))
        with pytest.raises(ResourceExhausted, match="server already serves 80"):
            await stack.enter_async_context(hub.watch("t3", "D"))
        assert hub.stats.watchers == FAST.total
    assert hub.stats.watchers == 0
    await hub.close()


async def test_leaving_frees_a_slot() -> None:
    hub = hub_on(FakeInvoices(), WatchLimits(per_tenant=2, total=3, idle_seconds=0.2, poll_ms=20))
    async with hub.watch("t1", "A"), hub.watch("t1", "A"):
        with pytest.raises(ResourceExhausted):
            async with hub.watch("t1", "A"):
                pass
    async with hub.watch("t1", "A"), hub.watch("t1", "A"):
        assert hub.stats.watchers == 2
    await hub.close()


async def test_after_an_error_the_stream_resumes_where_it_was() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with hub.watch("t1", "A") as watcher:
        invoices.write("A", 1)
        await settle()
        invoices.break_streams = True
        await settle()
        invoices.write("A", 2)  # while the stream is down
        invoices.write("A", 3)
        invoices.break_streams = False
        assert await versions(watcher, 3) == [1, 2, 3]
        assert hub.stats.resumes >= 1
        assert hub.stats.fresh_starts == 0
    await hub.close()


async def test_when_the_resume_point_is_lost_the_watchers_catch_up_by_a_read() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with hub.watch("t1", "A") as watcher:
        invoices.write("A", 1)
        await settle()
        invoices.break_streams = True
        invoices.history_lost = True
        await settle()
        invoices.write("A", 2)
        invoices.write("A", 3)
        invoices.break_streams = False
        # Version 2 is gone with the history; the read brings the invoice as it is now.
        assert await versions(watcher, 2) == [1, 3]
        assert hub.stats.fresh_starts == 1
    await hub.close()


async def test_the_stream_closes_when_nobody_watches_and_opens_again_for_the_next() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with hub.watch("t1", "A"):
        await settle()
    assert invoices.open_now == 1  # kept a while for the next watcher
    await asyncio.sleep(FAST.idle_seconds + 0.2)
    assert (invoices.open_now, hub.stats.streams_open) == (0, 0)
    async with hub.watch("t1", "A") as watcher:
        invoices.write("A", 7)
        assert await versions(watcher, 1) == [7]
        assert (invoices.opened, invoices.open_now) == (2, 1)
    await hub.close()


async def test_closing_ends_every_watch_and_the_stream() -> None:
    invoices = FakeInvoices()
    hub = hub_on(invoices)
    async with hub.watch("t1", "A") as watcher:
        waiting = asyncio.create_task(watcher.next())
        await settle()
        await asyncio.wait_for(hub.close(), timeout=2)
        assert await asyncio.wait_for(waiting, timeout=1) is None
        assert invoices.open_now == 0
    async with hub.watch("t1", "A") as late:
        assert await late.next() is None
