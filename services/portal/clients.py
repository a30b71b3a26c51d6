"""The other services, as the portal reads and asks them over gRPC (with the service credential, on
behalf of the invoice's tenant). The portal keeps no copy of what they answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fordring.dispatcher.v1 import dispatcher_pb2 as dispatcher_pb
from fordring.dispatcher.v1 import dispatcher_pb2_grpc, links_pb2, links_pb2_grpc
from fordring.dunning.v1 import dunning_pb2 as dunning_pb
from fordring.dunning.v1 import dunning_pb2_grpc
from fordring.ledger.v1 import consents_pb2, consents_pb2_grpc, ledger_pb2_grpc, notes_pb2, notes_pb2_grpc
from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.renderer.v1 import renderer_pb2 as renderer_pb
from fordring.renderer.v1 import renderer_pb2_grpc

from services.common.errors import NotFound, Unavailable
from services.common.ledger_client import LedgerClient
from services.common.tenancy import service_metadata
from services.portal.settings import PortalSettings

CALLER = "portal"
_OPTIONS = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


def translated(error: grpc.aio.AioRpcError, service: str, what: str) -> Exception:
    """NOT_FOUND: the service has no such thing (for this tenant); anything else: try again later."""
    if error.code() == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"the {service} has no {what}")
    if error.code() in _RETRYABLE:
        return Unavailable(f"the {service} did not answer ({error.code().name})")
    return Unavailable(f"the {service} refused {what} ({error.code().name}: {error.details()})")


class Refused(Exception):
    """The service refused what the customer sent (too long, empty): say so on the page."""


class Clients:
    """One channel per service, opened at the first call, closed at the stop."""

    def __init__(self, settings: PortalSettings) -> None:
        self._token = settings.service_token
        self.ledger = LedgerClient(settings.ledger_target, settings.service_token, caller=CALLER)
        self._targets = {
            "ledger": settings.ledger_target,
            "renderer": settings.renderer_target,
            "dispatcher": settings.dispatcher_target,
            "dunning": settings.dunning_target,
            "matcher": settings.matcher_target,
        }
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = grpc.aio.insecure_channel(self._targets[service], options=_OPTIONS)
        return self._channels[service]

    def metadata(self, tenant_id: str) -> tuple[tuple[str, str], ...]:
        return service_metadata(self._token, tenant_id, CALLER)

    async def close(self) -> None:
        await self.ledger.close()
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()

    # --- ledger ---------------------------------------------------------------------------------

    def ledger_stub(self) -> ledger_pb2_grpc.LedgerServiceAsyncStub:
        return ledger_pb2_grpc.LedgerServiceStub(self.channel("ledger"))

    async def watch(self, tenant_id: str, invoice_id: str) -> AsyncIterator[ledger_pb.WatchInvoiceResponse]:
        """The invoice now, then again at every change, until the caller stops reading."""
        call = self.ledger_stub().WatchInvoice(
            ledger_pb.WatchInvoiceRequest(invoice_id=invoice_id), metadata=self.metadata(tenant_id)
        )
        try:
            async for update in call:
                yield update
        except grpc.aio.AioRpcError as error:
            raise translated(error, "ledger", f"invoice {invoice_id}") from None
        finally:
            call.cancel()

    async def notes(self, tenant_id: str, invoice_id: str) -> list[notes_pb2.InvoiceNote]:
        stub = notes_pb2_grpc.InvoiceNoteServiceStub(self.channel("ledger"))
        try:
            reply = await stub.ListInvoiceNotes(
                notes_pb2.ListInvoiceNotesRequest(invoice_id=invoice_id),
                metadata=self.metadata(tenant_id),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            raise translated(error, "ledger", f"notes of invoice {invoice_id}") from None
        return list(reply.notes)

    async def add_note(
        self, tenant_id: str, request: notes_pb2.AddInvoiceNoteRequest
    ) -> notes_pb2.InvoiceNote:
        stub = notes_pb2_grpc.InvoiceNoteServiceStub(self.channel("ledger"))
        try:
            reply = await stub.AddInvoiceNote(request, metadata=self.metadata(tenant_id), timeout=15)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Refused(error.details() or "not a note the ledger takes") from None
            raise translated(error, "ledger", f"a note on invoice {request.invoice_id}") from None
        return reply.note

    async def record_consent(
        self, tenant_id: str, customer_id: str, channel: ledger_pb.Channel.ValueType
    ) -> bool:
        """The customer asked for `channel` for future invoices; False when they had before."""
        stub = consents_pb2_grpc.CustomerConsentServiceStub(self.channel("ledger"))
        try:
            reply = await stub.RecordConsent(
                consents_pb2.RecordConsentRequest(
                    customer_id=customer_id, channel=channel, source="invoice page"
                ),
                metadata=self.metadata(tenant_id),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            raise translated(error, "ledger", f"customer {customer_id}") from None
        return reply.changed

    # --- renderer -------------------------------------------------------------------------------

    async def latest_pdf(self, tenant_id: str, invoice_id: str) -> tuple[str, bytes]:
        """The invoice's newest PDF: its file name and bytes."""
        stub = renderer_pb2_grpc.RendererServiceStub(self.channel("renderer"))
        request = renderer_pb.GetDocumentRequest(
            latest=renderer_pb.LatestDocument(invoice_id=invoice_id, form=renderer_pb.DOCUMENT_FORM_PDF)
        )
        name, chunks = "", []
        try:
            async for chunk in stub.GetDocument(request, metadata=self.metadata(tenant_id), timeout=30):
                if chunk.HasField("info"):
                    name = chunk.info.filename
                chunks.append(chunk.data)
        except grpc.aio.AioRpcError as error:
            raise translated(error, "renderer", f"PDF of invoice {invoice_id}") from None
        return name or "invoice.pdf", b"".join(chunks)

    # --- dispatcher -----------------------------------------------------------------------------

    async def record_open(self, invoice_id: str) -> str:
        """The customer opened the invoice's link: the dispatcher records it; returns the invoice's
        tenant ("" when the dispatcher never had a document of it)."""
        stub = links_pb2_grpc.InvoiceLinkServiceStub(self.channel("dispatcher"))
        try:
            reply = await stub.RecordOpen(
                links_pb2.RecordOpenRequest(invoice_id=invoice_id), metadata=self.metadata(""), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            raise translated(error, "dispatcher", f"invoice {invoice_id}") from None
        return reply.tenant_id

    async def deliveries(self, tenant_id: str, invoice_id: str) -> list[dispatcher_pb.Delivery]:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(self.channel("dispatcher"))
        try:
            reply = await stub.ListDeliveries(
                dispatcher_pb.ListDeliveriesRequest(invoice_id=invoice_id),
                metadata=self.metadata(tenant_id),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            raise translated(error, "dispatcher", f"deliveries of invoice {invoice_id}") from None
        return list(reply.deliveries)

    # --- dunning --------------------------------------------------------------------------------

    async def dispute(self, tenant_id: str, invoice_id: str, reason: str) -> bool:
        """Dunning holds the invoice until the dispute is resolved; False when it was held already."""
        stub = dunning_pb2_grpc.DunningServiceStub(self.channel("dunning"))
        try:
            reply = await stub.Pause(
                dunning_pb.PauseRequest(
                    invoice_id=invoice_id, reason=reason, kind="dispute", actor="customer"
                ),
                metadata=self.metadata(tenant_id),
                timeout=15,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # dunning has not heard of it yet: soon
                raise Unavailable(f"the dunning service does not know invoice {invoice_id} yet") from None
            raise translated(error, "dunning service", f"invoice {invoice_id}") from None
        return not reply.already_paused
