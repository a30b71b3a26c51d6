"""The ledger with Kafka away: it starts and serves without it, says so on /readyz, publishes what it
held once the broker is there, and after the (in-memory) broker restarts empty it publishes its
recent events again and reads the proposals sent to the new broker."""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub

from services.common.events import (
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    PAYMENT_TOPIC,
    Allocation,
    PaymentMatched,
    PaymentMatchedData,
)
from services.common.tenancy import Tenant
from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.broker import OwnBroker
from tests.support.kafka import TopicReader, create_topics, publish
from tests.support.ledger import eventually, invoice_request, replica_settings

pytestmark = pytest.mark.integration


async def http_get(app: LedgerApp, path: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}{path}", timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(fetch)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[OwnBroker]:
    own = OwnBroker(tmp_path)  # not started: the ledger starts without it
    try:
        yield own
    finally:
        own.stop()


async def invoice_ids_on(bootstrap: str, topic: str, tenant_id: str, want: set[str]) -> set[str]:
    """The invoice ids of InvoiceIssued events a fresh consumer finds on the topic, once `want` are."""
    await create_topics(bootstrap, [topic])
    reader = TopicReader(bootstrap, topic)
    await reader.start()
    try:

        def found() -> set[str] | None:
            ids = {
                e["subject"] for _, e in reader.events(tenant_id=tenant_id) if e["type"] == "InvoiceIssued"
            }
            return ids if want <= ids else None

        return await reader.wait_for(found, timeout=60, what=f"InvoiceIssued for {len(want)} invoices")
    finally:
        await reader.stop()


async def test_the_ledger_serves_without_kafka_and_loses_nothing_when_it_restarts_empty(
    backend: Backend, broker: OwnBroker
) -> None:
    prefix = f"o{uuid.uuid4().hex[:10]}."
    api_key = secrets.token_urlsafe(24)
    settings = replica_settings(
        broker.bootstrap, backend.mongo_uri, prefix, outbox_stuck_seconds=1.0, sandbox_api_key=api_key
    )
    app = LedgerApp(settings)
    await asyncio.wait_for(app.start(), timeout=15)  # Kafka is not there: the start does not wait for it
    try:
        tenant = Tenant(id="sandbox", name="Sandbox AS")
        metadata = (("authorization", f"Bearer {api_key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as channel:
            stub = LedgerServiceStub(channel)
            issued = [
                (await stub.IssueInvoice(invoice_request(), metadata=metadata)).invoice for _ in range(3)
            ]

            status, text = await eventually(
                lambda: http_get(app, "/readyz"),
                # 3 invoices and their customer
                lambda r: "4 events wait" in r[1],
                what="stuck outbox",
            )
            assert status == 503
            assert "mongodb: ok" in text
            assert "kafka: ConnectionError: not connected to Kafka" in text
            assert "outbox: RuntimeError: cannot publish for" in text
            # What Kubernetes asks: can the API take calls? Yes: Kafka's absence is ridden out.
            assert await http_get(app, "/readyz?exclude=kafka&exclude=outbox") == (
                200,
                "mongodb: ok\ngrpc: ok\n",
            )

            broker.start()
            topics = [prefix + t for t in (INVOICE_TOPIC, PAYMENT_TOPIC, DUNNING_TOPIC)]
            await create_topics(broker.bootstrap, topics)
            ids = {inv.id for inv in issued}
            assert await invoice_ids_on(broker.bootstrap, prefix + INVOICE_TOPIC, tenant.id, ids) >= ids
            await asyncio.wait_for(app.consumers_ready.wait(), timeout=60)
            status, _ = await eventually(
                lambda: http_get(app, "/readyz"), lambda r: r[0] == 200, timeout=30, what="ready"
            )

            # The broker dies and comes back empty (a new cluster id), as the embedded one does.
            broker.kill()
            broker.start()
            await create_topics(broker.bootstrap, topics)
            # The invoice events published before the restart are published again ...
            assert await invoice_ids_on(broker.bootstrap, prefix + INVOICE_TOPIC, tenant.id, ids) >= ids
            # ... and a payment the matcher sends to the new broker is read and applied.
            invoice = issued[0]
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
            await producer.start()
            try:
                await publish(
                    producer,
                    prefix + PAYMENT_TOPIC,
                    PaymentMatched(
                        tenant_id=tenant.id,
                        subject=invoice.id,
                        occurred_at=datetime.now(UTC),
                        data=PaymentMatchedData(
                            payment_id=f"ocr-{uuid.uuid4()}",
                            amount_minor=invoice.gross_total.minor_units,
                            currency="NOK",
                            paid_on=invoice.issue_date,
                            method="kid",
                            allocations=[
                                Allocation(
                                    invoice_id=invoice.id, amount_minor=invoice.gross_total.minor_units
                                )
                            ],
                        ),
                    ),
                )

                async def status_of() -> int:
                    reply = await stub.GetInvoice(
                        pb.GetInvoiceRequest(invoice_id=invoice.id), metadata=metadata
                    )
                    return int(reply.invoice.status)

                await eventually(status_of, lambda s: s == pb.INVOICE_STATUS_PAID, timeout=90, what="paid")
            finally:
                await producer.stop()
    finally:
        await app.stop()
