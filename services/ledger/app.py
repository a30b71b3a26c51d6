"""Wiring: build the ledger from settings, start it, stop it gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from opentelemetry import trace
from pymongo.errors import PyMongoError

from services.common import attributes as attr
from services.common.bus import PROCESSED, BrokerLink, create_broker
from services.common.clock import Clock, SystemClock, local_today
from services.common.grpc_server import GrpcServer
from services.common.http_port import HttpPort
from services.common.lease import Lease
from services.common.mongo import Doc, create_mongo_client, ping
from services.common.outbox import OUTBOX
from services.common.relay import OutboxRelay, RelaySettings
from services.common.retention import Retained, RetentionSweep
from services.common.retry import Backoff
from services.common.telemetry import (
    current_trace_id,
    current_traceparent,
    link_to,
    setup_telemetry,
    traced,
)
from services.common.tenancy import Tenant
from services.ledger.api import LedgerApi
from services.ledger.changes import Changes
from services.ledger.documents import Ctx
from services.ledger.domain.status import InvoiceStatus
from services.ledger.handlers import ProposalHandlers, register
from services.ledger.issuing import Issuer
from services.ledger.lifecycle import mark_overdue
from services.ledger.profiles import ensure_profile
from services.ledger.sandbox import SANDBOX_ORG_NUMBER, sandbox_profile
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore
from services.ledger.tenants import TenantDirectory
from services.ledger.watch import WatchHub, WatchLimits

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

SANDBOX_TENANT_ID = "sandbox"
LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerApp:
    """One ledger replica: gRPC API, proposal consumers, outbox relay, overdue sweep, HTTP side port."""

    def __init__(self, settings: LedgerSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        setup_telemetry(settings.service_name)
        self.mongo = create_mongo_client(settings.mongo_uri, app_name=f"fordring-{settings.service_name}")
        self.store = LedgerStore(self.mongo, settings.mongo_database)
        self.broker = create_broker(settings)
        self.link = BrokerLink(self.broker, settings.kafka_bootstrap)
        self.relay = OutboxRelay(
            self.store.db,
            self.link,
            self.clock,
            RelaySettings.from_settings(settings),
            topic_prefix=settings.topic_prefix,
        )
        self.tenants = TenantDirectory(self.store)
        self.retention = RetentionSweep(
            self.store.db,
            self.clock,
            [
                Retained(OUTBOX, "sent_at", timedelta(hours=settings.outbox_retention_hours)),
                Retained(PROCESSED, "at", timedelta(days=settings.processed_retention_days)),
            ],
        )
        self.changes = Changes(self.store, on_commit=self.relay.wake)
        self.issuer = Issuer(self.store, on_commit=self.relay.wake)
        register(
            self.broker,
            settings,
            ProposalHandlers(self.changes, self.tenants, self.clock),
            settings.consumer_group,
        )
        self.grpc = GrpcServer(settings.grpc_host, settings.grpc_port, self.tenants)
        self.watch_hub = WatchHub(
            self.store.invoices,
            WatchLimits(
                per_tenant=settings.watch_max_per_tenant,
                total=settings.watch_max_total,
                buffer=settings.watch_buffer,
            ),
        )
        api = LedgerApi(self.changes, self.issuer, self.clock, watch=self.watch_hub)
        self.grpc.add(
            lambda server: ledger_pb2_grpc.add_LedgerServiceServicer_to_server(api, server), LEDGER_SERVICE
        )
        self.http = HttpPort(
            settings.http_host,
            settings.http_port,
            {"mongodb": lambda: ping(self.mongo), "kafka": self.link.check, "outbox": self._outbox_ready},
            alive=self._alive,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._sweep_lease = Lease(self.store.db, "overdue-sweep", self.clock, seconds=60)
        self._stopping = asyncio.Event()
        self.consumers_ready = asyncio.Event()

    async def _outbox_ready(self) -> None:
        problem = self.relay.readiness()
        if problem is not None:
            raise RuntimeError(problem)

    def _alive(self) -> str | None:
        """A task that must run for the life of the process ended: restart the process."""
        for task in self._tasks:
            if task.done() and not self._stopping.is_set() and task.get_name() != "consumers":
                return f"{task.get_name()} stopped"
        return None

    async def start(self) -> None:
        await ping(self.mongo)
        await self.store.ensure_indexes()
        if self.settings.sandbox_api_key:
            name = self.settings.sandbox_tenant_name
            await self.store.ensure_tenant(
                Tenant(id=SANDBOX_TENANT_ID, name=name, org_number=SANDBOX_ORG_NUMBER),
                self.settings.sandbox_api_key,
                key_name="sandbox",
                now=self.clock.now(),
            )
            # Made once; what an operator changes later stays.
            await ensure_profile(
                self.store,
                SANDBOX_TENANT_ID,
                sandbox_profile(name),
                now=self.clock.now(),
                actor="ledger:sandbox",
            )
        # The API does not wait for Kafka: invoices go to the outbox and are published once the
        # broker is there. Consumer groups take seconds to join, so they start in the background.
        self._tasks = [
            asyncio.create_task(self._start_consumers(), name="consumers"),
            asyncio.create_task(self.relay.run(), name="outbox-relay"),
            asyncio.create_task(self.link.watch_cluster(), name="kafka-cluster-watch"),
            asyncio.create_task(self._sweep_overdue_forever(), name="overdue-sweep"),
            asyncio.create_task(self.retention.run(), name="retention-sweep"),
        ]
        await self.http.start()
        await self.grpc.start()
        log.info("ledger ready: gRPC on %s, HTTP on %s", self.grpc.port, self.http.port)

    async def _start_consumers(self) -> None:
        backoff = Backoff(first=0.5, cap=10.0)
        while not self._stopping.is_set():
            try:
                await self.link.ensure_connected()
                await self.broker.start()
            except (OSError, KafkaError) as exc:
                delay = backoff.next()
                log.warning("Kafka consumers could not start (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            else:
                self.consumers_ready.set()
                return

    async def stop(self) -> None:
        """Stop taking calls, finish what is in flight, publish what is committed, close."""
        grace = self.settings.shutdown_grace
        self._stopping.set()
        # Open WatchInvoice calls end now, cleanly, rather than hold the server for the whole grace.
        await self.watch_hub.close()
        await self.grpc.stop(grace)
        await self.issuer.stop()
        # Consumers still joining their groups have nothing in flight: do not wait for the join; the
        # cluster watch and the retention sweep hold nothing either.
        for task in self._tasks:
            if task.get_name() in ("consumers", "kafka-cluster-watch", "retention-sweep") and not task.done():
                task.cancel()
        self.relay.stop()
        await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        # What was committed goes out now rather than at the next start (within the grace period).
        await self.relay.flush(within=grace)
        with contextlib.suppress(Exception):  # a broker that is away has nothing of ours to close
            await self.broker.stop()
        await self.http.stop()
        await self.mongo.close()

    async def sweep_overdue(self) -> int:
        """Mark every invoice past its due date overdue, tenant by tenant, each by its own "today";
        returns how many moved. Oldest due first, in index-backed pages: interrupted, the next sweep
        carries on (what moved is no longer a candidate)."""
        moved = 0
        async for tenant in self.store.all_tenants():
            moved += await self._sweep_tenant(tenant)
            if not await self._sweep_lease.hold():  # another replica took over
                break
        return moved

    async def _sweep_tenant(self, tenant: Tenant) -> int:
        today = local_today(self.clock, ZoneInfo(tenant.timezone))
        moved = 0
        for status in (InvoiceStatus.OPEN, InvoiceStatus.PART_PAID):
            after: tuple[str, str] | None = None
            while True:
                page = await self.store.due_before(
                    tenant.id, str(status), today.isoformat(), after=after, limit=500
                )
                for doc in page:
                    moved += await self._mark_overdue(tenant, doc)
                if len(page) < 500:
                    break
                after = (page[-1]["due_date"], page[-1]["_id"])
        return moved

    async def _mark_overdue(self, tenant: Tenant, doc: Doc) -> int:
        # A step of its own (no caller's trace to join), linked to the invoice's origin (ARCHITECTURE §6).
        with traced(
            "ledger.mark_overdue",
            links=link_to(doc.get("origin_traceparent", "")),
            attributes={attr.INVOICE_ID: doc["_id"], attr.TENANT_ID: tenant.id},
        ):
            ctx = Ctx(
                tenant=tenant,
                actor="ledger",
                now=self.clock.now(),
                today=local_today(self.clock, ZoneInfo(tenant.timezone)),
                trace_id=current_trace_id(),
                traceparent=current_traceparent(),
            )
            return int(await mark_overdue(self.changes, ctx, doc["_id"]))

    async def _sweep_overdue_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                if await self._sweep_lease.hold():
                    await self.sweep_overdue()
            except PyMongoError as exc:
                log.warning("overdue sweep: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.overdue_sweep_seconds)


async def serve(settings: LedgerSettings) -> None:
    app = LedgerApp(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        await stop.wait()
        log.info("ledger stopping")
    finally:
        await app.stop()
