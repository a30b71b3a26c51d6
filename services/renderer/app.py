"""Wiring: build the renderer from settings, start it, stop it gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from fordring.renderer.v1 import renderer_pb2, renderer_pb2_grpc

from services.common.clock import Clock
from services.common.directory import DirectoryClient
from services.common.lease import Lease
from services.common.ledger_client import LedgerClient
from services.common.runtime import ServiceRuntime, serve_until_signal
from services.renderer.api import RendererApi
from services.renderer.forms import Forms
from services.renderer.handlers import register
from services.renderer.rendering import Renderer
from services.renderer.settings import RendererSettings
from services.renderer.store import RendererStore

log = logging.getLogger(__name__)
RENDERER_SERVICE = renderer_pb2.DESCRIPTOR.services_by_name["RendererService"].full_name


class RendererApp:
    """One renderer replica: the invoice hotel's gRPC API, the ledger-event consumer, the outbox."""

    def __init__(self, settings: RendererSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.runtime = ServiceRuntime(settings, clock=clock)
        self.clock = self.runtime.clock
        self.store = RendererStore(self.runtime.mongo, settings.mongo_database)
        self.directory = DirectoryClient(settings.ledger_target, settings.service_token, caller="renderer")
        self.ledger = LedgerClient(settings.ledger_target, settings.service_token)
        self.forms = Forms(validate_ehf=settings.validate_ehf)
        self.executor = ThreadPoolExecutor(settings.render_workers, thread_name_prefix="render")
        self.renderer = Renderer(
            self.store,
            self.ledger,
            self.directory,
            self.forms,
            self.executor,
            self.clock,
            portal_url=settings.portal_url,
            link_secret=settings.link_secret,
            on_commit=self.runtime.relay.wake,
            link_days=settings.document_retention_days,
        )
        register(self.runtime.broker, settings, self.renderer, settings.consumer_group)
        self.grpc = self.runtime.grpc_server(self.directory)
        api = RendererApi(self.store, self.ledger, self.renderer)
        self.grpc.add(
            lambda server: renderer_pb2_grpc.add_RendererServiceServicer_to_server(api, server),
            RENDERER_SERVICE,
        )
        self._retention_lease = Lease(self.store.db, "document-retention", self.clock, seconds=600)

    @property
    def consumers_ready(self) -> asyncio.Event:
        return self.runtime.consumers_ready

    async def start(self) -> None:
        await self.runtime.start()
        await self.store.ensure_indexes()
        self.runtime.spawn(self._sweep_documents_forever(), "document-retention")
        await self.runtime.serve(self.grpc)
        log.info("renderer ready: gRPC on %s, HTTP on %s", self.grpc.port, self.runtime.http.port)

    async def stop(self) -> None:
        await self.runtime.stop_serving(self.grpc)

        async def close_clients() -> None:
            await self.directory.close()
            await self.ledger.close()
            self.executor.shutdown(wait=False, cancel_futures=True)

        await self.runtime.stop(before_close=close_clients)

    async def sweep_documents(self) -> int:
        """Delete documents past their retention (never earlier); returns how many."""
        before = self.clock.now() - timedelta(days=self.settings.document_retention_days)
        deleted = 0
        while ids := await self.store.expired(before, 500):
            for document_id in ids:
                await self.store.delete(document_id)
            deleted += len(ids)
        return deleted

    async def _sweep_documents_forever(self) -> None:
        while not self.runtime.stopping.is_set():
            with contextlib.suppress(Exception):  # tried again in an hour; nothing is lost by waiting
                if await self._retention_lease.hold():
                    await self.sweep_documents()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runtime.stopping.wait(), timeout=3600)


async def serve(settings: RendererSettings) -> None:
    await serve_until_signal(RendererApp(settings), "renderer")
