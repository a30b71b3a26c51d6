"""The invoice hotel over gRPC: `fordring.renderer.v1.RendererService`."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from fordring.renderer.v1 import renderer_pb2 as pb
from fordring.renderer.v1 import renderer_pb2_grpc
from opentelemetry import trace

from services.common import attributes as attr
from services.common.clock import isoformat_utc
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.common.ledger_client import LedgerClient
from services.common.tenancy import current_tenant
from services.renderer.domain.model import DocumentKind, Form
from services.renderer.forms import InvalidEhf, forms_for
from services.renderer.rendering import Renderer, Target
from services.renderer.store import RendererStore, StoredDocument

Context = grpc.aio.ServicerContext[Any, Any]

KINDS: dict[pb.DocumentKind.ValueType, DocumentKind] = {
    pb.DOCUMENT_KIND_INVOICE: "invoice",
    pb.DOCUMENT_KIND_CREDIT_NOTE: "credit_note",
    pb.DOCUMENT_KIND_REMINDER: "reminder",
    pb.DOCUMENT_KIND_COLLECTION_NOTICE: "collection_notice",
    pb.DOCUMENT_KIND_NUDGE: "nudge",
}
KIND_PB: dict[str, pb.DocumentKind.ValueType] = {v: k for k, v in KINDS.items()}
FORMS: dict[pb.DocumentForm.ValueType, Form] = {
    pb.DOCUMENT_FORM_PDF: "pdf",
    pb.DOCUMENT_FORM_HTML: "html",
    pb.DOCUMENT_FORM_EHF: "ehf",
    pb.DOCUMENT_FORM_EMAIL: "email",
    pb.DOCUMENT_FORM_SMS: "sms",
}
FORM_PB: dict[str, pb.DocumentForm.ValueType] = {v: k for k, v in FORMS.items()}
MAX_REF = 128
MAX_DOCUMENTS = 500


def info(doc: StoredDocument) -> pb.DocumentInfo:
    return pb.DocumentInfo(
        id=doc.id,
        invoice_id=doc.invoice_id,
        invoice_number=doc.invoice_number,
        kind=KIND_PB.get(doc.kind, pb.DOCUMENT_KIND_UNSPECIFIED),
        form=FORM_PB.get(doc.form, pb.DOCUMENT_FORM_UNSPECIFIED),
        language=doc.language,
        sha256=doc.sha256,
        size=doc.size,
        media_type=doc.media_type,
        filename=doc.filename,
        created_at=isoformat_utc(doc.created_at),
        source_event_id=doc.source_event_id,
        invoice_version=doc.invoice_version,
        profile_version=doc.profile_version,
    )


def _ref(invoice_id: str, invoice_number: str) -> tuple[str, str]:
    value = invoice_id or invoice_number
    field = "invoice_id" if invoice_id else "invoice_number"
    if not value.strip():
        raise InvalidArgument([FieldViolation("invoice_ref", "give invoice_id or invoice_number")])
    if len(value) > MAX_REF:
        raise InvalidArgument([FieldViolation(field, f"at most {MAX_REF} characters")])
    return invoice_id, invoice_number


def _kind(value: pb.DocumentKind.ValueType, field: str = "kind") -> DocumentKind | None:
    if value == pb.DOCUMENT_KIND_UNSPECIFIED:
        return None
    if value not in KINDS:
        raise InvalidArgument([FieldViolation(field, f"{value} is not a document kind")])
    return KINDS[value]


def _form(value: pb.DocumentForm.ValueType, field: str = "form") -> Form:
    if value not in FORMS:
        raise InvalidArgument([FieldViolation(field, "give a form: PDF, HTML, EHF, EMAIL or SMS")])
    return FORMS[value]


class RendererApi(renderer_pb2_grpc.RendererServiceServicer):
    def __init__(self, store: RendererStore, ledger: LedgerClient, renderer: Renderer) -> None:
        self._store = store
        self._ledger = ledger
        self._renderer = renderer

    async def _invoice_id(self, tenant_id: str, invoice_id: str, invoice_number: str) -> str:
        if invoice_id:
            return invoice_id
        return (await self._ledger.invoice_by_number(tenant_id, invoice_number)).id

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: Context
    ) -> AsyncIterator[pb.DocumentChunk]:
        tenant = current_tenant()
        which = request.WhichOneof("ref")
        if which == "document_id":
            if not request.document_id or len(request.document_id) > MAX_REF:
                raise InvalidArgument([FieldViolation("document_id", "a document id")])
            doc = await self._store.document(tenant.id, request.document_id)
            if doc is None:
                raise NotFound(f"no document {request.document_id}")
        elif which == "latest":
            latest = request.latest
            invoice_id, number = _ref(latest.invoice_id, latest.invoice_number)
            form = _form(latest.form, "latest.form")
            kind = _kind(latest.kind, "latest.kind")
            docs = await self._store.documents_of(tenant.id, invoice_id=invoice_id, invoice_number=number)
            matching = [d for d in docs if d.form == form and (kind is None or d.kind == kind)]
            if kind is None:
                # The invoice (or credit note) itself before any reminder.
                matching = [d for d in matching if d.kind in ("invoice", "credit_note")] or matching
            if not matching:
                raise NotFound(f"no {form} document of {invoice_id or number}")
            doc = matching[0]
        else:
            raise InvalidArgument([FieldViolation("ref", "give document_id or latest")])
        trace.get_current_span().set_attribute(attr.INVOICE_ID, doc.invoice_id)
        stream = await self._store.chunks(doc.id)
        digest = hashlib.sha256()
        first = True
        while chunk := await stream.readchunk():
            digest.update(chunk)
            yield pb.DocumentChunk(info=info(doc) if first else None, data=chunk)
            first = False
        if first:
            yield pb.DocumentChunk(info=info(doc), data=b"")
        if digest.hexdigest() != doc.sha256:
            raise FailedPrecondition(f"document {doc.id} does not match its SHA-256", reason="DATA_LOSS")

    async def GetDocuments(
        self, request: pb.GetDocumentsRequest, context: Context
    ) -> AsyncIterator[pb.DocumentChunk]:
        tenant = current_tenant()
        ids = list(dict.fromkeys(request.document_ids))
        if not ids or len(ids) > MAX_DOCUMENTS or any(not i or len(i) > MAX_REF for i in ids):
            raise InvalidArgument(
                [
                    FieldViolation(
                        "document_ids", f"1 to {MAX_DOCUMENTS} document ids of at most {MAX_REF} characters"
                    )
                ]
            )
        docs = {d.id: d for d in await self._store.documents_by_ids(tenant.id, ids)}
        contents = await self._store.contents(list(docs))
        for document_id in ids:
            doc = docs.get(document_id)
            if doc is None:
                continue
            chunks = contents.get(document_id, [])
            if hashlib.sha256(b"".join(chunks)).hexdigest() != doc.sha256:
                raise FailedPrecondition(f"document {doc.id} does not match its SHA-256", reason="DATA_LOSS")
            yield pb.DocumentChunk(info=info(doc), data=chunks[0] if chunks else b"")
            for chunk in chunks[1:]:
                yield pb.DocumentChunk(data=chunk)

    async def ListDocuments(
        self, request: pb.ListDocumentsRequest, context: Context
    ) -> pb.ListDocumentsResponse:
        tenant = current_tenant()
        invoice_id, number = _ref(request.invoice_id, request.invoice_number)
        docs = await self._store.documents_of(tenant.id, invoice_id=invoice_id, invoice_number=number)
        return pb.ListDocumentsResponse(documents=[info(d) for d in docs])

    async def RenderPreview(
        self, request: pb.RenderPreviewRequest, context: Context
    ) -> pb.RenderPreviewResponse:
        tenant = current_tenant()
        invoice_id, number = _ref(request.invoice_id, request.invoice_number)
        form = _form(request.form)
        kind = _kind(request.kind)
        if request.language and request.language not in ("nb", "sv", "en"):
            raise InvalidArgument([FieldViolation("language", "nb, sv or en")])
        invoice_id = await self._invoice_id(tenant.id, invoice_id, number)
        invoice = await self._ledger.invoice(tenant.id, invoice_id)
        natural: DocumentKind = "credit_note" if invoice.kind == 2 else "invoice"
        target = Target(kind or natural, invoice_id, credited_invoice_id=invoice.credits_invoice_id)
        if target.kind == "credit_note" and natural != "credit_note":
            raise InvalidArgument([FieldViolation("kind", "the invoice is not a credit note")])
        if target.kind != "credit_note" and natural == "credit_note":
            raise InvalidArgument([FieldViolation("kind", "a credit note has only its own document")])
        view, _, _, _ = await self._renderer.view(tenant.id, target, language=request.language)
        if form not in forms_for(view) and form != "ehf":
            raise InvalidArgument(
                [FieldViolation("form", f"a {target.kind.replace('_', ' ')} has no {form} form")]
            )
        try:
            rendered = await self._renderer.render_one(view, form)
        except InvalidEhf as exc:
            raise FailedPrecondition(
                f"the EHF would break Peppol rules: {exc}", reason="INVALID_EHF"
            ) from None
        except ValueError as exc:
            raise FailedPrecondition(str(exc), reason="NO_SUCH_FORM") from None
        return pb.RenderPreviewResponse(
            content=rendered.content,
            media_type=rendered.media_type,
            filename=rendered.filename,
            sha256=rendered.sha256,
        )
