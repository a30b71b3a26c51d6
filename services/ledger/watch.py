"""WatchInvoice's fan-out: one change stream per replica, its changes handed to watchers in memory.

A change stream holds a pooled MongoDB connection while it waits on the server for the next change.
One stream per WatchInvoice call let ~100 open calls take the whole pool, and every other call
(/readyz too) waited for a connection. The hub follows the invoices collection with one stream,
opened when the first watcher arrives and closed when none has been left for a while; after an error
it resumes from its resume token, so no change is lost. Each watcher keeps at most `buffer` versions,
the newest: one that reads slowly skips older ones instead of making the hub hold everything for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from services.common.errors import ResourceExhausted, safe_error_text
from services.common.mongo import Doc
from services.common.retry import Backoff

log = logging.getLogger(__name__)

# An invoice changes by replace (a new version) or update (a history entry); a new one is nobody's yet.
_PIPELINE = [{"$match": {"operationType": {"$in": ["replace", "update"]}}}]
# After these a resume token is of no use: the stream starts afresh and the watchers catch up by a read
# (InvalidResumeToken, ChangeStreamFatalError, ChangeStreamHistoryLost).
_TOKEN_LOST = frozenset({260, 280, 286})


@dataclass(frozen=True)
class WatchLimits:
    per_tenant: int = 1000
    total: int = 10_000
    # Versions a watcher may fall behind before the older ones are skipped.
    buffer: int = 8
    # The stream stays open this long after the last watcher left (watchers come and go in bursts).
    idle_seconds: float = 30.0
    # A new watcher waits this long for the stream to open before its call fails UNAVAILABLE.
    open_timeout: float = 10.0
    # The longest one getMore waits on the server for a change (and so the hub's reaction time).
    poll_ms: int = 1000


@dataclass
class _Position:
    """Where the stream is: the resume token of the last change seen (or of the stream's start)."""

    token: Mapping[str, Any] | None = None


@dataclass
class WatchStats:
    watchers: int = 0
    streams_open: int = 0
    streams_opened: int = 0
    resumes: int = 0
    fresh_starts: int = 0
    changes: int = 0
    skipped_versions: int = 0


class Watcher:
    """One WatchInvoice call: the versions of its invoice not yet sent, oldest first; at most
    `buffer` of them, the newest (a watcher that falls further behind skips the older ones)."""

    def __init__(self, tenant_id: str, invoice_id: str, buffer: int, stats: WatchStats) -> None:
        self.tenant_id = tenant_id
        self.invoice_id = invoice_id
        self._buffer = buffer
        self._stats = stats
        self._pending: deque[Doc] = deque()
        self._version = 0
        self._wake = asyncio.Event()
        self.closed = False

    def offer(self, doc: Doc) -> None:
        """A version of the invoice; one not newer than the newest offered so far is ignored."""
        if self.closed or doc.get("tenant_id") != self.tenant_id or doc["version"] <= self._version:
            return
        self._version = doc["version"]
        if len(self._pending) >= self._buffer:
            self._pending.popleft()
            self._stats.skipped_versions += 1
        self._pending.append(doc)
        self._wake.set()

    def begin(self, current: Doc) -> Doc:
        """The first message: `current`, read after the watcher was registered, or a newer version
        the stream brought meanwhile. Nothing older than it is sent after it."""
        self.offer(current)
        first = self._pending[-1] if self._pending else current
        self._pending.clear()
        return first

    async def next(self) -> Doc | None:
        """The next version to send, once there is one; None when the watch is over."""
        while not self._pending:
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self.closed:
            return None
        return self._pending.popleft()

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._wake.set()


class WatchHub:
    """The invoices change stream of one replica and the watchers it serves."""

    def __init__(self, invoices: AsyncCollection[Doc], limits: WatchLimits | None = None) -> None:
        self._invoices = invoices
        self.limits = limits or WatchLimits()
        self._stats = WatchStats()
        self._by_invoice: dict[str, set[Watcher]] = {}
        self._per_tenant: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._idle_since = 0.0
        self._closed = False

    @property
    def stats(self) -> WatchStats:
        return replace(self._stats)

    @contextlib.asynccontextmanager
    async def watch(self, tenant_id: str, invoice_id: str) -> AsyncIterator[Watcher]:
        """Follow one invoice of a tenant: every version written after this returns reaches the
        watcher. Raises ResourceExhausted when the tenant, or this replica, watches too many."""
        watcher = self._add(tenant_id, invoice_id)
        try:
            await self._until_ready()
            yield watcher
        finally:
            self._remove(watcher)

    async def close(self) -> None:
        """End every watch (their calls finish cleanly) and the stream."""
        self._closed = True
        for group in self._by_invoice.values():
            for watcher in group:
                watcher.close()
        self._ready.set()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    # --- watchers ------------------------------------------------------------------------------

    def _add(self, tenant_id: str, invoice_id: str) -> Watcher:
        if self._per_tenant[tenant_id] >= self.limits.per_tenant:
            raise ResourceExhausted(
                f"this tenant already watches {self.limits.per_tenant} invoices on this server, the most "
                "it may; end a WatchInvoice call before opening another"
            )
        if self._stats.watchers >= self.limits.total:
            raise ResourceExhausted(
                f"this server already serves {self.limits.total} WatchInvoice calls, the most it may; "
                "try again later"
            )
        watcher = Watcher(tenant_id, invoice_id, self.limits.buffer, self._stats)
        self._by_invoice.setdefault(invoice_id, set()).add(watcher)
        self._per_tenant[tenant_id] += 1
        self._stats.watchers += 1
        if self._closed:
            watcher.close()
        elif self._task is None:
            self._start()
        return watcher

    def _remove(self, watcher: Watcher) -> None:
        watcher.close()
        group = self._by_invoice.get(watcher.invoice_id)
        if group is not None:
            group.discard(watcher)
            if not group:
                del self._by_invoice[watcher.invoice_id]
        self._per_tenant[watcher.tenant_id] -= 1
        if not self._per_tenant[watcher.tenant_id]:
            del self._per_tenant[watcher.tenant_id]
        self._stats.watchers -= 1
        if not self._stats.watchers:
            self._idle_since = asyncio.get_running_loop().time()

    async def _until_ready(self) -> None:
        if self._ready.is_set():
            return
        try:
            await asyncio.wait_for(self._ready.wait(), self.limits.open_timeout)
        except TimeoutError:
            raise ConnectionFailure("the invoices change stream did not open") from None

    def _dispatch(self, doc: Doc) -> None:
        for watcher in self._by_invoice.get(doc["_id"], ()):
            watcher.offer(doc)

    # --- the stream ----------------------------------------------------------------------------

    def _start(self) -> None:
        self._ready.clear()
        # A context of its own: the stream serves no one caller's trace or tenant.
        task = asyncio.create_task(self._follow(), name="invoice-watch", context=contextvars.Context())
        self._task = task
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task is self._task:
            self._task = None
        if task.cancelled() or (exc := task.exception()) is None:
            return
        # A bug, not an outage (those are retried): end the calls, whose clients then watch again.
        log.error("invoice watch stopped: %s; ending its watchers", safe_error_text(exc), exc_info=exc)
        for group in self._by_invoice.values():
            for watcher in group:
                watcher.close()

    def _retire_if_idle(self) -> bool:
        """Stop following when nobody has watched for a while; a later watcher starts a new stream."""
        if self._closed:
            return True
        idle = asyncio.get_running_loop().time() - self._idle_since >= self.limits.idle_seconds
        if self._stats.watchers or not idle:
            return False
        if self._task is asyncio.current_task():
            self._task = None
            self._ready.clear()
        return True

    async def _follow(self) -> None:
        # The stream's getMore every `poll_ms` would be a trace of its own each time: not traced.
        with suppress_instrumentation():
            position = _Position()
            backoff = Backoff(first=0.2, cap=5.0)
            while not self._retire_if_idle():
                opened = self._stats.streams_opened
                try:
                    await self._stream(position)
                except PyMongoError as exc:
                    if self._stats.streams_opened > opened:
                        backoff.reset()
                    if isinstance(exc, OperationFailure) and (
                        exc.code in _TOKEN_LOST or exc.has_error_label("NonResumableChangeStreamError")
                    ):
                        position.token = None
                    delay = backoff.next()
                    log.warning(
                        "invoice watch: change stream interrupted (%s); %s in %.1f s",
                        safe_error_text(exc),
                        "resuming" if position.token is not None else "starting afresh",
                        delay,
                    )
                    await asyncio.sleep(delay)
                else:
                    return

    async def _stream(self, position: _Position) -> None:
        """Follow the stream from `position` (or from now) until the hub is idle or closed."""
        async with await self._invoices.watch(
            _PIPELINE,
            full_document="updateLookup",
            resume_after=position.token,
            max_await_time_ms=self.limits.poll_ms,
        ) as stream:
            self._stats.streams_opened += 1
            self._stats.streams_open += 1
            try:
                if position.token is not None:
                    self._stats.resumes += 1
                elif self._ready.is_set():
                    # What changed between the lost position and now was not seen: read what is watched.
                    self._stats.fresh_starts += 1
                    await self._catch_up()
                position.token = stream.resume_token
                self._ready.set()
                while not self._retire_if_idle():
                    change = await stream.try_next()
                    position.token = stream.resume_token
                    if change is not None:
                        self._stats.changes += 1
                        doc = change.get("fullDocument")
                        if doc is not None:
                            self._dispatch(doc)
            finally:
                self._stats.streams_open -= 1

    async def _catch_up(self) -> None:
        ids = list(self._by_invoice)
        if ids:
            async for doc in self._invoices.find({"_id": {"$in": ids}}):
                self._dispatch(doc)
