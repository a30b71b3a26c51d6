"""The invoice hotel, read on behalf of a tenant: the documents a delivery sends, the invoice page
a tracked link shows."""

from __future__ import annotations

import grpc
from fordring.renderer.v1 import renderer_pb2 as pb
from fordring.renderer.v1 import renderer_pb2_grpc

from services.common.errors import NotFound, Unavailable
from services.common.tenancy import service_metadata

_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
_OPTIONS = (
    # Calls spread over every address the target resolves to (a headless Service: every pod).
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
_KINDS = {
    "invoice": pb.DOCUMENT_KIND_INVOICE,
    "credit_note": pb.DOCUMENT_KIND_CREDIT_NOTE,
    "reminder": pb.DOCUMENT_KIND_REMINDER,
    "collection_notice": pb.DOCUMENT_KIND_COLLECTION_NOTICE,
    "nudge": pb.DOCUMENT_KIND_NUDGE,
}


class RendererClient:
    def __init__(self, target: str, service_token: str) -> None:
        self._target = target
        self._token = service_token
        self._channel: grpc.aio.Channel | None = None
        self._stub: renderer_pb2_grpc.RendererServiceAsyncStub | None = None

    def _renderer(self) -> renderer_pb2_grpc.RendererServiceAsyncStub:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=_OPTIONS)
            self._stub = renderer_pb2_grpc.RendererServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel, self._stub = None, None

    async def document(self, tenant_id: str, document_id: str) -> bytes:
        return await self._get(
            tenant_id, pb.GetDocumentRequest(document_id=document_id), f"document {document_id}"
        )

    async def documents(self, tenant_id: str, document_ids: list[str]) -> dict[str, bytes]:
        """Many documents in one call (up to 500), by id; ids the hotel does not have are missing."""
        found: dict[str, list[bytes]] = {}
        current: list[bytes] | None = None
        try:
            stream = self._renderer().GetDocuments(
                pb.GetDocumentsRequest(document_ids=document_ids),
                metadata=service_metadata(self._token, tenant_id, "dispatcher"),
                timeout=60,
            )
            async for chunk in stream:
                if chunk.HasField("info"):
                    current = found.setdefault(chunk.info.id, [])
                if current is not None:
                    current.append(chunk.data)
        except grpc.aio.AioRpcError as error:
            if error.code() in _RETRYABLE:
                raise Unavailable(f"the renderer did not answer ({error.code().name})") from None
            raise Unavailable(
                f"the renderer refused documents ({error.code().name}: {error.details()})"
            ) from None
        return {document_id: b"".join(parts) for document_id, parts in found.items()}

    async def latest_html(self, tenant_id: str, invoice_id: str, kind: str = "invoice") -> bytes:
        request = pb.GetDocumentRequest(
            latest=pb.LatestDocument(invoice_id=invoice_id, kind=_KINDS[kind], form=pb.DOCUMENT_FORM_HTML)
        )
        return await self._get(tenant_id, request, f"the page of invoice {invoice_id}")

    async def _get(self, tenant_id: str, request: pb.GetDocumentRequest, what: str) -> bytes:
        chunks: list[bytes] = []
        try:
            stream = self._renderer().GetDocument(
                request, metadata=service_metadata(self._token, tenant_id, "dispatcher"), timeout=30
            )
            chunks.extend([chunk.data async for chunk in stream])
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"the invoice hotel has no {what}") from None
            if error.code() in _RETRYABLE:
                raise Unavailable(f"the renderer did not answer ({error.code().name})") from None
            raise Unavailable(
                f"the renderer refused {what} ({error.code().name}: {error.details()})"
            ) from None
        return b"".join(chunks)
