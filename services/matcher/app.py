"""Wiring: build the matcher from settings, start it, stop it gracefully."""

from __future__ import annotations

import asyncio
import logging

from fordring.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from services.common.cache import ExpiringLru
from services.common.clock import Clock
from services.common.directory import DirectoryClient
from services.common.events import CUSTOMER_TOPIC, INVOICE_TOPIC
from services.common.ledger_client import LedgerClient
from services.common.runtime import ServiceRuntime, serve_until_signal
from services.matcher.api import MatcherApi
from services.matcher.book import Books, Projection
from services.matcher.domain.open_items import normalise_account
from services.matcher.freshness import Freshness
from services.matcher.handlers import register
from services.matcher.importing import Importer
from services.matcher.review import Resolver
from services.matcher.settings import MatcherSettings
from services.matcher.store import MatcherStore

log = logging.getLogger(__name__)
MATCHER_SERVICE = matcher_pb2.DESCRIPTOR.services_by_name["MatcherService"].full_name
_meter = metrics.get_meter("fordring.matcher")


class MatcherApp:
    """One matcher replica: the gRPC API (imports, the review queue), the consumers that keep the
    open items, the resumption of imports a replica left unfinished, the outbox."""

    def __init__(self, settings: MatcherSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.runtime = ServiceRuntime(settings, clock=clock)
        self.clock = self.runtime.clock
        self.store = MatcherStore(self.runtime.mongo, settings.mongo_database)
        self.directory = DirectoryClient(settings.ledger_target, settings.service_token, caller="matcher")
        self.ledger = LedgerClient(settings.ledger_target, settings.service_token, caller="matcher")
        self.books = Books(self.store, self.clock)
        self.projection = Projection(self.store, self.clock, self.ledger)
        wake = self.runtime.relay.wake
        self.freshness = Freshness(settings, settings.consumer_group, (INVOICE_TOPIC, CUSTOMER_TOPIC))
        self.importer = Importer(
            self.store,
            self.books,
            self.clock,
            batch=settings.import_batch,
            lease_seconds=settings.import_lease_seconds,
            on_commit=wake,
            catch_up=self._catch_up,
            own_accounts=self._own_accounts,
            other_account=settings.other_account,
        )
        self.resolver = Resolver(self.store, self.books, self.importer, self.clock, on_commit=wake)
        register(self.runtime.broker, settings, self.projection, settings.consumer_group)
        self.grpc = self.runtime.grpc_server(self.directory)
        api = MatcherApi(self.store, self.importer, self.resolver, settings.max_file_bytes)
        self.grpc.add(
            lambda server: matcher_pb2_grpc.add_MatcherServiceServicer_to_server(api, server), MATCHER_SERVICE
        )
        self._review_queue = 0
        self._accounts: ExpiringLru[frozenset[str]] = ExpiringLru(1000)
        _meter.create_observable_gauge(
            "fordring_matcher_review_queue", [self._observe_queue], description="Payments waiting in review"
        )
        _meter.create_observable_gauge(
            "fordring_matcher_open_items",
            [self._observe_items],
            description="Invoices in the loaded books (open and recently closed)",
        )

    async def _own_accounts(self, tenant_id: str) -> frozenset[str]:
        """The accounts the creditor's profile names (compared as the matcher compares accounts)."""
        hit, cached = self._accounts.get(tenant_id)
        if hit and cached is not None:
            return cached
        profile = await self.ledger.creditor_profile(tenant_id)
        given = (
            ()
            if profile is None
            else (profile.bank_account, profile.iban, profile.bankgiro, profile.plusgiro)
        )
        accounts = frozenset(filter(None, map(normalise_account, given)))
        self._accounts.put(tenant_id, accounts, 60)
        return accounts

    async def _catch_up(self) -> None:
        if self.settings.catch_up_seconds > 0:
            await self.freshness.wait(self.settings.catch_up_seconds)

    def _observe_queue(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._review_queue)]

    def _observe_items(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(sum(len(book.items) for book in self.books.loaded()))]

    @property
    def consumers_ready(self) -> asyncio.Event:
        return self.runtime.consumers_ready

    async def start(self) -> None:
        await self.runtime.start()
        await self.store.ensure_indexes()
        self.runtime.spawn(self._warm(), "book-warmup", once=True)
        # Imports a replica left running are finished here (checked now and every half lease).
        resume_every = max(1.0, self.settings.import_lease_seconds / 2)
        self.runtime.spawn_every(resume_every, self.importer.resume_interrupted, "import-resume")
        self.runtime.spawn_every(15, self._count_review_queue, "review-queue")
        await self.runtime.serve(self.grpc)
        log.info("matcher ready: gRPC on %s, HTTP on %s", self.grpc.port, self.runtime.http.port)

    async def _warm(self) -> None:
        """Read the books of the tenants with open items now, so the first import does not wait for it."""
        try:
            for tenant_id in await self.store.items.distinct("tenant_id"):
                if self.runtime.stopping.is_set():
                    return
                await self.books.of(tenant_id)
        except Exception:
            log.warning("could not read the books ahead; the first import of each tenant will", exc_info=True)

    async def _count_review_queue(self) -> None:
        self._review_queue = await self.store.payments.count_documents({"in_review": {"$exists": True}})

    async def stop(self) -> None:
        await self.runtime.stop_serving(self.grpc)

        async def close_clients() -> None:
            await self.freshness.close()
            await self.directory.close()
            await self.ledger.close()

        await self.runtime.stop(before_close=close_clients)


async def serve(settings: MatcherSettings) -> None:
    await serve_until_signal(MatcherApp(settings), "matcher")
