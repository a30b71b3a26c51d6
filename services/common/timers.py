"""Durable timers: work due at a time, done by one replica at a time, never lost.

A timer is a document in the service's `timers` collection: a kind, when it is due, a payload. Any
number of replicas run `Timers.run`; each claims due timers with a lease (owner and lease end, set
in one conditional update), runs the kind's handler on them, and the handler completes each timer
(`complete`, inside the transaction of its effect, so a timer is done exactly when its effect is
stored) or puts it back for later (`retry`). A replica that dies holding timers loses the lease and
another takes them over: handlers run at least once and must be idempotent, but never at the same
time in two replicas.

Timers are written in the transaction of the change that makes them due (`insert_doc` /
`schedule(session=…)`): a delivery and the timer that sends it exist together or not at all.

A timer may carry many items (`payload["items"]`, see `Bucket` and `item_timer_doc`): one document
written, claimed and completed for a batch of work instead of one each. Its `weight` (how many items)
counts against the claim's `batch`; the handler takes items out as it finishes them (`take_items`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import metrics
from pymongo import ASCENDING, UpdateOne

from services.common.clock import Clock
from services.common.ids import new_id
from services.common.mongo import Collection, Database, Doc, Session
from services.common.retry import Backoff

log = logging.getLogger(__name__)

TIMERS = "timers"
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_meter = metrics.get_meter("fordring.timers")
_FIRED = _meter.create_counter("fordring_timers_fired", description="Timers handed to their handler, by kind")


@dataclass(frozen=True)
class Timer:
    id: str
    kind: str
    tenant_id: str
    due_at: datetime
    payload: Mapping[str, Any]
    # How many times the handler put it back (provider errors, an outage).
    attempts: int = 0
    # What it counts for in a claim's batch (an item timer: its items).
    weight: int = 1

    @classmethod
    def from_doc(cls, doc: Doc) -> Timer:
        return cls(
            id=doc["_id"],
            kind=doc["kind"],
            tenant_id=doc.get("tenant_id", ""),
            due_at=doc["due_at"],
            payload=doc.get("payload", {}),
            attempts=doc.get("attempts", 0),
            weight=weight_of(doc),
        )


@dataclass(frozen=True)
class Bucket:
    """Items due at one moment, kept in one timer (`Timers.add_to_buckets`)."""

    kind: str
    due_at: datetime
    items: tuple[str, ...]
    payload: Mapping[str, Any]
    tenant_id: str = ""


def bucket_due(due: datetime, granularity: float) -> tuple[int, datetime]:
    """The bucket a due time falls in (its number) and the bucket's due time, never before `due`."""
    number = math.ceil(due.timestamp() / granularity)
    return number, datetime.fromtimestamp(number * granularity, tz=UTC)


# A handler gets the claimed timers of its kind and completes or retries each of them; a timer it
# leaves alone is claimed again when the lease runs out.
Handler = Callable[[list[Timer]], Awaitable[None]]


def timer_doc(
    timer_id: str, kind: str, due_at: datetime, payload: Mapping[str, Any], *, tenant_id: str = ""
) -> Doc:
    return {
        "_id": timer_id,
        "kind": kind,
        "tenant_id": tenant_id,
        "due_at": due_at,
        "payload": dict(payload),
        "attempts": 0,
        "owner": "",
        "lease_until": _NEVER,
    }


def item_timer_doc(
    timer_id: str, kind: str, due_at: datetime, items: Sequence[str], *, tenant_id: str = ""
) -> Doc:
    """One timer for many items of the same work (`payload["items"]`), weighing as many in a claim."""
    doc = timer_doc(timer_id, kind, due_at, {"items": list(items)}, tenant_id=tenant_id)
    doc["weight"] = len(items)
    return doc


def weight_of(doc: Mapping[str, Any]) -> int:
    """How much of a claim's batch a timer takes: its items for an item timer, else one."""
    return max(1, int(doc.get("weight", 1)))


class Timers:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        lease_seconds: float = 60.0,
        batch: int = 64,
        poll_seconds: float = 0.5,
        collection: str = TIMERS,
    ) -> None:
        self._timers = db[collection]
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._batch = batch
        self._poll = poll_seconds
        self.owner = f"{socket.gethostname()}:{new_id()}"
        self._wake = asyncio.Event()

    async def ensure_indexes(self) -> None:
        # One index: every timer is written at least twice (scheduled, done), and the claim reads
        # the due ones in due order whatever their kind.
        await self._timers.create_index([("due_at", ASCENDING)], name="due")

    def wake(self) -> None:
        """Look for due timers now (a change just made one due) instead of at the next poll."""
        self._wake.set()

    async def schedule(
        self,
        timer_id: str,
        kind: str,
        due_at: datetime,
        payload: Mapping[str, Any],
        *,
        tenant_id: str = "",
        session: Session | None = None,
    ) -> bool:
        """Add a timer unless one with this id exists (ids name what the timer does, so scheduling
        the same work twice schedules it once). True when it was added."""
        result = await self._timers.update_one(
            {"_id": timer_id},
            {"$setOnInsert": timer_doc(timer_id, kind, due_at, payload, tenant_id=tenant_id)},
            upsert=True,
            session=session,
        )
        return result.upserted_id is not None

    async def insert_many(self, docs: Sequence[Doc], *, session: Session | None = None) -> None:
        """New timers that cannot exist yet (made in the transaction that made what they act on):
        a plain insert, cheaper than `schedule_many`'s upserts."""
        if docs:
            await self._timers.insert_many(list(docs), ordered=False, session=session)

    async def schedule_many(self, docs: Sequence[Doc], *, session: Session | None = None) -> None:
        """`schedule` for many timers (made with `timer_doc`) in one write."""
        if docs:
            await self._timers.bulk_write(
                [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in docs],
                ordered=False,
                session=session,
            )

    async def add_to_buckets(self, buckets: Mapping[str, Bucket], *, session: Session | None = None) -> None:
        """Add items to bucket timers (made if missing): many items due in the same moment share one
        timer document instead of one each. The handler gets the items in `payload["items"]`."""
        ops = []
        for timer_id, bucket in buckets.items():
            insert = {
                "kind": bucket.kind,
                "tenant_id": bucket.tenant_id,
                "due_at": bucket.due_at,
                "attempts": 0,
                "owner": "",
                "lease_until": _NEVER,
                **{f"payload.{k}": v for k, v in bucket.payload.items()},
            }
            ops.append(
                UpdateOne(
                    {"_id": timer_id},
                    {"$setOnInsert": insert, "$addToSet": {"payload.items": {"$each": list(bucket.items)}}},
                    upsert=True,
                )
            )
        if ops:
            await self._timers.bulk_write(ops, ordered=False, session=session)

    async def complete_bucket(self, timer: Timer, *, session: Session | None = None) -> None:
        """Done with the items the handler got; items added meanwhile stay, for the next claim."""
        done = list(timer.payload.get("items", []))
        result = await self._timers.delete_one(
            {"_id": timer.id, "owner": self.owner, "payload.items": {"$size": len(done)}}, session=session
        )
        if result.deleted_count == 0:
            await self._timers.update_one(
                {"_id": timer.id, "owner": self.owner},
                {"$pullAll": {"payload.items": done}, "$set": {"owner": "", "lease_until": _NEVER}},
                session=session,
            )

    async def take_items(
        self, timer: Timer, items: Sequence[str], *, last: bool, session: Session | None = None
    ) -> None:
        """Done with these items of an item timer (`item_timer_doc`) this replica holds; `last`: they
        are all that was left of it, and the timer goes."""
        if last:
            await self.complete([timer.id], session=session)
        elif items:
            await self._timers.update_one(
                {"_id": timer.id, "owner": self.owner},
                {"$pullAll": {"payload.items": list(items)}, "$inc": {"weight": -len(items)}},
                session=session,
            )

    async def cancel(self, timer_ids: Sequence[str], *, session: Session | None = None) -> int:
        if not timer_ids:
            return 0
        result = await self._timers.delete_many({"_id": {"$in": list(timer_ids)}}, session=session)
        return result.deleted_count

    async def complete(self, timer_ids: Sequence[str], *, session: Session | None = None) -> None:
        """Done: inside the transaction of the timer's effect (only the holder of the lease may)."""
        if timer_ids:
            await self._timers.delete_many(
                {"_id": {"$in": list(timer_ids)}, "owner": self.owner}, session=session
            )

    async def extend(self, timer_ids: Sequence[str]) -> None:
        """Keep the lease on timers still being worked on (a long batch of slow sends): a lease that
        ran out would let another replica do them again."""
        if timer_ids:
            await self._timers.update_many(
                {"_id": {"$in": list(timer_ids)}, "owner": self.owner},
                {"$set": {"lease_until": self._clock.now() + self._lease}},
            )

    @property
    def collection(self) -> Collection:
        """For handlers that write their timers themselves, in the transaction of their effect (always
        with `owner: self.owner` in the filter: only the holder of the lease may)."""
        return self._timers

    @property
    def lease_seconds(self) -> float:
        return self._lease.total_seconds()

    async def retry(self, timer: Timer, after: float, error: str, *, session: Session | None = None) -> None:
        """Put a timer back, due `after` seconds from now, with why it did not work."""
        await self._timers.update_one(
            {"_id": timer.id, "owner": self.owner},
            {
                "$set": {
                    "due_at": self._clock.now() + timedelta(seconds=after),
                    "lease_until": _NEVER,
                    "owner": "",
                    "last_error": error[:500],
                },
                "$inc": {"attempts": 1},
            },
            session=session,
        )

    async def claim(self, kinds: Sequence[str] | None = None) -> list[Timer]:
        """Take the lease on due timers (oldest first) that nobody holds, up to `batch` of them by
        weight (an item timer weighs its items; the last one taken may go past `batch`)."""
        now = self._clock.now()
        due: Doc = {"due_at": {"$lte": now}, "lease_until": {"$lt": now}}
        if kinds is not None:
            due["kind"] = {"$in": list(kinds)}
        candidates = (
            await self._timers.find(due, projection={"_id": 1, "weight": 1})
            .sort("due_at", ASCENDING)
            .limit(self._batch)
            .to_list()
        )
        if not candidates:
            return []
        ids, weight = [], 0
        for candidate in candidates:
            if weight >= self._batch:
                break
            ids.append(candidate["_id"])
            weight += weight_of(candidate)
        until = now + self._lease
        await self._timers.update_many(
            {"_id": {"$in": ids}, "lease_until": {"$lt": now}},
            {"$set": {"owner": self.owner, "lease_until": until}},
        )
        mine = await self._timers.find(
            {"_id": {"$in": ids}, "owner": self.owner, "lease_until": until}
        ).to_list()
        return sorted((Timer.from_doc(d) for d in mine), key=lambda t: t.due_at)

    async def backlog(self) -> tuple[int, float]:
        """How many timers are due and how late the oldest is (seconds), for /metrics and /readyz."""
        now = self._clock.now()
        count = await self._timers.count_documents({"due_at": {"$lte": now}})
        oldest = await self._timers.find_one({"due_at": {"$lte": now}}, sort=[("due_at", ASCENDING)])
        late = (now - oldest["due_at"]).total_seconds() if oldest else 0.0
        return count, late

    async def run_once(self, handlers: Mapping[str, Handler]) -> int:
        """Claim due timers and hand them to their handlers (kinds in parallel); how many were due
        (by weight: an item timer counts its items)."""
        claimed = await self.claim(list(handlers))
        by_kind: dict[str, list[Timer]] = {}
        for timer in claimed:
            by_kind.setdefault(timer.kind, []).append(timer)
        results = await asyncio.gather(
            *(self._handle(handlers[kind], kind, timers) for kind, timers in by_kind.items()),
            return_exceptions=True,
        )
        for kind, result in zip(by_kind, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("timers: the %s handler failed (%s); its timers come again later", kind, result)
        return sum(t.weight for t in claimed)

    async def _handle(self, handler: Handler, kind: str, timers: list[Timer]) -> None:
        _FIRED.add(len(timers), {"kind": kind})
        try:
            await handler(timers)
        except Exception as exc:
            # An outage (database, a dependency): every timer of the batch is put back with backoff.
            for timer in timers:
                with contextlib.suppress(Exception):
                    await self.retry(timer, Backoff.delay_for(timer.attempts), f"{type(exc).__name__}: {exc}")
            raise

    async def run(self, handlers: Mapping[str, Handler], stopping: asyncio.Event) -> None:
        """Work through due timers until `stopping` is set: at once while a claim comes back full,
        else after a poll interval (or a `wake`)."""
        backoff = Backoff(first=0.5, cap=10.0)
        while not stopping.is_set():
            try:
                claimed = await self.run_once(handlers)
            except Exception as exc:  # the database is away: try again later, nothing is lost
                delay = backoff.next()
                log.warning("timers: cannot claim (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                continue
            backoff.reset()
            if claimed >= self._batch:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(self._wake, stopping), timeout=self._poll)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
