"""The sandbox clock on the real database: one advance moves every clock of the stack, only forward
and within bounds; a ledger on it marks an invoice overdue within seconds of the jump (its sweep
runs hourly here), and says on /metrics which time it uses."""

from __future__ import annotations

import asyncio
import secrets
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub

from services.common import sandbox_clock as store
from services.common.clock import local_today
from services.common.mongo import Database, create_mongo_client
from services.common.tenancy import Tenant
from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.ledger import TenantClient, eventually, invoice_request, replica_settings
from tests.support.metrics import sample

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[Database]:
    client = create_mongo_client(backend.mongo_uri, app_name="sandbox-clock-test")
    try:
        yield client[f"sandbox_{uuid.uuid4().hex[:12]}"]
    finally:
        await client.close()


async def test_two_services_see_one_advance(db: Database) -> None:
    first, second = store.sandbox_clock(db), store.sandbox_clock(db)
    assert not await first.refresh(), "a stack nobody advanced runs on the real time"
    assert await store.advance(db, timedelta(days=20)) == 20 * 86400
    assert await first.refresh()
    assert await second.refresh()
    assert first.offset_seconds == second.offset_seconds == 20 * 86400
    assert abs((first.now() - second.now()).total_seconds()) < 1
    assert await store.advance(db, timedelta(hours=3)) == 20 * 86400 + 3 * 3600, "advances add up"
    assert await second.refresh()
    assert second.offset_seconds == 20 * 86400 + 3 * 3600


async def test_it_moves_only_forward_and_within_bounds(db: Database) -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        await store.advance(db, timedelta(0))
    near_limit = store.MAX_OFFSET - timedelta(days=1)
    assert await store.advance(db, near_limit) == near_limit.total_seconds()
    with pytest.raises(store.OffsetLimitError):
        await store.advance(db, timedelta(days=2))
    assert await store.read_offset(db) == near_limit.total_seconds(), "a refused advance moves nothing"
    assert await db[store.COLLECTION].count_documents({}) == 1


async def _metrics(app: LedgerApp) -> str:
    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    return await asyncio.to_thread(fetch)


async def test_a_ledger_on_the_sandbox_clock_marks_overdue_right_after_a_jump(backend: Backend) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}."
    clock_database = f"sandbox_{uuid.uuid4().hex[:12]}"
    settings = replica_settings(
        backend.kafka_bootstrap,
        backend.mongo_uri,
        prefix,
        sandbox_clock=True,
        sandbox_clock_database=clock_database,
        service_name="ledger-sandbox-clock-test",
    )
    assert settings.overdue_sweep_seconds == 3600, "the jump, not the sweep's hour, must wake it"
    app = LedgerApp(settings)
    await app.start()
    client = create_mongo_client(backend.mongo_uri, app_name="sandbox-clock-test")
    try:
        tenant = Tenant(id=f"tenant-{uuid.uuid4()}", name="Testkreditor AS")
        api_key = secrets.token_urlsafe(24)
        await app.store.ensure_tenant(tenant, api_key, key_name="erp", now=app.clock.now())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as channel:
            erp = TenantClient(
                tenant=tenant, api_key=api_key, key_name="erp", stub=LedgerServiceStub(channel)
            )
            today = local_today(app.clock)
            invoice = await erp.issue(invoice_request(issue_date=today, due_in_days=14))
            assert invoice.status == pb.INVOICE_STATUS_OPEN

            offset = await store.advance(client[clock_database], timedelta(days=20))
            overdue = await eventually(
                lambda: erp.get(invoice.id),
                lambda found: found.status == pb.INVOICE_STATUS_OVERDUE,
                timeout=15,
                what="the invoice due 14 days ago becoming overdue",
            )
            assert overdue.due_date == (today + timedelta(days=14)).isoformat()
            assert local_today(app.clock) == today + timedelta(days=20)
            text = await eventually(
                lambda: _metrics(app),
                lambda t: "fordring_sandbox_clock_offset_seconds" in t,
                what="the offset on /metrics",
            )
            assert (
                sample(text, "fordring_sandbox_clock_offset_seconds", service=settings.service_name) == offset
            )
    finally:
        await app.stop()
        await client.drop_database(clock_database)
        await client.close()
