"""`fordring.ledger.v1.InvoiceNoteService`: the invoice's thread over gRPC (notes.py)."""

from __future__ import annotations

from typing import Any, Final

import grpc
from fordring.ledger.v1 import notes_pb2 as pb
from fordring.ledger.v1 import notes_pb2_grpc

from services.common.clock import Clock, isoformat_utc
from services.common.errors import FieldViolation, InvalidArgument
from services.common.mongo import Doc
from services.ledger.changes import Changes
from services.ledger.documents import Ctx, request_ctx
from services.ledger.notes import Author, Kind, add_note, list_notes

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["InvoiceNoteService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
_AUTHORS: Final[dict[pb.NoteAuthor.ValueType, Author]] = {
    pb.NOTE_AUTHOR_CUSTOMER: "customer",
    pb.NOTE_AUTHOR_STAFF: "staff",
}
_KINDS: Final[dict[pb.NoteKind.ValueType, Kind]] = {
    pb.NOTE_KIND_UNSPECIFIED: "message",
    pb.NOTE_KIND_MESSAGE: "message",
    pb.NOTE_KIND_DISPUTE: "dispute",
    pb.NOTE_KIND_DISPUTE_RESOLVED: "dispute_resolved",
}
_AUTHOR_PB: Final = {name: value for value, name in _AUTHORS.items()}
_KIND_PB: Final = {
    "message": pb.NOTE_KIND_MESSAGE,
    "dispute": pb.NOTE_KIND_DISPUTE,
    "dispute_resolved": pb.NOTE_KIND_DISPUTE_RESOLVED,
}


def note_to_pb(doc: Doc) -> pb.InvoiceNote:
    return pb.InvoiceNote(
        id=doc["_id"],
        invoice_id=doc["invoice_id"],
        author=_AUTHOR_PB[doc["author"]],
        author_name=doc.get("author_name", ""),
        kind=_KIND_PB[doc["kind"]],
        text=doc["text"],
        created_at=isoformat_utc(doc["at"]),
    )


class InvoiceNoteApi(notes_pb2_grpc.InvoiceNoteServiceServicer):
    def __init__(self, changes: Changes, clock: Clock) -> None:
        self._changes = changes
        self._clock = clock

    def _ctx(self) -> Ctx:
        return request_ctx(self._clock)

    async def AddInvoiceNote(  # noqa: N802 - gRPC method name
        self, request: pb.AddInvoiceNoteRequest, context: Context
    ) -> pb.AddInvoiceNoteResponse:
        violations = []
        if not request.invoice_id:
            violations.append(FieldViolation("invoice_id", "required"))
        if request.author not in _AUTHORS:
            violations.append(FieldViolation("author", "NOTE_AUTHOR_CUSTOMER or NOTE_AUTHOR_STAFF"))
        if request.kind not in _KINDS:
            violations.append(FieldViolation("kind", "a NoteKind"))
        if violations:
            raise InvalidArgument(violations)
        note, version = await add_note(
            self._changes,
            self._ctx(),
            invoice_id=request.invoice_id,
            author=_AUTHORS[request.author],
            author_name=request.author_name,
            kind=_KINDS[request.kind],
            text=request.text,
            key=request.idempotency_key,
        )
        return pb.AddInvoiceNoteResponse(note=note_to_pb(note), invoice_version=version)

    async def ListInvoiceNotes(  # noqa: N802 - gRPC method name
        self, request: pb.ListInvoiceNotesRequest, context: Context
    ) -> pb.ListInvoiceNotesResponse:
        if not request.invoice_id:
            raise InvalidArgument([FieldViolation("invoice_id", "required")])
        notes = await list_notes(self._changes, self._ctx(), request.invoice_id)
        return pb.ListInvoiceNotesResponse(notes=[note_to_pb(doc) for doc in notes])
