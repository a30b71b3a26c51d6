"""The CLI's client of the renderer (the invoice hotel): an invoice's documents, one document's bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from fordring.renderer.v1 import renderer_pb2 as pb
from rich.console import Console
from rich.table import Table

from services.cli.client import QUICK, Connection, renderer_stub, with_retries

FORMS = {
    "pdf": pb.DOCUMENT_FORM_PDF,
    "html": pb.DOCUMENT_FORM_HTML,
    "ehf": pb.DOCUMENT_FORM_EHF,
    "email": pb.DOCUMENT_FORM_EMAIL,
    "sms": pb.DOCUMENT_FORM_SMS,
}
KINDS = {
    "invoice": pb.DOCUMENT_KIND_INVOICE,
    "credit-note": pb.DOCUMENT_KIND_CREDIT_NOTE,
    "nudge": pb.DOCUMENT_KIND_NUDGE,
    "reminder": pb.DOCUMENT_KIND_REMINDER,
    "collection-notice": pb.DOCUMENT_KIND_COLLECTION_NOTICE,
}
FORM_NAMES = {v: k for k, v in FORMS.items()}
KIND_NAMES = {v: k for k, v in KINDS.items()}


@dataclass(frozen=True)
class Fetched:
    info: pb.DocumentInfo
    content: bytes


async def list_documents(connection: Connection, number: str) -> list[pb.DocumentInfo]:
    async with renderer_stub(connection) as stub:
        reply = await with_retries(
            lambda: stub.ListDocuments(
                pb.ListDocumentsRequest(invoice_number=number),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            QUICK,
        )
    return list(reply.documents)


async def fetch_document(connection: Connection, number: str, form: str, kind: str | None) -> Fetched:
    """The newest document of the invoice in this form; checked against its SHA-256."""
    latest = pb.LatestDocument(
        invoice_number=number, form=FORMS[form], kind=KINDS[kind] if kind else pb.DOCUMENT_KIND_UNSPECIFIED
    )

    async def read() -> Fetched:
        async with renderer_stub(connection) as stub:
            info: pb.DocumentInfo | None = None
            parts: list[bytes] = []
            async for chunk in stub.GetDocument(
                pb.GetDocumentRequest(latest=latest), metadata=connection.metadata, timeout=60
            ):
                if chunk.HasField("info"):
                    info = chunk.info
                parts.append(chunk.data)
        assert info is not None  # the server sends it first
        content = b"".join(parts)
        if hashlib.sha256(content).hexdigest() != info.sha256:
            raise ValueError(f"document {info.id} arrived damaged (SHA-256 differs); try again")
        return Fetched(info, content)

    return await with_retries(read, QUICK)


def documents_table(documents: Iterable[pb.DocumentInfo]) -> Table:
    table = Table(title="Documents (invoice hotel)", title_justify="left")
    for column in ("document", "form", "language", "size", "created", "id"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for doc in documents:
        table.add_row(
            KIND_NAMES.get(doc.kind, "?"),
            FORM_NAMES.get(doc.form, "?"),
            doc.language,
            f"{doc.size:,}",
            doc.created_at[:19].replace("T", " "),
            doc.id,
        )
    return table


async def documents_or_reason(connection: Connection, number: str) -> tuple[list[pb.DocumentInfo], str]:
    """The documents, or why they cannot be listed (the renderer may not run): never fails `show`."""
    try:
        return await list_documents(connection, number), ""
    except grpc.aio.AioRpcError as error:
        return [], f"documents not available: {error.code().name} {error.details() or ''}".strip()


def print_documents(console: Console, documents: list[pb.DocumentInfo], reason: str) -> None:
    if reason:
        console.print(f"[dim]{reason}[/dim]")
    elif documents:
        console.print(documents_table(documents))
    else:
        console.print("[dim]no documents yet (the renderer makes them moments after issuing)[/dim]")
