"""Helpers the console's templates use: names of enum values, amounts, trace links. Pure."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.ledger.v1 import notes_pb2 as notes_pb
from fordring.renderer.v1 import renderer_pb2 as renderer_pb

from services.common.errors import FordringError, NotFound
from services.common.money import format_money
from services.portal.console.services import Refused

T = TypeVar("T")

STATUSES: dict[int, str] = {
    int(value): name.removeprefix("INVOICE_STATUS_").lower()
    for name, value in ledger_pb.InvoiceStatus.items()
    if value != ledger_pb.INVOICE_STATUS_UNSPECIFIED
}
_KINDS: dict[int, str] = {
    int(value): name.removeprefix("DOCUMENT_KIND_").lower().replace("_", " ")
    for name, value in renderer_pb.DocumentKind.items()
}
_FORMS: dict[int, str] = {
    int(value): name.removeprefix("DOCUMENT_FORM_").lower()
    for name, value in renderer_pb.DocumentForm.items()
}


def status(value: int) -> str:
    return STATUSES.get(value, "unknown")


def note_kind(value: int) -> str:
    if value == notes_pb.NOTE_KIND_DISPUTE:
        return "dispute"
    return "dispute resolved" if value == notes_pb.NOTE_KIND_DISPUTE_RESOLVED else "message"


def note_author(value: int) -> str:
    return "customer" if value == notes_pb.NOTE_AUTHOR_CUSTOMER else "staff"


def document_kind(value: int) -> str:
    return _KINDS.get(value, "document")


def document_form(value: int) -> str:
    return _FORMS.get(value, "")


def open_dispute(notes: Sequence[notes_pb.InvoiceNote]) -> bool:
    """Whether the thread's last word on a dispute is the dispute itself (not its resolution)."""
    disputed = False
    for note in sorted(notes, key=lambda n: n.created_at):
        if note.kind == notes_pb.NOTE_KIND_DISPUTE:
            disputed = True
        elif note.kind == notes_pb.NOTE_KIND_DISPUTE_RESOLVED:
            disputed = False
    return disputed


def money(minor: int, currency: str = "NOK") -> str:
    try:
        return format_money(minor, currency or "NOK")
    except ValueError:
        return f"{minor} {currency}"


def helpers() -> dict[str, Any]:
    return {
        "status": status,
        "note_kind": note_kind,
        "note_author": note_author,
        "document_kind": document_kind,
        "document_form": document_form,
        "money": money,
    }


async def attempt(call: Awaitable[T]) -> tuple[T | None, str]:
    """What a service answered, or why not (one service down leaves the rest of the page)."""
    try:
        return await call, ""
    except NotFound as error:
        return None, error.message
    except Refused as error:
        return None, str(error)
    except FordringError as error:
        return None, error.message
