"""Renderer tests: a ledger and a renderer of their own, tenants with a creditor profile, documents
read back from the invoice hotel."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import grpc
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from fordring.renderer.v1 import renderer_pb2 as rpb
from fordring.renderer.v1.renderer_pb2_grpc import RendererServiceStub
from pypdf import PdfReader

from services.common.creditor import ProfileInput
from services.common.events import (
    DELIVERY_TOPIC,
    DLQ_SUFFIX,
    DOCUMENT_TOPIC,
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    PAYMENT_TOPIC,
)
from services.common.tenancy import Tenant
from services.ledger.app import LedgerApp
from services.ledger.profiles import ensure_profile
from services.ledger.sandbox import sandbox_profile
from services.renderer.app import RendererApp
from services.renderer.settings import RendererSettings
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.kafka import TopicReader, create_topics
from tests.support.ledger import LINK_SECRET, SERVICE_TOKEN, TenantClient, eventually, replica_settings

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub
    from fordring.renderer.v1.renderer_pb2_grpc import RendererServiceAsyncStub

SELLER_ORG = "999999999"
FORMS = {
    "pdf": rpb.DOCUMENT_FORM_PDF,
    "html": rpb.DOCUMENT_FORM_HTML,
    "ehf": rpb.DOCUMENT_FORM_EHF,
    "email": rpb.DOCUMENT_FORM_EMAIL,
    "sms": rpb.DOCUMENT_FORM_SMS,
}
FORM_NAMES = {v: k for k, v in FORMS.items()}


@dataclass
class RenderWorld:
    ledger: LedgerApp
    renderer: RendererApp
    ledger_stub: LedgerServiceAsyncStub
    stub: RendererServiceAsyncStub
    topics: dict[str, str]
    invoice_events: TopicReader
    document_events: TopicReader

    async def tenant(
        self,
        *,
        legal_name: str = "Fjordlys Energi AS",
        settings: dict[str, Any] | None = None,
        **changes: Any,
    ) -> TenantClient:
        """A fresh tenant (with `settings`, e.g. a Swedish jurisdiction) whose creditor profile is a
        realistic Norwegian AS (with `changes`)."""
        tenant = Tenant(
            id=f"tenant-{uuid.uuid4()}",
            name=legal_name,
            org_number=changes.get("org_number", SELLER_ORG),
            **(settings or {}),
        )
        api_key = secrets.token_urlsafe(24)
        store, now = self.ledger.store, self.ledger.clock.now()
        await store.ensure_tenant(tenant, api_key, key_name="erp-test", now=now)
        profile: ProfileInput = replace(sandbox_profile(legal_name), **changes)
        await ensure_profile(store, tenant.id, profile, now=now, actor="test")
        return TenantClient(tenant=tenant, api_key=api_key, key_name="erp-test", stub=self.ledger_stub)


@contextlib.asynccontextmanager
async def render_world_running(backend: Backend, clock: MovableClock) -> AsyncIterator[RenderWorld]:
    prefix = f"r{uuid.uuid4().hex[:12]}."
    names = [
        INVOICE_TOPIC,
        DOCUMENT_TOPIC,
        PAYMENT_TOPIC,
        DUNNING_TOPIC,
        DELIVERY_TOPIC,
        INVOICE_TOPIC + DLQ_SUFFIX,
    ]
    topics = {name: prefix + name for name in names}
    await create_topics(backend.kafka_bootstrap, topics.values())
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
            portal_url="https://faktura.test",
            shutdown_grace=2.0,
        ),
        clock=clock,
    )
    await renderer.start()
    invoice_events = TopicReader(backend.kafka_bootstrap, topics[INVOICE_TOPIC])
    document_events = TopicReader(backend.kafka_bootstrap, topics[DOCUMENT_TOPIC])
    options = [("grpc.max_receive_message_length", 32 * 1024 * 1024)]
    try:
        await invoice_events.start()
        await document_events.start()
        await asyncio.wait_for(
            asyncio.gather(ledger.consumers_ready.wait(), renderer.consumers_ready.wait()), timeout=90
        )
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ledger.grpc.port}") as ledger_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{renderer.grpc.port}", options=options) as channel,
        ):
            yield RenderWorld(
                ledger,
                renderer,
                LedgerServiceStub(ledger_channel),
                RendererServiceStub(channel),
                topics,
                invoice_events,
                document_events,
            )
    finally:
        await invoice_events.stop()
        await document_events.stop()
        await renderer.stop()
        await ledger.stop()


async def documents_of(
    stub: RendererServiceAsyncStub,
    tenant: TenantClient,
    invoice_id: str,
    *,
    at_least: int = 1,
    timeout: float = 30,
) -> list[rpb.DocumentInfo]:
    """The invoice's documents, once there are `at_least` of them."""

    async def listed() -> list[rpb.DocumentInfo]:
        reply = await stub.ListDocuments(
            rpb.ListDocumentsRequest(invoice_id=invoice_id), metadata=tenant.metadata
        )
        return list(reply.documents)

    return await eventually(listed, lambda docs: len(docs) >= at_least, timeout=timeout, what="documents")


async def read_document(
    stub: RendererServiceAsyncStub, tenant: TenantClient, document_id: str
) -> tuple[rpb.DocumentInfo, bytes]:
    """A document's description and content, checked against its SHA-256."""
    info: rpb.DocumentInfo | None = None
    parts = []
    async for chunk in stub.GetDocument(
        rpb.GetDocumentRequest(document_id=document_id), metadata=tenant.metadata
    ):
        if chunk.HasField("info"):
            info = chunk.info
        parts.append(chunk.data)
    assert info is not None
    content = b"".join(parts)
    assert hashlib.sha256(content).hexdigest() == info.sha256
    assert len(content) == info.size
    return info, content


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def by_form(
    documents: list[rpb.DocumentInfo], kind: int = rpb.DOCUMENT_KIND_INVOICE
) -> dict[str, rpb.DocumentInfo]:
    """The newest document of each form of one kind."""
    found: dict[str, rpb.DocumentInfo] = {}
    for doc in documents:
        if doc.kind == kind:
            found.setdefault(FORM_NAMES[doc.form], doc)
    return found
