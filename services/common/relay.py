"""The outbox relay: publishes the outbox to Kafka (acks=all), in order per key, through any outage.

- One relay per database publishes at a time (a lease), so one invoice's events keep their order.
- Per key, a record is published only after the one before it was acknowledged; keys go in parallel.
  A crash between publishing and marking publishes again: consumers dedupe by event id.
- Any broker error is survived: the relay backs off (capped) and tries again, for as long as it
  takes. While it cannot publish, `health()` says so (for /readyz) and the backlog gauges, measured
  by a loop of their own, keep moving.
- A record the broker keeps refusing while others pass (too large, a topic that does not exist, a
  denied ACL) is parked after bounded attempts (outbox.py); later records of its key wait behind
  it, other keys flow.
- When the broker's cluster id changes (the embedded broker restarted with an empty log, or a
  cluster was rebuilt), the retention window is published again (outbox.replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka import errors as kafka_errors
from faststream.kafka import KafkaBroker
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from pymongo import ASCENDING

from services.common import attributes as attr
from services.common.bus import BrokerLink
from services.common.clock import Clock
from services.common.events import attributes_from_headers
from services.common.lease import Lease
from services.common.mongo import Database, Doc, in_slices
from services.common.outbox import (
    OUTBOX,
    broker_cluster_seen,
    remember_broker_cluster,
    replay,
)
from services.common.retry import Backoff
from services.common.settings import CommonSettings
from services.common.telemetry import context_from_traceparent

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter("fordring.outbox")
_published = _meter.create_counter(
    "fordring_events_published", description="Events the outbox relay published to Kafka, by topic and type"
)
_publish_errors = _meter.create_counter(
    "fordring_outbox_publish_errors",
    description="Outbox records Kafka did not acknowledge, by error (each is tried again)",
)
_parked_total = _meter.create_counter(
    "fordring_outbox_parked_records",
    description="Outbox records parked after bounded attempts (they wait for an operator)",
)
_replayed_total = _meter.create_counter(
    "fordring_outbox_replayed", description="Sent outbox records queued to be published again"
)
_RELAYS: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()
# Unsent records read beyond a batch, for those skipped because their key waits.
_SKIP_ROOM = 1000

# The broker refuses this record (not the broker's state): counts towards parking at once.
RECORD_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.InvalidTopicError,
    kafka_errors.PolicyViolationError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidRequestError,
    kafka_errors.UnsupportedForMessageFormatError,
    kafka_errors.InvalidTimestampError,
    # A record the relay cannot even encode.
    KeyError,
    TypeError,
    ValueError,
)


def describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc).strip()
    if not text:
        return name
    return (text if text.startswith(name) else f"{name}: {text}")[:500]


@dataclass(frozen=True)
class RelaySettings:
    poll_seconds: float = 0.25
    batch_size: int = 500
    lease_seconds: float = 10.0
    # A key's records must all be acknowledged within this; longer counts as a failed attempt.
    send_timeout: float = 10.0
    # How long a round waits for slow keys before starting the next (they stay in flight).
    round_wait: float = 1.0
    # Records refused this many times (while the broker accepts others) are parked ...
    max_attempts: int = 8
    # ... and, when the error may be passing (a timeout, a missing leader), only after this long.
    park_after: float = 900.0
    # What is published again, automatically, when the broker's cluster id changes.
    replay_window: timedelta = timedelta(days=1)
    # How long the relay may fail before health() calls it stuck.
    stuck_after: float = 30.0
    # How often the backlog gauges are read, and the broker's cluster id when there is nothing to send
    # (with records to send it is read before every round).
    measure_every: float = 5.0
    cluster_check_every: float = 10.0

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> RelaySettings:
        return cls(
            poll_seconds=settings.outbox_poll_seconds,
            batch_size=settings.outbox_batch_size,
            send_timeout=settings.outbox_send_timeout,
            max_attempts=settings.outbox_max_attempts,
            park_after=settings.outbox_park_after_seconds,
            replay_window=timedelta(hours=settings.outbox_replay_hours),
            stuck_after=settings.outbox_stuck_seconds,
        )


@dataclass
class RelayHealth:
    """What /readyz and the metrics say about the relay."""

    failing_since: float | None = None
    last_error: str = ""
    last_success: float | None = None
    unsent: int = 0
    parked: int = 0
    oldest_unsent_seconds: float = 0.0
    measured_at: float | None = None

    def stuck_for(self, now: float) -> float:
        return now - self.failing_since if self.failing_since is not None else 0.0


@dataclass
class _KeyResult:
    key: str
    started: float
    sent: list[Doc] = field(default_factory=list)
    failed: Doc | None = None
    error: BaseException | None = None


def _observe(pick: Callable[[OutboxRelay], float]) -> Callable[[CallbackOptions], list[Observation]]:
    def observe(_options: CallbackOptions) -> list[Observation]:
        return [Observation(pick(r), {"relay": r.name}) for r in _RELAYS if r.health.measured_at]

    return observe


_meter.create_observable_gauge(
    "fordring_outbox_unsent",
    callbacks=[_observe(lambda r: r.health.unsent)],
    description="Events not yet published (parked ones included)",
)
_meter.create_observable_gauge(
    "fordring_outbox_oldest_unsent_seconds",
    callbacks=[_observe(lambda r: r.health.oldest_unsent_seconds)],
    description="Age of the oldest event not yet published (0 when none): how far Kafka is behind",
    unit="s",
)
_meter.create_observable_gauge(
    "fordring_outbox_parked",
    callbacks=[_observe(lambda r: r.health.parked)],
    description="Events parked after bounded attempts, waiting for an operator (outbox unpark)",
)
_meter.create_observable_gauge(
    "fordring_outbox_relay_failing_seconds",
    callbacks=[_observe(lambda r: r.health.stuck_for(time.monotonic()))],
    description="How long the relay has been unable to publish (0 when it publishes)",
    unit="s",
)


class OutboxRelay:
    """Publishes the outbox to Kafka. Run one per service replica; the lease lets one work at a time."""

    def __init__(
        self,
        db: Database,
        link: BrokerLink,
        clock: Clock,
        settings: RelaySettings | None = None,
        *,
        name: str = "outbox-relay",
        topic_prefix: str = "",
    ) -> None:
        self._db = db
        self._link = link
        self._broker: KafkaBroker = link.broker
        self._clock = clock
        self.settings = settings or RelaySettings()
        self._lease = Lease(db, name, clock, seconds=self.settings.lease_seconds)
        self.name = name
        # The outbox keeps logical topic names; the deployment's prefix is applied when publishing.
        self._prefix = topic_prefix
        self._wake = asyncio.Event()
        self._stopping = False
        self._backoff = Backoff(first=0.2, cap=10.0)
        self._inflight: dict[str, asyncio.Task[_KeyResult]] = {}
        # Keys whose last record failed wait until then (monotonic) before it is tried again.
        self._retry_at: dict[str, float] = {}
        self._first_failure: dict[str, float] = {}
        self._cluster_checked_at = 0.0
        # The cluster id this relay last published to (also kept in the database, per relay).
        self._cluster = ""
        self._parked: tuple[float, frozenset[str]] = (0.0, frozenset())
        self.health: RelayHealth = RelayHealth()
        self.published = 0
        _RELAYS.add(self)

    def wake(self) -> None:
        """Tell the relay something was just committed (saves it a poll interval)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # --- the loops ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish until stopped, whatever Kafka or MongoDB do; measure the backlog alongside."""
        measuring = asyncio.create_task(self._measure_forever(), name=f"{self.name}:measure")
        try:
            while not self._stopping:
                more = False
                # Cleared before the round, not after: a commit that wakes the relay while it
                # reads the outbox is seen at once instead of a poll interval later.
                self._wake.clear()
                try:
                    await self._link.ensure_connected()
                    if await self._lease.hold():
                        more = await self._round()
                    else:
                        # Another replica publishes; look again when its lease could have run out.
                        await self._drain_inflight(wait=0)
                        await self._pause(self.settings.lease_seconds / 3)
                        continue
                except Exception as exc:  # any failure: Kafka, MongoDB, a bug; never the end of the relay
                    self._failed(exc)
                    await self._pause(self._backoff.next())
                    continue
                if self.health.failing_since is not None:
                    await self._pause(self._backoff.next())
                elif not more:
                    await self._pause(self.settings.poll_seconds, idle=True)
        finally:
            measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await measuring
            await self._drain_inflight(wait=self.settings.send_timeout)

    async def flush(self, within: float) -> None:
        """Publish everything unsent (at shutdown), for at most `within` seconds. Whatever is left
        (the broker is away) stays in the outbox for the next start: nothing is lost."""
        try:
            async with asyncio.timeout(within):
                await self._link.ensure_connected()
                while await self._lease.hold():
                    more = await self._round()
                    if self.health.failing_since is not None:
                        break
                    if not more and not self._inflight:
                        break
        except Exception as exc:  # whatever stopped it, the records wait in the outbox
            log.warning("outbox relay: left unsent events for the next start (%s)", describe(exc))
        finally:
            await self._drain_inflight(wait=0)

    async def _pause(self, seconds: float, *, idle: bool = False) -> None:
        """Wait `seconds`, or less when woken. Idle (nothing to publish): a wake from during the
        round counts; otherwise (backoff) only a wake from now on, or a failing relay would retry
        at the pace of the commits."""
        if not idle:
            self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.health.failing_since is None:
            self.health.failing_since = now
        self.health.last_error = describe(exc)
        _publish_errors.add(1, {"relay": self.name, "error": type(exc).__name__})
        log.warning(
            "outbox relay %s cannot publish for %.0f s (%s); retrying",
            self.name,
            now - self.health.failing_since,
            self.health.last_error,
        )

    def _succeeded(self) -> None:
        if self.health.failing_since is not None:
            log.info(
                "outbox relay %s publishes again after %.0f s",
                self.name,
                time.monotonic() - self.health.failing_since,
            )
        self.health.failing_since = None
        self.health.last_success = time.monotonic()
        self._backoff.reset()

    # --- one round -----------------------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """One round, waiting for what it started (tests and tools); returns how many were published."""
        before = self.published
        await self._round()
        await self._drain_inflight(wait=self.settings.send_timeout)
        return self.published - before

    async def _round(self) -> bool:
        """Start publishing the next records of keys not already in flight; harvest what finished.
        Returns True when a full batch was taken (there is probably more)."""
        s = self.settings
        await self._harvest()
        room = s.batch_size - len(self._inflight)
        if room <= 0:
            await asyncio.wait(
                self._inflight.values(), timeout=s.round_wait, return_when=asyncio.FIRST_COMPLETED
            )
            await self._harvest()
            return True
        now = time.monotonic()
        self._retry_at = {k: t for k, t in self._retry_at.items() if t > now}
        blocked = set(self._inflight) | set(self._retry_at) | set(await self._parked_keys())
        # Only an equality in the query, so the (sent, _id) index serves it on every server; the
        # keys that wait (in flight, pausing, behind a parked record) are left out here.
        unsent = self._db[OUTBOX].find({"sent": False}).sort("_id", ASCENDING).limit(room + _SKIP_ROOM)
        docs = [d for d in await unsent.to_list() if d["key"] not in blocked and not d.get("parked")][:room]
        if (docs or now - self._cluster_checked_at > s.cluster_check_every) and await self._check_cluster():
            return True  # the replay window was queued again: start over from the oldest record
        groups: dict[str, list[Doc]] = {}
        for doc in docs:
            groups.setdefault(doc["key"], []).append(doc)
        started = []
        for key, group in groups.items():
            # A record that failed before goes alone until it passes; the rest of its key waits.
            records = group[:1] if group[0].get("attempts") else group
            task = asyncio.create_task(self._publish_key(key, records), name=f"{self.name}:{key}")
            self._inflight[key] = task
            started.append(task)
        if started:
            await asyncio.wait(started, timeout=s.round_wait)
        await self._harvest()
        return len(docs) >= room

    async def _parked_keys(self) -> frozenset[str]:
        """Keys with a parked record (read again every few seconds: an operator may unpark)."""
        read_at, keys = self._parked
        if time.monotonic() - read_at > self.settings.measure_every:
            docs = await self._db[OUTBOX].find({"parked": True}, projection={"key": 1}).to_list()
            keys = frozenset(d["key"] for d in docs)
            self._parked = (time.monotonic(), keys)
        return keys

    async def _publish_key(self, key: str, records: list[Doc]) -> _KeyResult:
        result = _KeyResult(key=key, started=time.monotonic())
        current: Doc | None = None
        try:
            async with asyncio.timeout(self.settings.send_timeout):
                for doc in records:
                    current = doc
                    await self._send(doc)
                    result.sent.append(doc)
                current = None
        except TimeoutError:
            result.failed = current
            result.error = TimeoutError(f"Kafka did not acknowledge within {self.settings.send_timeout:g} s")
        except Exception as exc:  # the broker's answer about this record, judged in _record_failure
            result.failed, result.error = current, exc
        return result

    async def _send(self, doc: Doc) -> None:
        span = tracer.start_span(
            f"{doc['topic']} outbox",
            context=context_from_traceparent(doc.get("traceparent", "")),
            kind=trace.SpanKind.INTERNAL,
            attributes={
                attr.EVENT_ID: doc["_id"],
                attr.EVENT_TYPE: doc["type"],
                **attributes_from_headers(doc.get("headers", {})),
            },
        )
        try:
            with trace.use_span(span, end_on_exit=False):
                future: asyncio.Future[Any] = await self._broker.publish(
                    doc["value"],
                    topic=self._prefix + doc["topic"],
                    key=doc["key"].encode(),
                    headers={"content-type": "application/json", **doc.get("headers", {})},
                    no_confirm=True,
                )
            await future
        except BaseException as exc:
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    async def _drain_inflight(self, wait: float) -> None:
        if self._inflight and wait > 0:
            await asyncio.wait(self._inflight.values(), timeout=wait)
        with contextlib.suppress(Exception):
            await self._harvest()
        for task in self._inflight.values():
            task.cancel()
        self._inflight.clear()

    async def _harvest(self) -> None:
        """Mark what was acknowledged as sent (one write), and judge what failed."""
        finished = [key for key, task in self._inflight.items() if task.done()]
        if not finished:
            return
        results = [self._inflight.pop(key).result() for key in finished]
        sent = [doc for r in results for doc in r.sent]
        if sent:
            now = self._clock.now()
            # In slices (`in_slices`): the embedded server matches every record it marks against the
            # whole `$in` list, twice; at 500 ids that was most of what marking cost it.
            for ids in in_slices([d["_id"] for d in sent]):
                await self._db[OUTBOX].update_many(
                    {"_id": {"$in": ids}},
                    {
                        "$set": {"sent": True, "sent_at": now},
                        "$unset": {"attempts": "", "last_error": "", "queued_at": "", "replayed": ""},
                    },
                )
            self.published += len(sent)
            for doc in sent:
                _published.add(1, {"topic": doc["topic"], "type": doc["type"]})
                self._first_failure.pop(doc["key"], None)
            self._succeeded()
        failures = [r for r in results if r.error is not None]
        outage: BaseException | None = None
        for r in failures:
            assert r.error is not None
            if await self._record_failure(r, others_passed=bool(sent)):
                continue
            outage = r.error
        if outage is not None and not sent:
            self._failed(outage)

    async def _record_failure(self, r: _KeyResult, *, others_passed: bool) -> bool:
        """Count an attempt against the record when the fault is the record's, not the broker's.
        Returns False when the broker itself seems away (an outage: the relay backs off)."""
        assert r.error is not None
        doc = r.failed
        error = describe(r.error)
        if doc is None:
            return False
        now = time.monotonic()
        self._first_failure.setdefault(r.key, now)
        record_fault = isinstance(r.error, RECORD_ERRORS)
        broker_fine = (
            record_fault
            or others_passed
            or (self.health.last_success or 0) > r.started
            or await self._link.reachable()
        )
        if not broker_fine:
            await self._db[OUTBOX].update_one({"_id": doc["_id"]}, {"$set": {"last_error": error}})
            return False
        attempts = int(doc.get("attempts", 0)) + 1
        update: Doc = {"attempts": attempts, "last_error": error, "last_attempt_at": self._clock.now()}
        failing_for = now - self._first_failure[r.key]
        park = attempts >= self.settings.max_attempts and (
            record_fault or failing_for >= self.settings.park_after
        )
        if park:
            update.update(parked=True, parked_at=self._clock.now())
            self._parked = (self._parked[0], self._parked[1] | {r.key})
            _parked_total.add(1, {"relay": self.name, "topic": doc["topic"]})
            log.error(
                "outbox relay %s parked event %s (%s on %s, key %s) after %d attempts: %s; later events "
                "of this key wait behind it. Fix the cause, then run `outbox unpark`.",
                self.name,
                doc["_id"],
                doc["type"],
                doc["topic"],
                doc["key"],
                attempts,
                error,
            )
            self._first_failure.pop(r.key, None)
        else:
            self._retry_at[r.key] = now + min(60.0, 0.5 * 2 ** (attempts - 1))
            log.warning(
                "outbox relay %s: event %s (%s) refused, attempt %d: %s",
                self.name,
                doc["_id"],
                doc["type"],
                attempts,
                error,
            )
        _publish_errors.add(1, {"relay": self.name, "error": type(r.error).__name__})
        await self._db[OUTBOX].update_one({"_id": doc["_id"]}, {"$set": update})
        return True

    # --- the broker's identity -----------------------------------------------------------------------

    async def _check_cluster(self) -> bool:
        """Before publishing: is this the cluster we published to? A new cluster id means the broker's
        log is not that one (the embedded broker restarted empty, a cluster was rebuilt): refresh the
        producer's metadata and queue the replay window again (consumers dedupe by event id).
        Returns True when the window was queued again."""
        self._cluster_checked_at = time.monotonic()
        cluster = await self._link.cluster_id()
        if not cluster or cluster == self._cluster:
            return False
        seen = await broker_cluster_seen(self._db, self.name)
        if seen == cluster:
            self._cluster = cluster
            return False
        await self._link.refresh_metadata()
        if seen:
            since = self._clock.now() - self.settings.replay_window
            count = await replay(self._db, since=since, until=None, now=self._clock.now())
            _replayed_total.add(count, {"relay": self.name})
            log.warning(
                "outbox relay %s: the Kafka cluster changed (%s -> %s), so its log is not the one we "
                "published to; publishing again the %d events since %s",
                self.name,
                seen,
                cluster,
                count,
                since.isoformat(timespec="seconds"),
            )
        await remember_broker_cluster(self._db, self.name, cluster, self._clock.now())
        self._cluster = cluster
        return bool(seen)

    # --- the backlog, measured on its own ------------------------------------------------------------

    async def _measure_forever(self) -> None:
        while True:
            try:
                await self.measure()
            except Exception as exc:  # measuring must not stop; the gauges keep their last value
                log.warning("outbox relay %s: could not measure the backlog (%s)", self.name, describe(exc))
            await asyncio.sleep(self.settings.measure_every)

    async def measure(self) -> RelayHealth:
        outbox = self._db[OUTBOX]
        unsent = await outbox.count_documents({"sent": False})
        parked = await outbox.count_documents({"parked": True}) if unsent else 0
        oldest = await outbox.find_one(
            {"sent": False}, sort=[("_id", ASCENDING)], projection={"created_at": 1, "queued_at": 1}
        )
        age = 0.0
        if oldest is not None:
            since = oldest.get("queued_at") or oldest["created_at"]
            age = max(0.0, (self._clock.now() - since).total_seconds())
        h = self.health
        h.unsent, h.parked, h.oldest_unsent_seconds = unsent, parked, age
        h.measured_at = time.monotonic()
        return h

    def readiness(self) -> str | None:
        """None when the relay publishes, else what an operator should know (for /readyz)."""
        h = self.health
        stuck = h.stuck_for(time.monotonic())
        problems = []
        if stuck >= self.settings.stuck_after:
            problems.append(
                f"cannot publish for {stuck:.0f} s ({h.last_error}); {h.unsent} events wait, "
                f"the oldest {h.oldest_unsent_seconds:.0f} s"
            )
        if h.parked:
            problems.append(f"{h.parked} events parked (see `outbox status`)")
        return "; ".join(problems) or None
