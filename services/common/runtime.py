"""What every Fordring service runs besides its own work: MongoDB, the Kafka link, the outbox relay,
the retention sweep, the consumers (started in the background, never blocking the API), the HTTP
side port with its checks, the sandbox clock when there is one, and a graceful stop. A service builds
one and adds its own parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol

from aiokafka.errors import KafkaError
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from pymongo.errors import PyMongoError

from services.common.bus import PROCESSED, BrokerLink, create_broker
from services.common.clock import Clock, SandboxClock, SystemClock, isoformat_utc
from services.common.grpc_server import GrpcServer
from services.common.http_port import AsgiApp, HttpPort, ReadinessCheck
from services.common.mongo import Database, create_mongo_client, ping
from services.common.outbox import OUTBOX
from services.common.relay import OutboxRelay, RelaySettings
from services.common.retention import Retained, RetentionSweep
from services.common.retry import Backoff
from services.common.sandbox_clock import sandbox_clock
from services.common.settings import CommonSettings
from services.common.telemetry import setup_telemetry
from services.common.tenancy import TenantResolver

log = logging.getLogger(__name__)

# Tasks that hold nothing in flight: a stop cancels them at once.
_IDLE_AT_STOP = frozenset({"consumers", "kafka-cluster-watch", "retention-sweep", "sandbox-clock"})
# How often a sandbox clock reads the stack's offset.
SANDBOX_CLOCK_REFRESH_SECONDS = 0.5

# The sandbox clocks of this process's runtimes, by their service's name.
_SANDBOX_CLOCKS: weakref.WeakKeyDictionary[SandboxClock, str] = weakref.WeakKeyDictionary()


def _observe_sandbox_offset(_options: CallbackOptions) -> list[Observation]:
    return [Observation(clock.offset_seconds, {"service": name}) for clock, name in _SANDBOX_CLOCKS.items()]


metrics.get_meter("fordring.runtime").create_observable_gauge(
    "fordring_sandbox_clock_offset_seconds",
    callbacks=[_observe_sandbox_offset],
    description="How far the sandbox clock runs ahead of the real time (only with FORDRING_SANDBOX_CLOCK)",
    unit="s",
)


class ServiceRuntime:
    """The common machinery of one service replica. `db` is the service's own database."""

    def __init__(
        self,
        settings: CommonSettings,
        *,
        clock: Clock | None = None,
        retained: tuple[Retained, ...] = (),
    ) -> None:
        self.settings = settings
        setup_telemetry(settings.service_name)
        self.mongo = create_mongo_client(settings.mongo_uri, app_name=f"fordring-{settings.service_name}")
        self.db: Database = self.mongo[settings.mongo_database]
        if clock is None and settings.sandbox_clock:
            clock = sandbox_clock(self.mongo[settings.sandbox_clock_database])
        self.clock: Clock = clock or SystemClock()
        if isinstance(self.clock, SandboxClock):
            _SANDBOX_CLOCKS[self.clock] = settings.service_name
        self.broker = create_broker(settings)
        self.link = BrokerLink(self.broker, settings.kafka_bootstrap)
        self.relay = OutboxRelay(
            self.db,
            self.link,
            self.clock,
            RelaySettings.from_settings(settings),
            topic_prefix=settings.topic_prefix,
        )
        self.retention = RetentionSweep(
            self.db,
            # A sandbox stack keeps things by the real time: they are kept for redelivery and replay,
            # which happen in real time, and a jump of its clock would forget at once the event ids a
            # consumer just applied. (Its stamps are never behind the real time: kept longer, not less.)
            SystemClock() if isinstance(self.clock, SandboxClock) else self.clock,
            [
                Retained(OUTBOX, "sent_at", timedelta(hours=settings.outbox_retention_hours)),
                Retained(PROCESSED, "at", timedelta(days=settings.processed_retention_days)),
                *retained,
            ],
        )
        self.consumers_ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._once: set[str] = set()
        self._serving = False
        self._http_api = False
        self._checks: dict[str, ReadinessCheck] = {
            "mongodb": lambda: ping(self.mongo),
            "kafka": self.link.check,
            "outbox": self._outbox_ready,
            "grpc": self._grpc_ready,
        }
        self.http = HttpPort(settings.http_host, settings.http_port, self._checks, alive=self._alive)

    def grpc_server(self, resolver: TenantResolver, *, internal: frozenset[str] = frozenset()) -> GrpcServer:
        return GrpcServer(
            self.settings.grpc_host,
            self.settings.grpc_port,
            resolver,
            service_token=self.settings.service_token,
            internal=internal,
        )

    async def serve(self, server: GrpcServer) -> None:
        """Start the gRPC API; from now on the replica is ready (its /readyz said "starting" until
        the database was prepared and the API served)."""
        await server.start()
        self._serving = True

    def serve_app(self, app: AsgiApp) -> None:
        """A service whose API is HTTP (the portal): `app` is served on the HTTP side port from `start`
        on, beside /healthz, /readyz and /metrics, and the replica is ready from then (its readiness
        check "http" stands where the others have "grpc")."""
        self.http.mount(app, grace=self.settings.shutdown_grace)
        self._http_api = True
        self._checks["http"] = self._checks.pop("grpc")

    async def stop_serving(self, server: GrpcServer) -> None:
        """Not ready any more (the load balancer stops sending), then finish the calls in flight."""
        self._serving = False
        await server.stop(self.settings.shutdown_grace)

    async def _grpc_ready(self) -> None:
        if not self._serving:
            raise RuntimeError("not serving (starting or stopping)")

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def _outbox_ready(self) -> None:
        problem = self.relay.readiness()
        if problem is not None:
            raise RuntimeError(problem)

    def _alive(self) -> str | None:
        """A task that must run for the life of the process ended: restart the process."""
        for task in self._tasks:
            if task.done() and not self.stopping.is_set() and task.get_name() not in self._once:
                return f"{task.get_name()} stopped"
        return None

    def spawn(self, work: Coroutine[Any, Any, None], name: str, *, once: bool = False) -> None:
        """A task for the life of the process (its end before a stop fails /healthz), or one that
        ends when its work is done (`once`: starting the consumers, warming a cache)."""
        if once:
            self._once.add(name)
        self._tasks.append(asyncio.create_task(work, name=name))

    def spawn_every(self, seconds: float, work: Callable[[], Awaitable[object]], name: str) -> None:
        """Run `work` now and then every `seconds` until the stop (a round that fails is logged and
        the next one tried), and at once when the sandbox clock jumps."""

        async def rounds() -> None:
            while not self.stopping.is_set():
                try:
                    await work()
                except Exception:
                    log.warning("%s failed; trying again in %.0f s", name, seconds, exc_info=True)
                await self.pause(seconds)

        self.spawn(rounds(), name)

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less: until the stop, or until the sandbox clock jumps forward (work that
        looks for what is due by the clock looks again at once)."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.stopping.wait())]
        if isinstance(self.clock, SandboxClock):
            waits.append(asyncio.ensure_future(self.clock.moved()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def sync_clock(self) -> None:
        """Read the sandbox clock's offset now (`start` does it first; a service that uses the clock
        before it starts the runtime calls this before)."""
        if isinstance(self.clock, SandboxClock):
            await self.clock.refresh()

    async def _follow_sandbox_clock(self, clock: SandboxClock) -> None:
        failing = False
        while not self.stopping.is_set():
            try:
                if await clock.refresh():
                    log.info(
                        "sandbox clock: now %s, %.2f days ahead of the real time",
                        isoformat_utc(clock.now()),
                        clock.offset_seconds / 86400,
                    )
                failing = False
            except PyMongoError as exc:
                if not failing:
                    log.warning("sandbox clock: cannot read the offset (%s); keeping the last one", exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=SANDBOX_CLOCK_REFRESH_SECONDS)

    async def start(self) -> None:
        """Check the database, then start the background work; Kafka is not waited for."""
        await ping(self.mongo)
        await self.sync_clock()
        if isinstance(self.clock, SandboxClock):
            self.spawn(self._follow_sandbox_clock(self.clock), "sandbox-clock")
        self.spawn(self._start_consumers(), "consumers", once=True)
        self.spawn(self.relay.run(), "outbox-relay")
        self.spawn(self.link.watch_cluster(), "kafka-cluster-watch")
        self.spawn(self.retention.run(), "retention-sweep")
        await self.http.start()
        if self._http_api:
            self._serving = True

    async def _start_consumers(self) -> None:
        backoff = Backoff(first=0.5, cap=10.0)
        while not self.stopping.is_set():
            try:
                await self.link.ensure_connected()
                await self.broker.start()
            except (OSError, KafkaError) as exc:
                delay = backoff.next()
                log.warning("Kafka consumers could not start (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            else:
                self.consumers_ready.set()
                return

    async def stop(self, before_close: Callable[[], Awaitable[None]] | None = None) -> None:
        """Let the tasks finish (within the grace), publish what is committed, close. The service
        stops its gRPC server (and whatever feeds its outbox) before calling this."""
        grace = self.settings.shutdown_grace
        self._serving = False
        self.stopping.set()
        for task in self._tasks:
            if task.get_name() in _IDLE_AT_STOP and not task.done():
                task.cancel()
        self.relay.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        # What was committed goes out now rather than at the next start (within the grace period).
        await self.relay.flush(within=grace)
        with contextlib.suppress(Exception):  # a broker that is away has nothing of ours to close
            await self.broker.stop()
        if before_close is not None:
            await before_close()
        await self.http.stop()
        await self.mongo.close()


class Stoppable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signal(app: Stoppable, name: str) -> None:
    """Start, run until SIGTERM or SIGINT, stop gracefully (also when the start fails)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        await stop.wait()
        log.info("%s stopping", name)
    finally:
        await app.stop()
