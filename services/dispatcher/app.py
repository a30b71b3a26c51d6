"""Wiring: build the dispatcher from settings, start it, stop it gracefully."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aiohttp import web
from fordring.dispatcher.v1 import dispatcher_pb2, dispatcher_pb2_grpc, links_pb2_grpc
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from services.common.clock import Clock
from services.common.directory import DirectoryClient
from services.common.ledger_client import LedgerClient
from services.common.retention import Retained
from services.common.runtime import ServiceRuntime, serve_until_signal
from services.common.timers import Timer, Timers
from services.dispatcher.adapters.renderer import RendererClient
from services.dispatcher.api import DispatcherApi
from services.dispatcher.channels import Channels, Refusing, from_settings
from services.dispatcher.handlers import register
from services.dispatcher.lifecycle import BATCH, FALLBACK, PLAN, SEND, Lifecycle
from services.dispatcher.links_api import SERVICE_NAME as LINKS_SERVICE
from services.dispatcher.links_api import InvoiceLinkApi
from services.dispatcher.planning import Planner
from services.dispatcher.public import public_app
from services.dispatcher.recent import RecentLedger
from services.dispatcher.rules import RulesBook
from services.dispatcher.sending import Sender
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.store import RECEIPTS, DispatcherStore
from services.dispatcher.tracking import Tracker

log = logging.getLogger(__name__)
DISPATCHER_SERVICE = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name
_meter = metrics.get_meter("fordring.dispatcher")


class DispatcherApp:
    """One dispatcher replica: the gRPC API, the public port (webhooks, invoice links), the
    consumers, the timers that send and fall back, the outbox."""

    def __init__(
        self, settings: DispatcherSettings, *, clock: Clock | None = None, channels: Channels | None = None
    ) -> None:
        self.settings = settings
        self.runtime = ServiceRuntime(
            settings, clock=clock, retained=(Retained(RECEIPTS, "at", timedelta(days=90)),)
        )
        self.clock = self.runtime.clock
        self.store = DispatcherStore(self.runtime.mongo, settings.mongo_database)
        self.timers = Timers(
            self.store.db, self.clock, batch=settings.send_batch, lease_seconds=settings.timer_lease_seconds
        )
        self.directory = DirectoryClient(settings.ledger_target, settings.service_token, caller="dispatcher")
        self.ledger = LedgerClient(settings.ledger_target, settings.service_token, caller="dispatcher")
        self.renderer = RendererClient(settings.renderer_target, settings.service_token)
        self.channels = channels or from_settings(settings)
        self.rules = RulesBook(self.store, self.clock)
        recent = RecentLedger(self.ledger)
        self.lifecycle = Lifecycle(
            self.store,
            self.timers,
            delay_scale=settings.delay_scale,
            rules_of=self.rules.last,
            on_flag=recent.flagged,
        )
        wake = self.runtime.relay.wake
        self.planner = Planner(
            self.store,
            self.timers,
            self.lifecycle,
            self.channels,
            recent,
            self.rules,
            self.clock,
            on_commit=wake,
        )
        self.sender = Sender(
            self.store,
            self.timers,
            self.lifecycle,
            self.channels,
            recent,
            self.renderer,
            self.directory,
            self.rules,
            self.clock,
            public_url=settings.public_url,
            link_secret=settings.link_secret,
            concurrency=settings.send_concurrency,
            max_attempts=settings.max_attempts,
            retry_first=settings.retry_first_seconds,
            retry_cap=settings.retry_cap_seconds,
            on_commit=wake,
        )
        self.tracker = Tracker(
            self.store, self.lifecycle, self.channels, self.rules, self.clock, on_commit=wake
        )
        register(self.runtime.broker, settings, self.planner, self.tracker, settings.consumer_group)
        # The invoice links are the portal's to report (the service credential only).
        self.grpc = self.runtime.grpc_server(self.directory, internal=frozenset({LINKS_SERVICE}))
        api = DispatcherApi(self.store, self.ledger, self.planner, self.rules, self.clock)
        self.grpc.add(
            lambda server: dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server(api, server),
            DISPATCHER_SERVICE,
        )
        links = InvoiceLinkApi(self.tracker)
        self.grpc.add(
            lambda server: links_pb2_grpc.add_InvoiceLinkServiceServicer_to_server(links, server),
            LINKS_SERVICE,
        )
        self.public = web.AppRunner(
            public_app(self.channels, self.tracker, self.renderer, link_secret=settings.link_secret),
            access_log=None,
        )
        self.public_port = 0
        self._backlog = (0, 0.0)
        _meter.create_observable_gauge(
            "fordring_dispatcher_timer_backlog",
            [self._observe_backlog],
            description="Timers due and not yet done",
        )
        _meter.create_observable_gauge(
            "fordring_dispatcher_timer_lateness_seconds",
            [self._observe_lateness],
            description="How late the oldest due timer is",
        )

    def _observe_backlog(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._backlog[0])]

    def _observe_lateness(self, _: CallbackOptions) -> list[Observation]:
        return [Observation(self._backlog[1])]

    @property
    def consumers_ready(self) -> asyncio.Event:
        return self.runtime.consumers_ready

    async def start(self) -> None:
        await self.runtime.start()
        await self.store.ensure_indexes()
        await self.timers.ensure_indexes()
        now = self.clock.now()
        for adapter in self.channels.batching():
            await self.timers.schedule(f"batch:{adapter.channel}", BATCH, now, {"channel": adapter.channel})
        await self.public.setup()
        site = web.TCPSite(self.public, self.settings.public_host, self.settings.public_port)
        await site.start()
        self.public_port = self.public.addresses[0][1]
        self.runtime.spawn(self._run_timers(), "timers")
        self.runtime.spawn_every(5, self._measure_backlog, "timer-backlog")
        await self.runtime.serve(self.grpc)
        log.info(
            "dispatcher ready: gRPC on %s, HTTP on %s, public on %s",
            self.grpc.port,
            self.runtime.http.port,
            self.public_port,
        )

    async def _run_timers(self) -> None:
        every = self.settings.batch_every_seconds

        async def batches(timers: list[Timer]) -> None:
            await self.sender.on_batch_timers(timers, every)
            # Claims that missed their deadline while spooled come back as refusals (AvtaleGiro).
            for adapter in self.channels.batching():
                if isinstance(adapter, Refusing) and (refused := adapter.refusals()):
                    provider = self.channels.adapters[adapter.channel].provider
                    await self.tracker.apply_receipts(provider, refused)
                    adapter.forget_refusals([r.delivery_id for r in refused])

        await self.timers.run(
            {
                SEND: self.sender.on_send_timers,
                PLAN: self.planner.on_plan_timers,
                FALLBACK: self.planner.on_fallback_timers,
                BATCH: batches,
            },
            self.runtime.stopping,
        )

    async def _measure_backlog(self) -> None:
        self._backlog = await self.timers.backlog()

    async def stop(self) -> None:
        await self.runtime.stop_serving(self.grpc)

        async def close_clients() -> None:
            await self.public.cleanup()
            await self.channels.close()
            await self.directory.close()
            await self.ledger.close()
            await self.renderer.close()

        await self.runtime.stop(before_close=close_clients)


async def serve(settings: DispatcherSettings) -> None:
    await serve_until_signal(DispatcherApp(settings), "dispatcher")
