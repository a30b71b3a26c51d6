"""Console tests: a ledger, a matcher and a dunning service of their own (one clock) with a portal
reading them, and a client that signs in like a browser on https would."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import httpx
from fordring.dunning.v1 import dunning_pb2 as dpb
from fordring.dunning.v1.dunning_pb2_grpc import DunningServiceStub
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import notes_pb2 as notes_pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from fordring.ledger.v1.notes_pb2_grpc import InvoiceNoteServiceStub
from fordring.matcher.v1.matcher_pb2_grpc import MatcherServiceStub

from services.dunning.app import DunningApp
from services.ledger.app import LedgerApp
from services.matcher.app import MatcherApp
from services.portal.app import PortalApp
from services.portal.console.accounts import Accounts
from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.dispatcher import free_port
from tests.support.dunning import DunWorld, consumer, dunning_settings
from tests.support.ledger import (
    SERVICE_TOKEN,
    TenantClient,
    customer_input,
    eventually,
    invoice_request,
    line,
    replica_settings,
)
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
        return await add_account(self.portal, tenant_id, role, email)


async def add_account(portal: PortalApp, tenant_id: str, role: str = "operator", email: str = "") -> str:
    """A console account (password PASSWORD) with `role` at the tenant; its e-mail address."""
    address = email or f"{role}-{uuid.uuid4().hex[:8]}@console.test"
    await Accounts(portal.store.db).add(
        address, PASSWORD, tenant_id=tenant_id, role=role, name=f"Test {role}", now=portal.clock.now()
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
                # The console speaks the browser's language (Norwegian by default): English here.
                headers={"x-forwarded-proto": "https", "accept-language": "en"},
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


@dataclass(frozen=True)
class Scenario:
    """An operator's morning: a disputed invoice whose reminder is held, and a payment in review."""

    tenant: TenantClient
    disputed: pb.Invoice
    unpaid: pb.Invoice
    payment_id: str


async def operator_scenario(world: ConsoleWorld) -> Scenario:
    dun = world.dun
    tenant = await dun.tenant()
    today = world.clock.today()
    disputed = await tenant.issue(
        invoice_request(customer=consumer(f"D-{uuid.uuid4().hex[:6]}"), issue_date=today, due_in_days=10)
    )
    unpaid = await tenant.issue(
        invoice_request(
            customer=customer_input("K-2000", name="Fjordbris Kaffe AS"),
            issue_date=today,
            lines=[line(unit_price_minor=3200_00)],
        )
    )
    await dun.known(disputed.id)
    dun.at(today + timedelta(days=13))
    await dun.sweep()
    await dun.wait_history(tenant, disputed.id, "nudged")
    notes = InvoiceNoteServiceStub(world.portal.clients.channel("ledger"))
    await notes.AddInvoiceNote(
        notes_pb.AddInvoiceNoteRequest(
            invoice_id=disputed.id,
            author=notes_pb.NOTE_AUTHOR_CUSTOMER,
            author_name="Kari Nordmann",
            kind=notes_pb.NOTE_KIND_DISPUTE,
            text="I never received the goods.",
            idempotency_key=f"dispute-{disputed.id}",
        ),
        metadata=tenant.metadata,
    )
    await dun.stub.Pause(
        dpb.PauseRequest(invoice_id=disputed.id, reason="the customer disputes the claim", kind="dispute"),
        metadata=tenant.metadata,
    )
    await dun.next_step(tenant, disputed.id, "reminder")
    await eventually(
        lambda: dun.stub.ListHeld(dpb.ListHeldRequest(), metadata=tenant.metadata),
        lambda reply: any(h.invoice_id == disputed.id for h in reply.held),
        what="the held reminder",
    )
    await world.match.known(tenant, [unpaid])
    await world.match.customers_known(tenant, 2)
    imported = await world.match.import_file(
        tenant,
        ocr_giro_file(
            [
                FilePayment(
                    unpaid.gross_total.minor_units, payer_account="12035555550", payer_name="FJORDBRIS"
                )
            ],
            transmission_number=str(1_000_000 + secrets.randbelow(8_999_999)),
        ),
    )
    assert imported.summary.review == 1, imported
    [waiting] = await world.match.review(tenant)
    return Scenario(tenant, disputed, unpaid, waiting.id)
