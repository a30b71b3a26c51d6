"""Fixtures shared by the test tiers.

Integration tests run against real processes: a Kafka-protocol broker and a MongoDB-protocol
server (embedded by default; FORDRING_TEST_BACKEND=containers uses Apache Kafka and MongoDB through
testcontainers). One ledger runs in-process for the whole session, because a Kafka consumer group
takes seconds to join; tests are isolated by tenant, each getting a fresh one with its own API key.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.events import (
    CUSTOMER_TOPIC,
    DELIVERY_TOPIC,
    DLQ_SUFFIX,
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    PAYMENT_TOPIC,
)
from services.common.telemetry import setup_telemetry
from services.common.tenancy import Tenant
from services.ledger.app import LedgerApp
from tests.support.backends import (
    Backend,
    container_backend,
    docker_problem,
    embedded_backend,
    wanted_backend,
)
from tests.support.clock import MovableClock
from tests.support.dispatcher import DispatchWorld, dispatch_world_running
from tests.support.kafka import TopicReader, create_topics
from tests.support.ledger import SERVICE_TOKEN, MakeTenant, TenantClient, replica_settings
from tests.support.renderer import RenderWorld, render_world_running

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

if wanted_backend() == "embedded":
    # The embedded broker holds every consumer group join for half the session timeout (5 s at the
    # default 10 s): every consumer the tests start, in-process or as a process (`fordring up`, the
    # crash tests' replicas inherit the environment), joins in 1 s instead. Apache Kafka refuses
    # sessions under 6 s (group.min.session.timeout.ms), so the containers keep the default.
    os.environ.setdefault("FORDRING_KAFKA_SESSION_TIMEOUT_MS", "2000")
    os.environ.setdefault("FORDRING_KAFKA_HEARTBEAT_INTERVAL_MS", "500")


@pytest.fixture(scope="session", autouse=True)
def span_exporter() -> InMemorySpanExporter:
    """Every span of the session, in memory. Installed before any app is built (providers are global)."""
    exporter = InMemorySpanExporter()
    telemetry = setup_telemetry("tests", span_exporter=exporter)
    # Had something installed the providers first, our exporter would not be among them: add it.
    with trace.get_tracer("tests").start_as_current_span("tests.telemetry-probe"):
        pass
    if not exporter.get_finished_spans():
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.clear()
    return exporter


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    servers: AbstractContextManager[Backend]
    if wanted_backend() == "containers":
        problem = docker_problem()
        if problem is not None:
            pytest.skip(f"FORDRING_TEST_BACKEND=containers asks for Docker, but there is {problem}")
        servers = container_backend()
    else:
        servers = embedded_backend(Path(tmp_path_factory.mktemp("servers")))
    with servers as running:
        yield running


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    """Topics and consumer groups of this session: `t<uuid>.fordring...`."""
    return f"t{uuid.uuid4().hex[:12]}."


@pytest.fixture(scope="session")
def topics(topic_prefix: str) -> dict[str, str]:
    """The full names of the topics the ledger uses in this session, by their unprefixed name."""
    names = [
        INVOICE_TOPIC,
        CUSTOMER_TOPIC,
        PAYMENT_TOPIC,
        DUNNING_TOPIC,
        DELIVERY_TOPIC,
        PAYMENT_TOPIC + DLQ_SUFFIX,
        DUNNING_TOPIC + DLQ_SUFFIX,
        DELIVERY_TOPIC + DLQ_SUFFIX,
    ]
    return {name: topic_prefix + name for name in names}


@pytest.fixture(scope="session")
def app_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def clock(app_clock: MovableClock) -> Iterator[MovableClock]:
    """The ledger's clock, for tests that move it; it is back at the real time after the test."""
    yield app_clock
    app_clock.reset()


@pytest.fixture(scope="session")
async def ledger_app(
    backend: Backend,
    span_exporter: InMemorySpanExporter,
    app_clock: MovableClock,
    topic_prefix: str,
    topics: dict[str, str],
) -> AsyncIterator[LedgerApp]:
    """One ledger replica for the session: gRPC and HTTP on free ports, its own database and topics."""
    await create_topics(backend.kafka_bootstrap, topics.values())
    settings = replica_settings(
        backend.kafka_bootstrap, backend.mongo_uri, topic_prefix, service_token=SERVICE_TOKEN
    )
    app = LedgerApp(settings, clock=app_clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture(scope="session")
async def render_world(backend: Backend, app_clock: MovableClock) -> AsyncIterator[RenderWorld]:
    """A ledger and a renderer of their own (own topics and databases): the renderer reads every
    invoice event of its ledger from the beginning, and the session ledger's thousands of test
    invoices would keep it busy for minutes."""
    async with render_world_running(backend, app_clock) as world:
        yield world


@pytest.fixture(scope="session")
async def dispatch_world(
    backend: Backend, app_clock: MovableClock, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DispatchWorld]:
    """A ledger, a renderer, a dispatcher and the channel sandbox of their own; the rules' days are
    seconds here ("not opened in 3 days" fires after 3 s)."""
    root = tmp_path_factory.mktemp("dispatch")
    async with dispatch_world_running(backend, app_clock, root, delay_scale=1 / 86400) as world:
        yield world


@pytest.fixture(scope="session")
async def proposal_consumers(ledger_app: LedgerApp) -> LedgerApp:
    """The ledger with its matcher and dunning consumers started."""
    await asyncio.wait_for(ledger_app.consumers_ready.wait(), timeout=60)
    return ledger_app


@pytest.fixture(scope="session")
async def ledger_channel(ledger_app: LedgerApp) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_app.grpc.port}") as channel:
        yield channel


@pytest.fixture(scope="session")
def ledger_stub(ledger_channel: grpc.aio.Channel) -> LedgerServiceAsyncStub:
    return LedgerServiceStub(ledger_channel)


@pytest.fixture
def make_tenant(ledger_app: LedgerApp, ledger_stub: LedgerServiceAsyncStub) -> MakeTenant:
    """Creates fresh tenants (settings as keyword arguments, e.g. kid_scheme="mod11")."""

    async def make(**settings: Any) -> TenantClient:
        tenant = Tenant(id=f"tenant-{uuid.uuid4()}", name="Testkreditor AS", **settings)
        api_key, key_name = secrets.token_urlsafe(24), "erp-test"
        await ledger_app.store.ensure_tenant(tenant, api_key, key_name=key_name, now=ledger_app.clock.now())
        return TenantClient(tenant=tenant, api_key=api_key, key_name=key_name, stub=ledger_stub)

    return make


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> TenantClient:
    """A fresh tenant for this test: nothing another test did is visible to it."""
    return await make_tenant()


@pytest.fixture(scope="session")
async def invoice_events(
    ledger_app: LedgerApp, backend: Backend, topics: dict[str, str]
) -> AsyncIterator[TopicReader]:
    """Everything on the ledger's invoice topic this session, read without a consumer group."""
    reader = TopicReader(backend.kafka_bootstrap, topics[INVOICE_TOPIC])
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


@pytest.fixture(scope="session")
async def producer(backend: Backend) -> AsyncIterator[AIOKafkaProducer]:
    """Publishes what the matcher and the dunning service would."""
    kafka = AIOKafkaProducer(bootstrap_servers=backend.kafka_bootstrap, acks="all")
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()
