"""Wiring: build the portal from settings, start it, stop it gracefully."""

from __future__ import annotations

import logging

from services.common.clock import Clock
from services.common.mongo import ping
from services.common.runtime import ServiceRuntime, serve_until_signal
from services.portal.clients import Clients
from services.portal.console.routes import console_routes
from services.portal.customer.routes import customer_routes
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from services.portal.web import Portal, create_web

log = logging.getLogger(__name__)


class PortalApp:
    """One portal replica: the invoice pages (and the console) on the HTTP port, beside its checks."""

    def __init__(self, settings: PortalSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.runtime = ServiceRuntime(settings, clock=clock)
        self.clock = self.runtime.clock
        self.store = PortalStore(self.runtime.db)
        self.clients = Clients(settings)
        self.portal = Portal(settings, self.store, self.clients, self.clock, self.runtime.stopping)
        self.web = create_web(self.portal, [*customer_routes(self.portal), *console_routes(self.portal)])
        self.runtime.serve_app(self.web)

    @property
    def port(self) -> int:
        return self.runtime.http.port

    async def start(self) -> None:
        await ping(self.runtime.mongo)
        await self.store.ensure_indexes()
        await self.runtime.start()
        log.info("portal ready: HTTP on %s", self.port)

    async def stop(self) -> None:
        await self.runtime.stop(before_close=self.clients.close)


async def serve(settings: PortalSettings) -> None:
    await serve_until_signal(PortalApp(settings), "portal")
