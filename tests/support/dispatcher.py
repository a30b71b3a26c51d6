"""Dispatcher tests: a ledger, a renderer and a dispatcher of their own on the session's broker and
database, with the sandbox providers in-process posting their receipts to the dispatcher's public
port, and the simulated customer following the links the renderer printed (they lead there too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
from aiohttp import web
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.dispatcher.v1.dispatcher_pb2_grpc import DispatcherServiceStub
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from fordring.renderer.v1.renderer_pb2_grpc import RendererServiceStub

from services.common.events import (
    DELIVERY_TOPIC,
    DLQ_SUFFIX,
    DOCUMENT_TOPIC,
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    PAYMENT_TOPIC,
)
from services.dispatcher.app import DispatcherApp
from services.dispatcher.settings import DispatcherSettings
from services.ledger.app import LedgerApp
from services.renderer.app import RendererApp
from services.renderer.settings import RendererSettings
from services.sandbox.app import CONTEXT, make_app
from services.sandbox.context import SandboxContext
from services.sandbox.settings import SandboxSettings
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.kafka import TopicReader, create_topics
from tests.support.ledger import LINK_SECRET, SERVICE_TOKEN, TenantClient, eventually, replica_settings
from tests.support.renderer import RenderWorld

if TYPE_CHECKING:
    from fordring.dispatcher.v1.dispatcher_pb2_grpc import DispatcherServiceAsyncStub

PROVIDERS = ("email", "sms", "vipps", "efaktura", "peppol", "print", "avtalegiro")
SECRETS = {name: f"dispatch-secret-{name}" for name in PROVIDERS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Sandbox:
    url: str
    ctx: SandboxContext
    settings: SandboxSettings
    runner: web.AppRunner

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}/control/{path}", json=body) as reply,
        ):
            assert reply.status < 300, await reply.text()
            return await reply.json()

    async def fault(self, channel: str, outcome: str, *, count: int = 1, seconds: float = 0) -> None:
        await self.control(
            "POST", "faults", {"channel": channel, "outcome": outcome, "count": count, "seconds": seconds}
        )

    async def records(self, channel: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.control("GET", f"records/{channel}")
        return found

    def mails(self) -> list[Path]:
        return sorted((self.settings.root / "email").glob("*.eml"))


@dataclass
class DispatchWorld:
    ledger: LedgerApp
    renderer: RendererApp
    dispatcher: DispatcherApp
    sandbox: Sandbox
    ledger_stub: Any
    renderer_stub: Any
    stub: DispatcherServiceAsyncStub
    topics: dict[str, str]
    delivery_events: TopicReader
    public_url: str
    settings: DispatcherSettings

    async def tenant(self, **changes: Any) -> TenantClient:
        readers = self.delivery_events  # unused by tenant(); RenderWorld wants its readers
        world = RenderWorld(
            self.ledger, self.renderer, self.ledger_stub, self.renderer_stub, self.topics, readers, readers
        )
        return await world.tenant(**changes)

    async def deliveries(self, tenant: TenantClient, invoice_id: str) -> list[dpb.Delivery]:
        reply = await self.stub.ListDeliveries(
            dpb.ListDeliveriesRequest(invoice_id=invoice_id), metadata=tenant.metadata
        )
        return list(reply.deliveries)

    async def wait_deliveries(
        self,
        tenant: TenantClient,
        invoice_id: str,
        done: Any,
        *,
        timeout: float = 30,
        what: str = "deliveries",
    ) -> list[dpb.Delivery]:
        return await eventually(lambda: self.deliveries(tenant, invoice_id), done, timeout=timeout, what=what)

    async def quiet(self, timeout: float = 30) -> None:
        """Wait until nothing earlier tests started is still on its way (sends, plans, fallbacks due
        soon, letters at the print house): the sandbox's faults are taken by the next sends, so a
        test that queues one must not have it taken by another test's late delivery."""
        db = self.dispatcher.store.db

        async def busy() -> int:
            soon = self.dispatcher.clock.now() + timedelta(seconds=8)
            timers = await db["timers"].count_documents({"kind": {"$ne": "batch"}, "due_at": {"$lte": soon}})
            pending = await db["deliveries"].count_documents(
                {
                    "$or": [
                        {"status": "queued"},
                        {"status": "accepted", "channel": {"$in": ["print", "avtalegiro"]}},
                    ]
                }
            )
            unplanned = await db["renderings"].count_documents({"planned": False})
            return timers + pending + unplanned

        await eventually(busy, lambda n: n == 0, timeout=timeout, what="a quiet dispatcher")

    async def deviations(self, tenant: TenantClient) -> list[dpb.Deviation]:
        reply = await self.stub.ListDeviations(dpb.ListDeviationsRequest(), metadata=tenant.metadata)
        return list(reply.deviations)


def consumer(number: str, **changes: Any) -> pb.CustomerInput:
    """A consumer in Oslo with every contact; consents and preferences as the test says."""
    values: dict[str, Any] = {
        "number": number,
        "name": "Kari Nordmann",
        "kind": pb.CUSTOMER_KIND_CONSUMER,
        "email": f"kari.{number.lower()}@example.no",
        "phone": "+4791234568",
        "address": {"lines": ["Storgata 1"], "postal_code": "0155", "city": "Oslo", "country": "NO"},
        "language": "nb",
    }
    values.update(changes)
    return pb.CustomerInput(**values)


@contextlib.asynccontextmanager
async def sandbox_running(root: Path, webhook_url: str, *, open_after: float = 0.3) -> AsyncIterator[Sandbox]:
    settings = SandboxSettings(
        http_port=0,
        smtp_port=0,
        root=root / "sandbox",
        print_drop=root / "print-drop",
        nets_dir=root / "nets",
        webhook_url=webhook_url,
        webhook_secrets=",".join(f"{k}={v}" for k, v in SECRETS.items()),
        open_after=open_after,
    )
    app = make_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Sandbox(f"http://127.0.0.1:{port}", app[CONTEXT], settings, runner)
    finally:
        await runner.cleanup()


def dispatcher_settings(
    backend: Backend,
    prefix: str,
    ledger_port: int,
    renderer_port: int,
    public_port: int,
    sandbox: Sandbox,
    **over: Any,
) -> DispatcherSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": backend.kafka_bootstrap,
        "mongo_uri": backend.mongo_uri,
        "mongo_database": f"dispatcher_{prefix.strip('.')}",
        "topic_prefix": prefix,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "public_host": "127.0.0.1",
        "public_port": public_port,
        "public_url": f"http://127.0.0.1:{public_port}",
        "ledger_target": f"127.0.0.1:{ledger_port}",
        "renderer_target": f"127.0.0.1:{renderer_port}",
        "service_token": SERVICE_TOKEN,
        "link_secret": LINK_SECRET,
        "shutdown_grace": 2.0,
        "webhook_secrets": ",".join(f"{k}={v}" for k, v in SECRETS.items()),
        "smtp_host": "127.0.0.1",
        "smtp_port": sandbox.ctx.smtp_port,
        "sms_url": sandbox.url,
        "peppol_url": sandbox.url,
        "efaktura_url": sandbox.url,
        "vipps_url": sandbox.url,
        "print_drop": sandbox.settings.print_drop,
        "nets_dir": sandbox.settings.nets_dir,
        "batch_every_seconds": 0.5,
        "retry_first_seconds": 0.2,
        "retry_cap_seconds": 1.0,
    }
    values.update(over)
    return DispatcherSettings(**values)


@contextlib.asynccontextmanager
async def dispatch_world_running(
    backend: Backend, clock: MovableClock, root: Path, *, open_after: float = 0.3, **dispatcher: Any
) -> AsyncIterator[DispatchWorld]:
    prefix = f"d{uuid.uuid4().hex[:12]}."
    names = [INVOICE_TOPIC, DOCUMENT_TOPIC, PAYMENT_TOPIC, DUNNING_TOPIC, DELIVERY_TOPIC]
    topics = {
        name: prefix + name for name in [*names, INVOICE_TOPIC + DLQ_SUFFIX, DOCUMENT_TOPIC + DLQ_SUFFIX]
    }
    await create_topics(backend.kafka_bootstrap, topics.values())
    public_port = free_port()
    public_url = f"http://127.0.0.1:{public_port}"
    ledger = LedgerApp(
        replica_settings(backend.kafka_bootstrap, backend.mongo_uri, prefix, service_token=SERVICE_TOKEN),
        clock=clock,
    )
    await ledger.start()
    renderer = RendererApp(
        RendererSettings(
            environment="test",
            kafka_bootstrap=backend.kafka_bootstrap,
            mongo_uri=backend.mongo_uri,
            mongo_database=f"renderer_{prefix.strip('.')}",
            topic_prefix=prefix,
            grpc_host="127.0.0.1",
            grpc_port=0,
            http_host="127.0.0.1",
            http_port=0,
            ledger_target=f"127.0.0.1:{ledger.grpc.port}",
            service_token=SERVICE_TOKEN,
            link_secret=LINK_SECRET,
            portal_url=public_url,
            validate_ehf=False,
            shutdown_grace=2.0,
        ),
        clock=clock,
    )
    await renderer.start()
    delivery_events = TopicReader(backend.kafka_bootstrap, topics[DELIVERY_TOPIC])
    async with sandbox_running(root, public_url, open_after=open_after) as sandbox:
        settings = dispatcher_settings(
            backend, prefix, ledger.grpc.port, renderer.grpc.port, public_port, sandbox, **dispatcher
        )
        app = DispatcherApp(settings, clock=clock)
        await app.start()
        try:
            await delivery_events.start()
            await asyncio.wait_for(
                asyncio.gather(
                    ledger.consumers_ready.wait(), renderer.consumers_ready.wait(), app.consumers_ready.wait()
                ),
                timeout=90,
            )
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{ledger.grpc.port}") as ledger_channel,
                grpc.aio.insecure_channel(f"127.0.0.1:{renderer.grpc.port}") as renderer_channel,
                grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as channel,
            ):
                yield DispatchWorld(
                    ledger,
                    renderer,
                    app,
                    sandbox,
                    LedgerServiceStub(ledger_channel),
                    RendererServiceStub(renderer_channel),
                    DispatcherServiceStub(channel),
                    topics,
                    delivery_events,
                    public_url,
                    settings,
                )
        finally:
            await delivery_events.stop()
            await app.stop()
            await renderer.stop()
            await ledger.stop()


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
