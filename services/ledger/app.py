"""Wiring: build the ledger from settings, start it, stop it gracefully."""

from __future__ import annotations

import asyncio
import logging
from zoneinfo import ZoneInfo

from fordring.ledger.v1 import (
    consents_pb2_grpc,
    ledger_pb2,
    ledger_pb2_grpc,
    notes_pb2_grpc,
    tenants_pb2_grpc,
    terms_pb2_grpc,
)
from opentelemetry import trace
from pymongo.errors import PyMongoError

from services.common import attributes as attr
from services.common.clock import Clock, local_today
from services.common.lease import Lease
from services.common.mongo import Doc, ping
from services.common.runtime import ServiceRuntime, serve_until_signal
from services.common.telemetry import (
    current_trace_id,
    current_traceparent,
    link_to,
    traced,
)
from services.common.tenancy import Tenant
from services.ledger.api import LedgerApi
from services.ledger.changes import Changes
from services.ledger.consents import SERVICE_NAME as CONSENTS_SERVICE
from services.ledger.consents import CustomerConsentApi
from services.ledger.deliveries import DeliveryLog
from services.ledger.directory_api import SERVICE_NAME as DIRECTORY_SERVICE
from services.ledger.directory_api import TenantDirectoryApi
from services.ledger.documents import Ctx
from services.ledger.domain.status import InvoiceStatus
from services.ledger.handlers import ProposalHandlers, register
from services.ledger.issuing import Issuer
from services.ledger.lifecycle import mark_overdue
from services.ledger.notes import ensure_note_indexes
from services.ledger.notes_api import SERVICE_NAME as NOTES_SERVICE
from services.ledger.notes_api import InvoiceNoteApi
from services.ledger.profiles import ensure_profile
from services.ledger.sandbox import SANDBOX_ORG_NUMBER, sandbox_profile
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore
from services.ledger.tenants import TenantDirectory
from services.ledger.terms import SERVICE_NAME as TERMS_SERVICE
from services.ledger.terms import InvoiceTermsApi
from services.ledger.watch import WatchHub, WatchLimits

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

SANDBOX_TENANT_ID = "sandbox"
LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerApp:
    """One ledger replica: gRPC API, proposal consumers, outbox relay, overdue sweep, HTTP side port."""

    def __init__(self, settings: LedgerSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.runtime = ServiceRuntime(settings, clock=clock)
        self.clock = self.runtime.clock
        self.mongo = self.runtime.mongo
        self.broker = self.runtime.broker
        self.link = self.runtime.link
        self.relay = self.runtime.relay
        self.http = self.runtime.http
        self.store = LedgerStore(self.mongo, settings.mongo_database)
        self.tenants = TenantDirectory(self.store)
        self.changes = Changes(self.store, on_commit=self.relay.wake)
        self.issuer = Issuer(self.store, on_commit=self.relay.wake)
        self.deliveries = DeliveryLog(self.store)
        register(
            self.broker,
            settings,
            ProposalHandlers(self.changes, self.tenants, self.clock),
            self.deliveries,
            settings.consumer_group,
        )
        # The tenant directory is for Fordring's own services only (the service credential).
        self.grpc = self.runtime.grpc_server(self.tenants, internal=frozenset({DIRECTORY_SERVICE}))
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
        notes = InvoiceNoteApi(self.changes, self.clock)
        self.grpc.add(
            lambda server: notes_pb2_grpc.add_InvoiceNoteServiceServicer_to_server(notes, server),
            NOTES_SERVICE,
        )
        consents = CustomerConsentApi(self.changes, self.clock)
        self.grpc.add(
            lambda server: consents_pb2_grpc.add_CustomerConsentServiceServicer_to_server(consents, server),
            CONSENTS_SERVICE,
        )
        terms = InvoiceTermsApi(self.changes, self.clock)
        self.grpc.add(
            lambda server: terms_pb2_grpc.add_InvoiceTermsServiceServicer_to_server(terms, server),
            TERMS_SERVICE,
        )
        directory = TenantDirectoryApi(self.store, self.tenants)
        self.grpc.add(
            lambda server: tenants_pb2_grpc.add_TenantDirectoryServiceServicer_to_server(directory, server),
            DIRECTORY_SERVICE,
        )
        self._sweep_lease = Lease(self.store.db, "overdue-sweep", self.clock, seconds=60)

    @property
    def consumers_ready(self) -> asyncio.Event:
        return self.runtime.consumers_ready

    async def start(self) -> None:
        await ping(self.mongo)
        await self.runtime.sync_clock()
        await self.store.ensure_indexes()
        await ensure_note_indexes(self.store.db)
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
        await self.runtime.start()
        self.runtime.spawn(self._sweep_overdue_forever(), "overdue-sweep")
        await self.runtime.serve(self.grpc)
        log.info("ledger ready: gRPC on %s, HTTP on %s", self.grpc.port, self.http.port)

    async def stop(self) -> None:
        """Stop taking calls, finish what is in flight, publish what is committed, close."""
        # Open WatchInvoice calls end now, cleanly, rather than hold the server for the whole grace.
        await self.watch_hub.close()
        await self.runtime.stop_serving(self.grpc)
        await self.issuer.stop()
        await self.runtime.stop()

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
        """Every FORDRING_OVERDUE_SWEEP_SECONDS, and at once when the sandbox clock jumps."""
        while not self.runtime.stopping.is_set():
            try:
                if await self._sweep_lease.hold():
                    await self.sweep_overdue()
            except PyMongoError as exc:
                log.warning("overdue sweep: %s", exc)
            await self.runtime.pause(self.settings.overdue_sweep_seconds)


async def serve(settings: LedgerSettings) -> None:
    await serve_until_signal(LedgerApp(settings), "ledger")
