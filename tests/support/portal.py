"""Portal tests: a portal replica on a free port, reading the services of a test world."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import grpc
import httpx

from services.common.links import invoice_token
from services.dunning.app import DunningApp
from services.portal.app import PortalApp
from services.portal.settings import PortalSettings
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.dispatcher import DispatchWorld, dispatch_world_running
from tests.support.dunning import dunning_settings
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


@dataclass
class PortalWorld:
    """The dispatch world (ledger, renderer, dispatcher, sandbox) with a dunning service and a portal
    reading them."""

    dispatch: DispatchWorld
    dunning: DunningApp
    portal: PortalApp
    ledger_channel: grpc.aio.Channel
    dunning_channel: grpc.aio.Channel

    def link(self, invoice_id: str, *, expires: datetime | None = None) -> str:
        """The path of the invoice's page as the renderer prints it (default: valid for 30 days)."""
        when = expires or self.portal.clock.now() + timedelta(days=30)
        return "/i/" + invoice_token(invoice_id, LINK_SECRET, expires=when)


@contextlib.asynccontextmanager
async def portal_world_running(backend: Backend, root: Path) -> AsyncIterator[PortalWorld]:
    """A dispatch world of its own (its topics, databases and clock: the dunning service would
    otherwise dun the dispatcher tests' invoices) with a dunning service and a portal on it."""
    clock = MovableClock()
    async with (
        dispatch_world_running(backend, clock, root) as dispatch,
        _dunning_and_portal(backend, dispatch, clock) as world,
    ):
        yield world


@contextlib.asynccontextmanager
async def _dunning_and_portal(
    backend: Backend, dispatch: DispatchWorld, clock: MovableClock
) -> AsyncIterator[PortalWorld]:
    prefix = next(iter(dispatch.topics.values())).split(".", 1)[0] + "."
    dunning = DunningApp(dunning_settings(backend, prefix, dispatch.ledger.grpc.port), clock=clock)
    await dunning.start()
    try:
        async with portal_running(
            backend,
            prefix,
            clock,
            ledger_target=f"127.0.0.1:{dispatch.ledger.grpc.port}",
            renderer_target=f"127.0.0.1:{dispatch.renderer.grpc.port}",
            dispatcher_target=f"127.0.0.1:{dispatch.dispatcher.grpc.port}",
            dunning_target=f"127.0.0.1:{dunning.grpc.port}",
        ) as portal:
            await asyncio.wait_for(dunning.consumers_ready.wait(), timeout=90)
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{dispatch.ledger.grpc.port}") as ledger_channel,
                grpc.aio.insecure_channel(f"127.0.0.1:{dunning.grpc.port}") as dunning_channel,
            ):
                yield PortalWorld(dispatch, dunning, portal, ledger_channel, dunning_channel)
    finally:
        await dunning.stop()


def link_in_mail(mail: Path) -> str:
    """The invoice link an e-mail carries, as the path of the portal's page."""
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None
    found = re.search(r"/i/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)?)", body.get_content())
    assert found is not None, "no invoice link in the mail"
    return f"/i/{found.group(1)}"


class Customer:
    """A customer's browser on the portal's real port: it keeps the session cookie the portal sets
    (Secure cookies: the portal thinks it is on https; this client sends them on the test's http)."""

    def __init__(self, app: PortalApp) -> None:
        self.http = browser(app)
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []

    async def __aenter__(self) -> Customer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for raw in response.headers.get_list("set-cookie"):
            self.set_cookies.append(raw)
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(raw)
            self.cookies.update({name: morsel.value for name, morsel in cookie.items()})
        return response

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return self._keep(await self.http.get(path, headers=self.headers(headers)))

    async def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self._keep(await self.http.post(path, data=data, headers=self.headers()))

    def stream(self, path: str) -> Any:
        return self.http.stream("GET", path, headers=self.headers({"accept": "text/event-stream"}))


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def version_of(page: str) -> int:
    found = re.search(r'data-version="(\d+)"', page)
    assert found is not None
    return int(found.group(1))


async def next_invoice_event(lines: AsyncIterator[str], wanted: Any) -> dict[str, Any]:
    """The first `invoice` event of a server-sent event stream whose data satisfies `wanted`."""
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "invoice":
            data: dict[str, Any] = json.loads(line.removeprefix("data: "))
            if wanted(data):
                return data
    raise AssertionError("the stream ended")
