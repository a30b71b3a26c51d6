"""Matcher tests: a ledger and a matcher of their own (own topics and databases) on the session's
broker and database; bank files are uploaded through the matcher's gRPC API as the CLI does."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from fordring.common.v1 import common_pb2 as cpb
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from fordring.matcher.v1 import matcher_pb2 as mpb
from fordring.matcher.v1.matcher_pb2_grpc import MatcherServiceStub

from services.common.events import (
    CUSTOMER_TOPIC,
    DELIVERY_TOPIC,
    DLQ_SUFFIX,
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    PAYMENT_TOPIC,
    TENANT_TOPIC,
)
from services.common.tenancy import Tenant
from services.ledger.app import LedgerApp
from services.matcher.app import MatcherApp
from services.matcher.settings import MatcherSettings
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.kafka import create_topics
from tests.support.ledger import SERVICE_TOKEN, TenantClient, eventually, replica_settings

if TYPE_CHECKING:
    from fordring.matcher.v1.matcher_pb2_grpc import MatcherServiceAsyncStub

CHUNK = 64 * 1024


def matcher_settings(backend: Backend, prefix: str, ledger_port: int, **over: Any) -> MatcherSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": backend.kafka_bootstrap,
        "mongo_uri": backend.mongo_uri,
        "mongo_database": f"matcher_{prefix.strip('.')}",
        "topic_prefix": prefix,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "ledger_target": f"127.0.0.1:{ledger_port}",
        "service_token": SERVICE_TOKEN,
        "shutdown_grace": 2.0,
        "import_batch": 50,
        "import_lease_seconds": 5.0,
    }
    values.update(over)
    return MatcherSettings(**values)


def upload(content: bytes, filename: str = "payments.dat", fmt: str = "") -> list[mpb.ImportPaymentsRequest]:
    parts = [mpb.ImportPaymentsRequest(header=mpb.ImportHeader(filename=filename, format=fmt))]
    parts += [mpb.ImportPaymentsRequest(chunk=content[i : i + CHUNK]) for i in range(0, len(content), CHUNK)]
    return parts


async def new_tenant(ledger: LedgerApp, stub: Any) -> TenantClient:
    tenant = Tenant(id=f"tenant-{uuid.uuid4()}", name="Testkreditor AS")
    api_key, key_name = uuid.uuid4().hex, "erp-test"
    await ledger.store.ensure_tenant(tenant, api_key, key_name=key_name, now=ledger.clock.now())
    return TenantClient(tenant=tenant, api_key=api_key, key_name=key_name, stub=stub)


@dataclass
class MatchWorld:
    ledger: LedgerApp
    matcher: MatcherApp
    ledger_stub: Any
    stub: MatcherServiceAsyncStub
    prefix: str
    backend: Backend

    async def tenant(self) -> TenantClient:
        return await new_tenant(self.ledger, self.ledger_stub)

    async def import_file(
        self, tenant: TenantClient, content: bytes, filename: str = "payments.dat", fmt: str = ""
    ) -> mpb.ImportPaymentsResponse:
        reply: mpb.ImportPaymentsResponse = await self.stub.ImportPayments(
            iter(upload(content, filename, fmt)), metadata=tenant.metadata, timeout=120
        )
        return reply

    async def payments(self, tenant: TenantClient, **filters: Any) -> list[mpb.Payment]:
        found: list[mpb.Payment] = []
        token = ""
        while True:
            reply = await self.stub.ListPayments(
                mpb.ListPaymentsRequest(page=cpb.PageRequest(page_size=500, page_token=token), **filters),
                metadata=tenant.metadata,
            )
            found += reply.payments
            token = reply.page.next_page_token
            if not token:
                return found

    async def review(self, tenant: TenantClient) -> list[mpb.Payment]:
        reply = await self.stub.ListReviewQueue(mpb.ListReviewQueueRequest(), metadata=tenant.metadata)
        return list(reply.payments)

    async def known(self, tenant: TenantClient, invoices: Sequence[pb.Invoice]) -> None:
        """Wait until the matcher's projection has these invoices (as issued or later)."""
        ids = [i.id for i in invoices]

        async def count() -> int:
            return await self.matcher.store.items.count_documents({"_id": {"$in": ids}})

        await eventually(count, lambda n: n == len(ids), timeout=30, what="the matcher's open items")

    async def customers_known(self, tenant: TenantClient, count: int) -> None:
        async def n() -> int:
            return await self.matcher.store.customers.count_documents({"tenant_id": tenant.tenant.id})

        await eventually(n, lambda k: k >= count, timeout=30, what="the matcher's customers")


async def topics_for(backend: Backend, prefix: str) -> None:
    names = [INVOICE_TOPIC, CUSTOMER_TOPIC, TENANT_TOPIC, PAYMENT_TOPIC, DUNNING_TOPIC, DELIVERY_TOPIC]
    extra = [INVOICE_TOPIC + DLQ_SUFFIX, CUSTOMER_TOPIC + DLQ_SUFFIX, PAYMENT_TOPIC + DLQ_SUFFIX]
    await create_topics(backend.kafka_bootstrap, [prefix + n for n in [*names, *extra]])


@contextlib.asynccontextmanager
async def match_world_running(
    backend: Backend, clock: MovableClock, **matcher: Any
) -> AsyncIterator[MatchWorld]:
    prefix = f"m{uuid.uuid4().hex[:12]}."
    await topics_for(backend, prefix)
    ledger = LedgerApp(
        replica_settings(backend.kafka_bootstrap, backend.mongo_uri, prefix, service_token=SERVICE_TOKEN),
        clock=clock,
    )
    await ledger.start()
    app = MatcherApp(matcher_settings(backend, prefix, ledger.grpc.port, **matcher), clock=clock)
    await app.start()
    try:
        await asyncio.wait_for(
            asyncio.gather(ledger.consumers_ready.wait(), app.consumers_ready.wait()), timeout=90
        )
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ledger.grpc.port}") as ledger_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as channel,
        ):
            yield MatchWorld(
                ledger, app, LedgerServiceStub(ledger_channel), MatcherServiceStub(channel), prefix, backend
            )
    finally:
        await app.stop()
        await ledger.stop()
