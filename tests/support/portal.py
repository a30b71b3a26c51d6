"""Portal tests: a portal replica on a free port, reading the services of a test world."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.portal.app import PortalApp
from services.portal.settings import PortalSettings
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.ledger import LINK_SECRET, SERVICE_TOKEN


def portal_settings(backend: Backend, prefix: str, **over: Any) -> PortalSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": backend.kafka_bootstrap,
        "mongo_uri": backend.mongo_uri,
        "mongo_database": f"portal_{prefix.strip('.')}",
        "topic_prefix": prefix,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "service_token": SERVICE_TOKEN,
        "link_secret": LINK_SECRET,
        "public_url": "https://portal.test",
        "shutdown_grace": 2.0,
    }
    values.update(over)
    return PortalSettings(**values)


@contextlib.asynccontextmanager
async def portal_running(
    backend: Backend, prefix: str, clock: MovableClock | None = None, **over: Any
) -> AsyncIterator[PortalApp]:
    app = PortalApp(portal_settings(backend, prefix, **over), clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def browser(app: PortalApp) -> httpx.AsyncClient:
    """A client of the portal's real port that keeps cookies like a browser would on https (the
    portal's public URL is https in these tests, so its cookies are Secure)."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{app.port}",
        timeout=15,
        follow_redirects=False,
        headers={"x-forwarded-proto": "https"},
    )
