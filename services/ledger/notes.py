"""The thread on an invoice: messages between the customer and customer service, and disputes.

A note is written with the invoice's history entry that tells of it (a new version, so WatchInvoice
sends it) and its InvoiceNoteAdded event, in one transaction. Idempotent by key.
"""

from __future__ import annotations

from typing import Final, Literal

from pymongo import ASCENDING

from services.common.errors import AlreadyExists, FailedPrecondition, Violations
from services.common.events import InvoiceNoteAdded, InvoiceNoteAddedData
from services.common.ids import new_id
from services.common.mongo import Database, Doc, Session
from services.common.text import check_text
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import Ctx, changed_invoice, summary
from services.ledger.domain.invoice import check_length
from services.ledger.payments import MAX_KEY, request_hash

NOTES: Final = "invoice_notes"
MAX_NOTE = 4000
# A thread is a conversation, not a log: past this many notes the invoice needs a person by phone.
MAX_NOTES_PER_INVOICE = 500

Author = Literal["customer", "staff"]
Kind = Literal["message", "dispute", "dispute_resolved"]
# The invoice's history entry for each note.
_HISTORY: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("customer", "message"): ("customer_message", "the customer wrote to customer service"),
    ("staff", "message"): ("staff_message", "customer service answered the customer"),
    ("customer", "dispute"): ("disputed", "the customer disputes the invoice"),
    ("staff", "dispute"): ("disputed", "customer service recorded a dispute"),
    ("customer", "dispute_resolved"): ("dispute_resolved", "the dispute was resolved"),
    ("staff", "dispute_resolved"): ("dispute_resolved", "the dispute was resolved"),
}


async def ensure_note_indexes(db: Database) -> None:
    await db[NOTES].create_index([("tenant_id", ASCENDING), ("invoice_id", ASCENDING), ("at", ASCENDING)])
    await db[NOTES].create_index(
        [("tenant_id", ASCENDING), ("key", ASCENDING)],
        unique=True,
        partialFilterExpression={"key": {"$type": "string"}},
    )


async def add_note(
    changes: Changes,
    ctx: Ctx,
    *,
    invoice_id: str,
    author: Author,
    author_name: str,
    kind: Kind,
    text: str,
    key: str,
) -> tuple[Doc, int]:
    """The note as written (or as written before under the same key) and the invoice's version."""
    v = Violations()
    if not text.strip():
        v.add("text", "required")
    check_text(text, "text", MAX_NOTE, v, multiline=True)
    check_text(author_name, "author_name", 200, v)
    check_length(key, "idempotency_key", MAX_KEY, v)
    v.raise_if_any()
    fingerprint = request_hash(
        {"invoice": invoice_id, "author": author, "name": author_name, "kind": kind, "text": text}
    )
    notes = changes.store.db[NOTES]
    invoice = await changes.resolve_invoice(ctx, invoice_id=invoice_id)

    async def replayed(s: Session | None) -> tuple[Doc, int] | None:
        if not key:
            return None
        found = await notes.find_one({"tenant_id": ctx.tenant.id, "key": key}, session=s)
        if found is None:
            return None
        if found["hash"] != fingerprint:
            raise AlreadyExists(f"idempotency key {key!r} was already used for another note")
        return found, int(found["invoice_version"])

    async def work(s: Session) -> tuple[Doc, int]:
        again = await replayed(s)
        if again is not None:
            return again
        inv = await changes.load(s, ctx, invoice["_id"])
        count = await notes.count_documents({"tenant_id": ctx.tenant.id, "invoice_id": inv["_id"]}, session=s)
        if count >= MAX_NOTES_PER_INVOICE:
            raise FailedPrecondition(
                f"the invoice's thread has {count} notes, the most it takes", reason="THREAD_FULL"
            )
        event_id = new_id()
        type_, told = _HISTORY[(author, kind)]
        new = changed_invoice(inv, ctx, event_id=event_id, type_=type_, text=told)
        note: Doc = {
            "_id": new_id(),
            "tenant_id": ctx.tenant.id,
            "invoice_id": inv["_id"],
            "author": author,
            "author_name": author_name,
            "kind": kind,
            "text": text,
            "at": ctx.now,
            "actor": ctx.actor,
            "hash": fingerprint,
            "invoice_version": new["version"],
        }
        if key:
            note["key"] = key
        await notes.insert_one(note, session=s)
        data = InvoiceNoteAddedData(invoice=summary(new), note_id=note["_id"], author=author, kind=kind)
        await changes.save(
            s, inv, new, events=[invoice_event(ctx, event_id, inv["_id"], InvoiceNoteAdded, data)]
        )
        return note, int(new["version"])

    again = await replayed(None)
    if again is not None:
        return again
    async with changes.key_lock(ctx.tenant.id, "note", key or new_id()):
        return await changes.run(work)


async def list_notes(changes: Changes, ctx: Ctx, invoice_id: str) -> list[Doc]:
    invoice = await changes.resolve_invoice(ctx, invoice_id=invoice_id)
    cursor = (
        changes.store.db[NOTES].find({"tenant_id": ctx.tenant.id, "invoice_id": invoice["_id"]}).sort("at", 1)
    )
    return await cursor.to_list(MAX_NOTES_PER_INVOICE)
