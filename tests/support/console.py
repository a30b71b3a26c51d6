"""Console tests: a ledger, a matcher and a dunning service of their own (one clock) with a portal
reading them, and a client that signs in like a browser on https would."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from fordring.dunning.v1.dunning_pb2_grpc import DunningServiceStub
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from fordring.matcher.v1.matcher_pb2_grpc import MatcherServiceStub

from services.dunning.app import DunningApp
from services.ledger.app import LedgerApp
from services.matcher.app import MatcherApp
from services.portal.app import PortalApp
from services.portal.console.accounts import Accounts
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.dispatcher import free_port
from tests.support.dunning import DunWorld, dunning_settings
from tests.support.ledger import SERVICE_TOKEN, replica_settings
from tests.support.matcher import MatchWorld, matcher_settings, topics_for
from tests.support.portal import portal_settings

PASSWORD = "correct horse battery staple"
TRACE_URL = "https://jaeger.test/trace/{trace_id}"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class ConsoleWorld:
    dun: DunWorld
    match: MatchWorld
    portal: PortalApp
    clock: MovableClock

    async def account(self, tenant_id: str, role: str = "operator", email: str = "") -> str:
        address = email or f"{role}-{uuid.uuid4().hex[:8]}@console.test"
        await Accounts(self.portal.store.db).add(
            address, PASSWORD, tenant_id=tenant_id, role=role, name=f"Test {role}", now=self.clock.now()
        )
        return address


@contextlib.asynccontextmanager
async def console_world_running(backend: Backend, **portal: Any) -> AsyncIterator[ConsoleWorld]:
    """The renderer and dispatcher are not running: their parts of a page say so (as in an outage)."""
    prefix = f"c{uuid.uuid4().hex[:12]}."
    await topics_for(backend, prefix)
    clock = MovableClock()
    ledger = LedgerApp(
        replica_settings(backend.kafka_bootstrap, backend.mongo_uri, prefix, service_token=SERVICE_TOKEN),
        clock=clock,
    )
    await ledger.start()
    matcher = MatcherApp(matcher_settings(backend, prefix, ledger.grpc.port), clock=clock)
    dunning = DunningApp(dunning_settings(backend, prefix, ledger.grpc.port), clock=clock)
    await matcher.start()
    await dunning.start()
    nowhere = f"127.0.0.1:{free_port()}"
    settings = portal_settings(
        backend,
        prefix,
        ledger_target=f"127.0.0.1:{ledger.grpc.port}",
        matcher_target=f"127.0.0.1:{matcher.grpc.port}",
        dunning_target=f"127.0.0.1:{dunning.grpc.port}",
        renderer_target=nowhere,
        dispatcher_target=nowhere,
        trace_url=TRACE_URL,
        **portal,
    )
    app = PortalApp(settings, clock=clock)
    await app.start()
    try:
        await asyncio.wait_for(
            asyncio.gather(
                ledger.consumers_ready.wait(), matcher.consumers_ready.wait(), dunning.consumers_ready.wait()
            ),
            timeout=120,
        )
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ledger.grpc.port}") as ledger_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{matcher.grpc.port}") as matcher_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{dunning.grpc.port}") as dunning_channel,
        ):
            ledger_stub = LedgerServiceStub(ledger_channel)
            yield ConsoleWorld(
                dun=DunWorld(
                    ledger, dunning, ledger_stub, DunningServiceStub(dunning_channel), clock, prefix, backend
                ),
                match=MatchWorld(
                    ledger, matcher, ledger_stub, MatcherServiceStub(matcher_channel), prefix, backend
                ),
                portal=app,
                clock=clock,
            )
    finally:
        await app.stop()
        await dunning.stop()
        await matcher.stop()
        await ledger.stop()


@dataclass
class ConsoleClient:
    """Keeps the console's cookies as a browser on https would (they are Secure: httpx's jar would not
    send them over the test's plain connection)."""

    http: httpx.AsyncClient
    cookies: dict[str, str] = field(default_factory=dict)
    last_csrf: str = ""

    @classmethod
    def of(cls, app: PortalApp) -> ConsoleClient:
        return cls(
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.port}",
                timeout=30,
                follow_redirects=False,
                headers={"x-forwarded-proto": "https"},
            )
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if "max-age=0" in header.lower() or not value.strip('"'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        found = _CSRF.search(response.text)
        if found:
            self.last_csrf = found.group(1)
        return response

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        form = {"csrf": self.last_csrf, **data} if csrf else data
        return await self.request("POST", path, data=form)

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/console/login")
        return await self.post("/console/login", {"email": email, "password": password})

    async def aclose(self) -> None:
        await self.http.aclose()
