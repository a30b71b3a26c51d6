"""Live invoice pages: one WatchInvoice stream per invoice in a replica, however many pages of it
are open, and each version's page fragments rendered once for all of them.

A page's stream (server-sent events) subscribes to its invoice's feed. The feed keeps the newest
update; a subscriber that reads slowly skips to it (a page shows the invoice as it is, not every
step). The ledger stream is opened by the first subscriber, reopened with backoff after an error,
and closed when the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from services.common.retry import Backoff
from services.portal.clients import Clients

log = logging.getLogger(__name__)
Update = ledger_pb.WatchInvoiceResponse
# The hubs of this process (one per portal app), for the gauges.
_HUBS: weakref.WeakSet[LiveHub] = weakref.WeakSet()


def _observe_pages(_: CallbackOptions) -> list[Observation]:
    return [Observation(sum(hub.open for hub in _HUBS))]


def _observe_feeds(_: CallbackOptions) -> list[Observation]:
    return [Observation(sum(hub.feeds for hub in _HUBS))]


_meter = metrics.get_meter("fordring.portal")
_meter.create_observable_gauge(
    "fordring_live_pages", [_observe_pages], description="Open live invoice pages (event streams)"
)
_meter.create_observable_gauge(
    "fordring_live_feeds", [_observe_feeds], description="Invoices followed on the ledger (one stream each)"
)


@dataclass(eq=False)
class Subscriber:
    latest: Update | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, update: Update) -> None:
        if self.latest is None or update.invoice.version > self.latest.invoice.version:
            self.latest = update
            self.wake.set()

    async def next(self, within: float, stopping: asyncio.Event) -> Update | None:
        """The newest update not yet taken; None when there was none within `within` seconds (or
        the replica is stopping)."""
        if self.latest is None:
            waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stopping.wait())]
            try:
                await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        update, self.latest = self.latest, None
        self.wake.clear()
        return update


@dataclass(eq=False)
class _Feed:
    subscribers: set[Subscriber] = field(default_factory=set)
    latest: Update | None = None
    task: asyncio.Task[None] | None = None


class LiveHub:
    def __init__(self, clients: Clients, *, limit: int) -> None:
        self._clients = clients
        self._limit = limit
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._rendered: OrderedDict[tuple[object, ...], asyncio.Future[object]] = OrderedDict()
        self.open = 0
        meter = metrics.get_meter("fordring.portal")
        meter.create_observable_gauge(
            "fordring_live_pages", [self._observe_open], description="Open live invoice pages (event streams)"
        )
        meter.create_observable_gauge(
            "fordring_live_feeds",
            [self._observe_feeds],
            description="Invoices followed on the ledger (one stream each)",
        )

    def _observe_open(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self.open)]

    def _observe_feeds(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(len(self._feeds))]

    @property
    def feeds(self) -> int:
        return len(self._feeds)

    @property
    def full(self) -> bool:
        return self.open >= self._limit

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: str, invoice_id: str) -> AsyncIterator[Subscriber]:
        key = (tenant_id, invoice_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed()
            feed.task = asyncio.create_task(self._follow(key, feed), name=f"live {invoice_id}")
        subscriber = Subscriber()
        if feed.latest is not None:
            subscriber.offer(feed.latest)
        feed.subscribers.add(subscriber)
        self.open += 1
        try:
            yield subscriber
        finally:
            self.open -= 1
            feed.subscribers.discard(subscriber)
            if not feed.subscribers and self._feeds.get(key) is feed:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()

    async def _follow(self, key: tuple[str, str], feed: _Feed) -> None:
        backoff = Backoff(first=0.5, cap=15.0)
        while True:  # until the last subscriber leaves (the task is cancelled)
            try:
                async for update in self._clients.watch(*key):
                    backoff.reset()
                    feed.latest = update
                    for subscriber in list(feed.subscribers):
                        subscriber.offer(update)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the ledger went away or refused: try again while pages are open
                log.info("live feed of %s: %s", key[1], exc)
            await asyncio.sleep(backoff.next())

    async def rendered(self, key: tuple[object, ...], make: Callable[[], Awaitable[object]]) -> object:
        """What `make` gives for `key` (an invoice version in a language), made once for every page
        that asks while it is the newest (a small cache of recent ones)."""
        found = self._rendered.get(key)
        if found is None or (found.done() and found.exception() is not None):
            found = asyncio.ensure_future(make())
            self._rendered[key] = found
            while len(self._rendered) > 256:
                self._rendered.popitem(last=False)
        return await asyncio.shield(found)

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
        self._feeds.clear()
